// DomainKey-Signature (RFC 4870, historic): a=rsa-sha1; q=dns; c=nofws (or simple). Header
// fields and body are hashed together with SHA-1 in one pass, so the signer takes the header
// fields first and then the body as it streams. It covers only what lies below it: it must be
// the lowest signature placed on the message.
import { createSign, type Sign } from 'node:crypto';
import type { Head } from '../mail/header.ts';
import type { SigningKey } from './keys.ts';
import { DkCanonicalizer, type DkCanonicalization } from '../canon/dk.ts';
import { foldTags } from './fold.ts';

export interface DomainKeysOptions {
  readonly key: SigningKey;
  readonly canonicalization: DkCanonicalization;
}

/** Why libdomainkeys would refuse this head (docs/qmail-remote.md §8), or null when it can be signed. */
export function domainKeysRefusal(head: Head): string | null {
  const count = (name: string): number => head.fields.filter((field) => field.key === name).length;
  if (count('from') === 0) return 'no From: header';
  if (count('from') > 1) return 'more than one From: header';
  if (count('sender') > 1) return 'more than one Sender: header';
  const firstSender = head.fields.findIndex((field) => field.key === 'sender');
  const firstDk = head.fields.findIndex((field) => field.key === 'domainkey-signature');
  if (firstDk !== -1 && (firstSender === -1 || firstSender > firstDk)) return 'already has a DomainKey-Signature';
  return null;
}

// A field name that could not stand in a tag list (';', '=', ':'...) leaves h= out: without
// h= the signature covers every field below it anyway.
const TAG_SAFE_NAME = /^[A-Za-z0-9_.-]+$/;

export class DomainKeysSigner {
  private readonly options: DomainKeysOptions;
  private readonly names: string[];
  private readonly hash: Sign;
  private readonly canon: DkCanonicalizer;

  /** Throws if this OpenSSL refuses SHA-1 signatures; the caller then signs without DomainKeys. */
  constructor(options: DomainKeysOptions, head: Head) {
    this.options = options;
    this.hash = createSign('sha1');
    this.canon = new DkCanonicalizer(options.canonicalization, (data) => this.hash.update(data));
    for (const field of head.fields) this.canon.header(field);
    if (head.hasSeparator) this.canon.separator();
    this.names = head.fields.map((field) => field.name);
  }

  body(chunk: Buffer): void {
    this.canon.body(chunk);
  }

  /**
   * The nofws body, canonical already (src/canon/body.ts, which counts the separator as its
   * first line), instead of body().
   */
  canonicalBody(data: Buffer): void {
    this.hash.update(data);
  }

  get canonicalization(): DkCanonicalization {
    return this.options.canonicalization;
  }

  /** The DomainKey-Signature header field, folded, ending in CRLF. */
  finish(): Buffer {
    this.canon.end();
    const { key, canonicalization } = this.options;
    const b = this.hash.sign(key.key).toString('base64');
    const tags = ['a=rsa-sha1', 'q=dns', `c=${canonicalization}`, `s=${key.selector}`, `d=${key.domain}`];
    // h= names every field in the order it is hashed, repeats included (RFC 4870 §3.3: "the
    // complete list of headers in the order presented"), so all stay covered and a field
    // someone appends below the signature later does not break it.
    if (this.names.length > 0 && this.names.every((name) => TAG_SAFE_NAME.test(name))) tags.push(`h=${this.names.join(':')}`);
    tags.push(`b=${b}`);
    return Buffer.from(foldTags('DomainKey-Signature', tags), 'latin1');
  }
}
