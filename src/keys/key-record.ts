// The DNS side of a signing key: the DKIM key record (RFC 6376 §3.6.1) published as TXT at
// <selector>._domainkey.<domain>, how to write it for a BIND zone, and how to read one back to
// check it against the private key. One record serves DomainKeys too: libdomainkeys reads
// k= and p= and ignores v=.
//
// Only public key bytes pass through here; the private key is used to derive them and never
// appears in a result or a message.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { KeyType } from '../signing/keys.ts';
import { parseTagList } from '../common/tag-list.ts';

/** RFC 1035 §3.3.14: one character-string of a TXT record holds at most 255 bytes. */
export const MAX_TXT_STRING = 255;

/** k= and p= for the key: SPKI DER for RSA (RFC 6376 §3.6.1), the raw 32 bytes for Ed25519 (RFC 8463 §4.2). */
export function publicKeyData(key: KeyObject): { k: KeyType; p: string } {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  if (publicKey.asymmetricKeyType === 'ed25519') {
    // The SPKI of an Ed25519 key is a fixed 12-byte prefix and the raw key (RFC 8410 §4).
    return { k: 'ed25519', p: spki.subarray(spki.length - 32).toString('base64') };
  }
  return { k: 'rsa', p: spki.toString('base64') };
}

/** The record text: `v=DKIM1; k=rsa; p=…`. */
export function keyRecord(key: KeyObject): string {
  const { k, p } = publicKeyData(key);
  return `v=DKIM1; k=${k}; p=${p}`;
}

/**
 * A BIND zone line: `owner IN TXT ( "v=DKIM1; k=rsa; " "p=…" … )`. A 2048-bit key does not
 * fit in one 255-byte string; the parentheses keep the strings on one logical line, and
 * verifiers join them (RFC 6376 §3.6.2.2).
 */
export function bindRecord(owner: string, record: string): string {
  const at = record.indexOf('p=');
  const strings = at > 0 ? [record.slice(0, at), ...chunks(record.slice(at))] : chunks(record);
  return `${owner} IN TXT ( ${strings.map((s) => `"${s}"`).join(' ')} )`;
}

function chunks(text: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += MAX_TXT_STRING) pieces.push(text.slice(i, i + MAX_TXT_STRING));
  return pieces.length > 0 ? pieces : [''];
}

export interface KeyRecord {
  readonly tags: ReadonlyMap<string, string>;
  /** k=, rsa when absent. */
  readonly k: string;
  /** p= with folding white space removed; empty means revoked. */
  readonly p: string;
  /** t= flags (y: testing, s: no subdomains in i=). */
  readonly flags: readonly string[];
  /** h=, acceptable hash algorithms; null when absent (all). */
  readonly hashes: readonly string[] | null;
  /** s=, service types; `*` when absent. */
  readonly services: readonly string[];
}

const FWS = /[ \t\r\n]+/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The record parsed as a DKIM key record, or why it is not one. */
export function parseKeyRecord(text: string): KeyRecord | string {
  const tags = parseTagList(text);
  if (typeof tags === 'string') return tags;
  const v = tags.get('v');
  if (v !== undefined && (v !== 'DKIM1' || [...tags.keys()][0] !== 'v')) return 'v= must come first and be DKIM1';
  const p = tags.get('p');
  if (p === undefined) return 'no p= tag';
  const key = p.replace(FWS, '');
  if (!BASE64.test(key)) return 'p= is not base64';
  const list = (value: string | undefined): string[] | null =>
    value === undefined ? null : value.split(':').map((item) => item.replace(FWS, '')).filter((item) => item !== '');
  return {
    tags,
    k: tags.get('k') ?? 'rsa',
    p: key,
    flags: list(tags.get('t')) ?? [],
    hashes: list(tags.get('h')),
    services: list(tags.get('s')) ?? ['*'],
  };
}

/** Why the record does not publish this key, or null when it does. */
export function recordMismatch(record: KeyRecord, key: KeyObject): string | null {
  const mine = publicKeyData(key);
  if (record.k !== mine.k) return `k=${record.k} but the key is ${mine.k}`;
  if (record.p === mine.p) return null;
  if (mine.k === 'ed25519' && samePublicKey(record.p, key)) return 'p= is an SPKI structure; k=ed25519 needs the raw 32-byte key (RFC 8463)';
  if (mine.k === 'rsa' && samePublicKey(record.p, key)) return null;
  return 'p= is not the public key of this private key';
}

/** The record's key read as DER, SPKI or PKCS#1, is the same public key (some publish PKCS#1). */
function samePublicKey(p: string, key: KeyObject): boolean {
  const der = Buffer.from(p, 'base64');
  const mine = createPublicKey(key).export({ type: 'spki', format: 'der' });
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const theirs = createPublicKey({ key: der, format: 'der', type }).export({ type: 'spki', format: 'der' });
      if (theirs.equals(mine)) return true;
    } catch {
      // not this encoding: try the next
    }
  }
  return false;
}
