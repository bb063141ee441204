// Signing keys named by control/dksign (docs/qmail-remote.md §7). Each line is a path template, such as
// /etc/domainkeys/%/default: `%` becomes the signing domain, and if no file is there the
// parent domains are tried in turn. The selector is the key file's basename, d= the domain
// whose key was found. A missing key means "send unsigned"; a key that is there but cannot be
// read or used is an error, because signing is what the administrator asked for.
//
// Key bytes and parse errors never leave this module in a message: they could contain key
// material.
import { NOT_REGULAR, TOO_LARGE, readBounded } from '../common/read-bounded.ts';
import { basename, isAbsolute, resolve } from 'node:path';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { canonicalDomain, parentDomains } from '../mail/domain.ts';
import { SIGNING_SELECTOR as SELECTOR } from '../mail/selector.ts';

export type KeyType = 'rsa' | 'ed25519';

export interface SigningKey {
  /** d=: the domain whose key file was found. */
  readonly domain: string;
  /** s=: the key file's basename. */
  readonly selector: string;
  readonly path: string;
  readonly type: KeyType;
  readonly bits: number;
  readonly key: KeyObject;
}

export type KeyLookup =
  | { readonly kind: 'found'; readonly key: SigningKey }
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'error'; readonly path: string; readonly reason: string };

/** How key files are read; tests substitute one that records every path asked for. */
export type ReadFile = (path: string) => Buffer;

/**
 * A PEM RSA key of 16384 bits is about 12 KB: anything over this is not a key, and reading it
 * could only grow the process (a key path that is /dev/zero, or a log file put there by mistake).
 */
export const MAX_KEY_BYTES = 64 << 10;

/** A key file: regular, at most MAX_KEY_BYTES, opened without waiting (read-bounded.ts). */
export const readKeyFile: ReadFile = (path) => readBounded(path, MAX_KEY_BYTES);


/** A key file name that can stand as s=: dot-separated labels of letters, digits, '-' and '_'. */
export function isSelector(text: string): boolean {
  return SELECTOR.test(text);
}

/**
 * Finds the key for `rawDomain` under `template`. A template without `%` names one key for
 * every domain, and d= is then the message's own domain. Relative templates are taken from
 * the qmail home directory, where the original qmail-remote runs.
 */
export function lookupKey(template: string, rawDomain: string, qmailHome: string, read: ReadFile = readKeyFile): KeyLookup {
  const domain = canonicalDomain(rawDomain);
  if (domain === null) return { kind: 'none', reason: `not a valid domain: ${JSON.stringify(rawDomain.slice(0, 80))}` };
  const absolute = isAbsolute(template) ? template : resolve(qmailHome, template);
  if (!absolute.includes('%')) return readKey(absolute, domain, read) ?? { kind: 'none', reason: `no key file ${absolute}` };
  for (const candidate of parentDomains(domain)) {
    const found = readKey(absolute.replaceAll('%', candidate), candidate, read);
    if (found) return found;
  }
  return { kind: 'none', reason: `no key for ${domain} or its parent domains under ${absolute}` };
}

/** The key at `path`, null when there is no file there, or the reason it cannot be used. */
function readKey(path: string, domain: string, read: ReadFile): KeyLookup | null {
  let pem: Buffer;
  try {
    pem = read(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    return { kind: 'error', path, reason: `cannot read key file: ${whyUnreadable(code)}` };
  }
  const selector = basename(path);
  if (!isSelector(selector)) return { kind: 'error', path, reason: `key file name is not a valid selector: ${selector}` };
  const parsed = parseKey(pem);
  if (typeof parsed === 'string') return { kind: 'error', path, reason: parsed };
  return { kind: 'found', key: { domain, selector, path, ...parsed } };
}

function whyUnreadable(code: string | undefined): string {
  if (code === 'EISDIR') return 'it is a directory';
  if (code === NOT_REGULAR) return 'not a regular file (a FIFO, device or socket)';
  if (code === TOO_LARGE) return `over ${MAX_KEY_BYTES >> 10} KB, which no key is`;
  return code ?? 'error';
}

/** PEM PKCS#1 RSA (dknewkey, openssl genrsa), PKCS#8 RSA or PKCS#8 ed25519. */
export function parseKey(pem: Buffer): { type: KeyType; bits: number; key: KeyObject } | string {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return 'key file is not a PEM private key';
  }
  if (key.asymmetricKeyType === 'rsa') return { type: 'rsa', bits: key.asymmetricKeyDetails?.modulusLength ?? 0, key };
  if (key.asymmetricKeyType === 'ed25519') return { type: 'ed25519', bits: 256, key };
  return `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`;
}
