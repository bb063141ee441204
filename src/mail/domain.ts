// Domain names that reach a file path. The domain of a From: or Sender: header is written by
// strangers; before it may stand in for `%` in control/dksign it must be a plain host name:
// lowercase LDH labels (IDN as A-labels), none empty, at most 253 characters. Anything else —
// `..`, `/`, `\`, NUL, white space, glob characters, a domain literal — is no domain at all.
import { domainToASCII } from 'node:url';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_DOMAIN = 253;

/** The domain as an A-label host name, or null when it is not one. */
export function canonicalDomain(raw: string): string | null {
  // One final dot is the root: example.com. and example.com are the same name.
  const text = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (text === '' || text.length > 1024) return null;
  // Only ASCII letters, digits, '-' and '.' pass without conversion; other characters must
  // survive IDNA as a whole, and what comes out is checked again label by label.
  const isAscii = Buffer.byteLength(text, 'utf8') === text.length;
  const ascii = isAscii ? text.toLowerCase() : domainToASCII(text);
  if (ascii === '' || ascii.length > MAX_DOMAIN) return null;
  const labels = ascii.split('.');
  return labels.every((label) => LABEL.test(label)) ? ascii : null;
}

/**
 * The domain, then each parent down to two labels: a.b.example.com, b.example.com,
 * example.com. A bare TLD is never tried: no one signs as "com", and a key directory named
 * after one is far more likely a mistake. A single-label domain is tried as itself.
 */
export function parentDomains(domain: string): string[] {
  const labels = domain.split('.');
  const domains = [domain];
  for (let i = 1; i <= labels.length - 2; i++) domains.push(labels.slice(i).join('.'));
  return domains;
}
