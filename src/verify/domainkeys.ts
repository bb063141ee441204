// A small DomainKeys checker for the demo, for machines without Perl's Mail::DKIM. It shares
// the canonicalizer with the signer, so it proves the signature matches the bytes, not that
// the canonicalization is right; the tests leave that to Mail::DKIM.
import { createPublicKey, createVerify } from 'node:crypto';
import { HeadReader, fieldValue, type HeaderField } from '../mail/header.ts';
import { DkCanonicalizer, type DkCanonicalization } from '../canon/dk.ts';

/** "pass", or "fail (why)", for the first DomainKey-Signature of a CRLF message. */
export function verifyDomainKeys(message: Buffer, record: string): string {
  const reader = new HeadReader();
  const body = reader.push(message) ?? Buffer.alloc(0);
  const head = reader.head ?? reader.end();
  const at = head.fields.findIndex((field) => field.key === 'domainkey-signature');
  if (at === -1) return 'none';
  const tags = tagList(fieldValue(head.fields[at] as HeaderField).toString('latin1'));
  const names = tags.get('h')?.split(':').map((name) => name.trim().toLowerCase());
  const covered = head.fields.slice(at + 1).filter((field) => !names || names.includes(field.key));
  const verifier = createVerify('sha1');
  const canon = new DkCanonicalizer((tags.get('c') ?? 'simple') as DkCanonicalization, (data) => verifier.update(data));
  for (const field of covered) canon.header(field);
  if (head.hasSeparator) canon.separator();
  canon.body(body);
  canon.end();
  const p = tagList(record).get('p');
  if (!p) return 'fail (no key in the record)';
  const key = createPublicKey({ key: Buffer.from(p, 'base64'), format: 'der', type: 'spki' });
  const signature = Buffer.from((tags.get('b') ?? '').replace(/\s+/g, ''), 'base64');
  return verifier.verify(key, signature) ? 'pass' : 'fail (signature does not match)';
}

function tagList(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return tags;
}
