// DomainKeys verification (RFC 4870, historic): the first DomainKey-Signature of the message,
// a=rsa-sha1, c=nofws or simple, the key from the TXT record selector._domainkey.d, h= honoured,
// and the identity rules: the sending address is that of Sender: if there is one, else From:,
// and its domain must be d= or below it. No maintained npm package does this. The header
// fields and body are canonicalized by the canonicalizer the signer uses (src/canon/dk.ts);
// the tests check every result against Perl's Mail::DKIM.
//
// Each result carries libdomainkeys' status (the DKVERIFY letter) and the RFC 8601 result.
import { createPublicKey, createVerify, type KeyObject, type Verify } from 'node:crypto';
import { HeadReader, fieldValue, type Head, type HeaderField } from '../mail/header.ts';
import { DkCanonicalizer, type DkCanonicalization } from '../canon/dk.ts';
import { mailboxAddresses } from '../mail/sender-domain.ts';
import { canonicalDomain } from '../mail/domain.ts';
import type { DkLetter } from './letters.ts';
import { parseTags, type Tags } from './tags.ts';
import { SELECTOR } from '../mail/selector.ts';

export type DkAuthResult = 'pass' | 'fail' | 'none' | 'neutral' | 'temperror' | 'permerror';

export interface DkResult {
  readonly letter: DkLetter;
  readonly result: DkAuthResult;
  /** Why, for the comment of the Authentication-Results entry. */
  readonly comment?: string;
  readonly domain?: string;
  readonly selector?: string;
  /** The sending address and the header it came from. */
  readonly identity?: { readonly header: 'from' | 'sender'; readonly address: string };
}

/** A key lookup outcome: the TXT records (each as its character-strings), or why there are none. */
export type KeyAnswer = { records: string[][] } | { error: 'nokey' | 'temporary' };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const result = (letter: DkLetter, auth: DkAuthResult, comment?: string, more: Partial<DkResult> = {}): DkResult => ({
  letter, result: auth, ...(comment !== undefined ? { comment } : {}), ...more,
});

/**
 * One DomainKeys check: made from the head, fed the body chunks of the normalised (CRLF)
 * message, then finished with the key record. `done` is set when no key is needed.
 */
export class DomainKeysCheck {
  /** The result already known from the head alone (no signature, bad syntax...). */
  readonly done: DkResult | null;
  /** The TXT name to look up when `done` is null. */
  readonly keyName: string = '';
  private readonly tags: Tags = new Map();
  private readonly hash: Verify | null = null;
  private readonly canon: DkCanonicalizer | null = null;
  private readonly identity: DkResult['identity'];
  private readonly localPart: string = '';

  constructor(head: Head) {
    if (head.oversize) {
      this.done = result('H', 'temperror', 'header section too large to check');
      return;
    }
    const at = head.fields.findIndex((field) => field.key === 'domainkey-signature');
    if (at === -1) {
      this.done = result('C', 'none', 'no DomainKey-Signature');
      return;
    }
    const parsed = parseTags(fieldValue(head.fields[at] as HeaderField).toString('latin1'));
    if (!parsed) {
      this.done = result('G', 'permerror', 'DomainKey-Signature is not a tag list');
      return;
    }
    this.tags = parsed;
    const d = parsed.get('d') ?? '';
    const s = parsed.get('s') ?? '';
    const b = (parsed.get('b') ?? '').replace(/[ \t\r\n]+/g, '');
    const names = { domain: d, selector: s };
    if (!d || !s || !b) {
      this.done = result('C', 'permerror', 'DomainKey-Signature lacks d=, s= or b=', names);
      return;
    }
    const syntax = signatureSyntax(parsed, b);
    if (syntax) {
      this.done = result('G', 'permerror', syntax, names);
      return;
    }
    // Only what the signature could cover counts: fields above it were added later (a
    // list's Sender:, our own Received:) and are not the signer's (Mail::DKIM reads it so).
    const sender = senderOf(head.fields.slice(at + 1));
    if ('error' in sender) {
      this.done = result(sender.letter, 'permerror', sender.error, names);
      return;
    }
    this.identity = { header: sender.header, address: sender.address };
    this.localPart = sender.localPart;
    const more = { ...names, identity: this.identity };
    const domain = canonicalDomain(d);
    if (domain === null || !SELECTOR.test(s)) {
      this.done = result('G', 'permerror', 'd= or s= is not a domain name', more);
      return;
    }
    if (sender.domain !== domain && !sender.domain.endsWith(`.${domain}`)) {
      // libdomainkeys' dk_end() returns DK_STAT_SYNTAX for this, not DK_STAT_BADSIG: the
      // signature is not one this sender could make, whatever its bytes.
      this.done = result('G', 'permerror', `the ${sender.header} domain is not d= nor below it`, more);
      return;
    }
    const signedNames = signedFieldNames(parsed.get('h'));
    const covered = head.fields.slice(at + 1).filter((field) => !signedNames || signedNames.has(field.key));
    if (!covered.some((field) => field.key === sender.header)) {
      this.done = result('B', 'fail', `the ${sender.header} header is not signed`, more);
      return;
    }
    this.done = null;
    this.keyName = `${s}._domainkey.${domain}`;
    try {
      this.hash = createVerify('sha1');
    } catch {
      this.done = result('K', 'temperror', 'this system cannot verify rsa-sha1', more);
      return;
    }
    const hash = this.hash;
    this.canon = new DkCanonicalizer((parsed.get('c') ?? 'simple') as DkCanonicalization, (data) => hash.update(data));
    for (const field of covered) this.canon.header(field);
    if (head.hasSeparator) this.canon.separator();
  }

  body(chunk: Buffer): void {
    this.canon?.body(chunk);
  }

  /** What is known of the signature without its key, for a result decided elsewhere. */
  partial(): Pick<DkResult, 'domain' | 'selector' | 'identity'> {
    return { domain: this.tags.get('d') ?? '', selector: this.tags.get('s') ?? '', ...(this.identity ? { identity: this.identity } : {}) };
  }

  /** The result, given what the key lookup for `keyName` gave. */
  finish(answer: KeyAnswer): DkResult {
    if (this.done) return this.done;
    const more = this.partial();
    if ('error' in answer) {
      return answer.error === 'nokey'
        ? result('D', 'permerror', 'no key', more)
        : result('F', 'temperror', 'key lookup failed', more);
    }
    const record = answer.records[0];
    if (record === undefined) return result('D', 'permerror', 'no key', more);
    const key = parseKeyRecord(record.join(''));
    if ('letter' in key) return result(key.letter, 'permerror', key.comment, more);
    if (key.granularity !== null && !granularityMatches(key.granularity, this.localPart)) {
      return result('B', 'fail', 'the key does not allow this sender (g=)', more);
    }
    (this.canon as DkCanonicalizer).end();
    const signature = Buffer.from((this.tags.get('b') ?? '').replace(/[ \t\r\n]+/g, ''), 'base64');
    let verified: boolean;
    try {
      verified = (this.hash as Verify).verify(key.key, signature);
    } catch {
      return result('K', 'temperror', 'this system cannot verify rsa-sha1', more);
    }
    const testing = key.testing ? ', testing' : '';
    return verified ? result('A', 'pass', key.testing ? 'testing' : undefined, more)
      : result('B', 'fail', `signature does not verify${testing}`, more);
  }
}

function signatureSyntax(tags: Tags, b: string): string | null {
  const a = tags.get('a') ?? 'rsa-sha1';
  if (a !== 'rsa-sha1') return `unknown algorithm a=${a}`;
  const c = tags.get('c') ?? 'simple';
  if (c !== 'simple' && c !== 'nofws') return `unknown canonicalization c=${c}`;
  const q = tags.get('q') ?? 'dns';
  if (q !== 'dns') return `unknown query method q=${q}`;
  if (!BASE64.test(b)) return 'b= is not base64';
  return null;
}

type Sender =
  | { header: 'from' | 'sender'; address: string; localPart: string; domain: string }
  | { error: string; letter: DkLetter };

/** The sending address: Sender: if present, else From:; each at most once (libdomainkeys). */
function senderOf(fields: readonly HeaderField[]): Sender {
  const senders = fields.filter((field) => field.key === 'sender');
  const froms = fields.filter((field) => field.key === 'from');
  if (senders.length > 1) return { error: 'more than one Sender: header', letter: 'G' };
  if (froms.length > 1) return { error: 'more than one From: header', letter: 'G' };
  const field = senders[0] ?? froms[0];
  if (!field) return { error: 'no From: header', letter: 'C' };
  const header = senders[0] ? 'sender' : 'from';
  // The address is the one whose domain is checked, read by the same tokenizer: a display
  // name such as "<ceo@bank.test>" is a quoted string, never the address.
  const mailbox = mailboxAddresses(fieldValue(field).toString('utf8'), 1)[0];
  const domain = mailbox === undefined ? null : canonicalDomain(mailbox.domain);
  if (mailbox === undefined || domain === null) return { error: `no address in the ${header} header`, letter: 'G' };
  const printable = /^[\x21-\x7e]+$/.test(mailbox.local) ? mailbox.local : '';
  return { header, address: `${printable}@${domain}`, localPart: mailbox.local, domain };
}

/** h= as a set of lowercase names (null: no h=, every field counts); bounded by the caller's cap on the field. */
function signedFieldNames(h: string | undefined): Set<string> | null {
  if (h === undefined) return null;
  const names = new Set<string>();
  for (const name of h.split(':')) {
    const key = name.trim().toLowerCase();
    if (key !== '') names.add(key);
  }
  return names;
}

type KeyRecord = { key: KeyObject; testing: boolean; granularity: string | null } | { letter: DkLetter; comment: string };

/** A DomainKeys key record (RFC 4870 §3.2.3): k=rsa, p= base64 DER, g=, t=y. */
function parseKeyRecord(text: string): KeyRecord {
  const tags = parseTags(text);
  if (!tags) return { letter: 'E', comment: 'key record is not a tag list' };
  const p = (tags.get('p') ?? '').replace(/[ \t\r\n]+/g, '');
  if (!tags.has('p')) return { letter: 'E', comment: 'key record has no p=' };
  if (p === '') return { letter: 'J', comment: 'key revoked' };
  const k = tags.get('k') ?? 'rsa';
  if (k !== 'rsa') return { letter: 'E', comment: `unknown key type k=${k}` };
  if (!BASE64.test(p)) return { letter: 'E', comment: 'p= is not base64' };
  const der = Buffer.from(p, 'base64');
  let key: KeyObject | null = null;
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      key = createPublicKey({ key: der, format: 'der', type });
      break;
    } catch {
      // try the other form
    }
  }
  if (!key || key.asymmetricKeyType !== 'rsa') return { letter: 'E', comment: 'p= is not an RSA public key' };
  const flags = (tags.get('t') ?? '').split(':').map((flag) => flag.trim());
  const g = tags.get('g');
  return { key, testing: flags.includes('y'), granularity: g === undefined || g === '' ? null : g };
}

/** g= with at most one "*" matching any run of characters (RFC 4870 §3.2.3). */
function granularityMatches(pattern: string, localPart: string): boolean {
  const star = pattern.indexOf('*');
  if (star === -1) return pattern === localPart;
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(star + 1);
  return localPart.length >= prefix.length + suffix.length && localPart.startsWith(prefix) && localPart.endsWith(suffix);
}

/**
 * The demo's check, for machines without Perl's Mail::DKIM: the first DomainKey-Signature of a
 * CRLF message against the key record text given. "pass", "none", or "fail (why)".
 */
export function verifyDomainKeys(message: Buffer, record: string): string {
  const reader = new HeadReader();
  const body = reader.push(message) ?? Buffer.alloc(0);
  const head = reader.head ?? reader.end();
  const check = new DomainKeysCheck(head);
  check.body(body);
  const outcome = check.finish({ records: [[record]] });
  if (outcome.result === 'pass' || outcome.result === 'none') return outcome.result;
  return `fail (${outcome.comment ?? outcome.result})`;
}
