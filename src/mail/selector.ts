// Selectors (RFC 6376 §3.1): dot-separated labels of letters, digits and hyphens. The one home
// of the rule, for the signer and both verifiers.

/**
 * What a verifier accepts: labels may also hold or end in underscores, as real selectors do
 * (DNS allows them in TXT owner names, and Mail::DKIM, dkimpy and OpenDKIM accept them).
 */
export const SELECTOR = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;

/**
 * What we sign with (the key file's name): each label starts and ends with a letter or digit,
 * so every verifier, the strictest included, can look the key up.
 */
export const SIGNING_SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
