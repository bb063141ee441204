// DKIM-Signature (RFC 6376), c=relaxed/relaxed, rsa-sha256 or ed25519-sha256 (RFC 8463).
// Both canonicalizations are written here: loading mailauth's signer costs every delivery
// ~55 ms (joi, tldts, libmime), and its body canonicalizer is slower than reading, hashing
// and sending a large message. Tests hold both sides to mailauth (its RelaxedHash and
// dkimVerify) and to two independent verifiers.
import { createHash, sign } from 'node:crypto';
import { RelaxedBodyHash } from '../canon/dkim-body.ts';
import { relaxedHeader } from '../canon/dkim-header.ts';
import type { HeaderField } from '../mail/header.ts';
import type { SigningKey } from './keys.ts';
import { foldTags } from './fold.ts';

/**
 * Signed when present, as RFC 6376 §5.4.1 recommends; each is listed once per instance.
 * Received, Return-Path and trace or X- fields are left out: relays add and rewrite them.
 */
export const SIGNED_HEADERS = [
  'from', 'sender', 'reply-to', 'subject', 'date', 'message-id', 'to', 'cc',
  'mime-version', 'content-type', 'content-transfer-encoding', 'content-id', 'content-description',
  'resent-date', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-message-id',
  'in-reply-to', 'references',
  'list-id', 'list-help', 'list-unsubscribe', 'list-subscribe', 'list-post', 'list-owner', 'list-archive',
] as const;

/**
 * Listed once more than they occur (absent ones once), so a receiver refuses a copy with one
 * added: a replayed message with a second Subject: or To: (RFC 6376 §8.15). rspamd, Exim and
 * OpenDKIM oversign these too.
 */
export const OVERSIGNED = ['from', 'to', 'cc', 'subject', 'reply-to', 'date', 'message-id'] as const;

export interface DkimOptions {
  readonly key: SigningKey;
  /** t=, seconds since the epoch. */
  readonly time: number;
  /** x= is t= plus this many seconds; no x= when absent. */
  readonly expireAfter?: number;
  /** i=, the agent or user identifier (RFC 6376 §3.5); none when absent. */
  readonly identity?: string;
  /** The field names to oversign, lowercase; OVERSIGNED when absent. */
  readonly oversign?: readonly string[];
}

export class DkimSigner {
  private readonly options: DkimOptions;
  private readonly fields: readonly HeaderField[];
  private readonly bodyHash = new RelaxedBodyHash('sha256');

  constructor(options: DkimOptions, fields: readonly HeaderField[]) {
    this.options = options;
    this.fields = fields;
  }

  get algorithm(): string {
    return this.options.key.type === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
  }

  body(chunk: Buffer): void {
    this.bodyHash.update(chunk);
  }

  /** The relaxed body, canonical already (src/canon/body.ts), instead of body(). */
  canonicalBody(data: Buffer): void {
    this.bodyHash.updateCanonical(data);
  }

  /** The DKIM-Signature header field, folded, ending in CRLF. */
  finish(): Buffer {
    const { key, time, expireAfter, identity } = this.options;
    const names = signedNames(this.fields, this.options.oversign);
    const tags = [
      'v=1',
      `a=${this.algorithm}`,
      'c=relaxed/relaxed',
      `d=${key.domain}`,
      `s=${key.selector}`,
      ...(identity !== undefined ? [`i=${identity}`] : []),
      `t=${time}`,
      ...(expireAfter !== undefined ? [`x=${time + expireAfter}`] : []),
      `h=${names.join(':')}`,
      `bh=${this.bodyHash.digest()}`,
      'b=',
    ];
    const unsigned = foldTags('DKIM-Signature', tags);
    const data = Buffer.concat([
      ...selectFields(this.fields, names).map((field) => relaxedHeader(field.raw, true)),
      relaxedHeader(Buffer.from(unsigned, 'latin1'), false),
    ]);
    const b = signData(key, data);
    return Buffer.from(foldTags('DKIM-Signature', [...tags.slice(0, -1), `b=${b}`]), 'latin1');
  }
}

/**
 * h=: every instance of the listed fields present, then each oversigned name once more, so
 * none of them can be added.
 */
export function signedNames(fields: readonly HeaderField[], oversign: readonly string[] = OVERSIGNED): string[] {
  const names: string[] = [];
  const listed = new Set<string>([...SIGNED_HEADERS, ...oversign]);
  for (const name of listed) {
    const count = fields.filter((field) => field.key === name).length;
    for (let i = 0; i < count; i++) names.push(name);
  }
  names.push(...oversign);
  return names;
}

/** RFC 6376 §5.4.2: a name listed n times takes its last n instances, from the bottom up. */
function selectFields(fields: readonly HeaderField[], names: readonly string[]): HeaderField[] {
  const used = new Set<HeaderField>();
  const selected: HeaderField[] = [];
  for (const name of names) {
    for (let i = fields.length - 1; i >= 0; i--) {
      const field = fields[i] as HeaderField;
      if (field.key !== name || used.has(field)) continue;
      used.add(field);
      selected.push(field);
      break;
    }
  }
  return selected;
}

function signData(key: SigningKey, data: Buffer): string {
  if (key.type === 'ed25519') {
    // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data, not the data itself.
    return sign(null, createHash('sha256').update(data).digest(), key.key).toString('base64');
  }
  return sign('sha256', data, key.key).toString('base64');
}
