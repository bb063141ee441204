// What a good signing key is, and who must be able to read it: shared by the generator
// (keygen.ts), which makes keys this way, and the audit (audit.ts), which checks them.
export const DEFAULT_RSA_BITS = 2048;
/** Below this RSA is breakable in practice; RFC 8301 §3.2 says verifiers may refuse it. */
export const WEAK_RSA_BITS = 1024;
/** dknewkey's old default was 384; anything under 512 OpenSSL itself no longer makes. */
export const MIN_RSA_BITS = 512;
/** RFC 8301 §3.2: verifiers need only validate keys up to 4096 bits. */
export const MAX_RSA_BITS = 4096;
export const KEY_MODE = 0o640;
/** The group of qmail-remote's user, qmailr (qmail's INSTALL.ids). */
export const QMAIL_GROUP = 'qmail';
/** qmail-remote runs as qmailr (qmail's INSTALL.ids); it is the one that must read the keys. */
export const QMAIL_REMOTE_USER = 'qmailr';
