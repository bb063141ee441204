// mailauth's DKIM results as DKVERIFY letters and RFC 8601 results, one per DKIM-Signature in
// header order. mailauth (lenient mode) leaves out of its results the signatures it cannot
// process at all (unknown a= or c=, no d= or s=); those are found here from the header
// fields themselves and reported as permerror, so that a signature never silently vanishes.
import { fieldValue, type Head, type HeaderField } from '../mail/header.ts';
import { MAX_DKIM_SIGNATURES, MAX_SIGNED_NAMES, MAX_SPACE_RUN, signedNameCount, spaceRunOver } from './bounds.ts';
import type { DkimLetter } from './letters.ts';
import type { DkimSignatureResult } from './mailauth-checks.ts';
import { parseTags } from './tags.ts';
import { SELECTOR } from '../mail/selector.ts';

export interface DkimEntry {
  readonly letter: DkimLetter;
  readonly result: string;
  readonly comment?: string;
  readonly d?: string;
  readonly s?: string;
  readonly a?: string;
  /** The first 8 characters of b=, as RFC 6008 header.b. */
  readonly b?: string;
}


interface Mapped {
  letter: DkimLetter;
  result: string;
  comment?: string;
}

const entry = (letter: DkimLetter, result: string, comment?: string): Mapped => ({ letter, result, ...(comment ? { comment } : {}) });

/** One mailauth result as a letter and an RFC 8601 result (the table in docs/verify.md). */
export function mapDkimResult(row: DkimSignatureResult): Mapped {
  const status = row.status;
  const comment = typeof status.comment === 'string' ? status.comment : '';
  const warnings = status.warnings ?? [];
  const d = row.signingDomain ?? '';
  const s = row.selector ?? '';
  if (status.result === 'none') return entry('N', 'none', comment || 'message not signed');
  if (`${s}._domainkey.${d}`.length > 253 || d.split('.').some((label) => label.length > 63)) {
    return entry('J', 'permerror', 'domain too long');
  }
  if (!SELECTOR.test(s)) return entry('G', 'permerror', 'selector is not a valid name');
  if (warnings.includes(MAILAUTH_WARNINGS.version)) return entry('R', 'permerror', 'incompatible version');
  if (warnings.includes(MAILAUTH_WARNINGS.identity)) return entry('H', 'permerror', 'i= does not match d= or the key');
  if (row.canonBodyLengthLimited && (row.canonBodyLengthLimit ?? 0) > (row.canonBodyLengthTotal ?? 0)) {
    // mailauth hashes the whole body then; dkimpy and RFC 6376 §6.1.3 call it a failure.
    return entry('P', 'fail', 'l= is longer than the body');
  }
  switch (status.result) {
    case 'pass':
      return entry('A', 'pass', [status.testing ? 'test mode' : '', partialBody(row)].filter(Boolean).join('; ') || undefined);
    case 'fail':
      if (comment === BODY_HASH_FAILED) return entry('P', 'fail', comment);
      return status.testing ? entry('E', 'fail', 'bad signature, test mode') : entry('D', 'fail', 'bad signature');
    case 'temperror':
      return entry('K', 'temperror', comment || 'key lookup failed');
    case 'policy':
      return entry('M', 'policy', comment || 'key too weak');
    default:
      return mapNeutral(comment, row);
  }
}

/**
 * A pass whose l= leaves part of the body unsigned is still a pass (RFC 6376 §3.5 allows it),
 * but it says so: text after the signed part (a replayed message with an added offer) is not
 * the signer's.
 */
function partialBody(row: DkimSignatureResult): string {
  if (!row.canonBodyLengthLimited) return '';
  const signed = row.canonBodyLengthLimit ?? 0;
  const total = row.canonBodyLengthTotal ?? 0;
  return signed < total ? `l=${signed} signs only part of the ${total}-octet body` : '';
}

/**
 * mailauth's free-text comments and warning codes this mapping depends on: the one place that
 * reads them. test/verify/mailauth-contract.test.ts checks each still exists in the installed
 * mailauth (pinned exactly in package.json) and still gives its letter.
 */
export const BODY_HASH_FAILED = 'body hash did not verify';
export const MAILAUTH_WARNINGS = { version: 'invalid-v', identity: 'identity-domain' } as const;

/** A neutral result's comment → letter, RFC 8601 result and our comment (same text if absent). */
export const NEUTRAL_COMMENTS: Readonly<Record<string, readonly [DkimLetter, string, string?]>> = {
  // mailauth's lenient mode says neutral; OpenDKIM, Exim and rspamd say fail.
  [BODY_HASH_FAILED]: ['P', 'fail'],
  'expired': ['F', 'neutral', 'signature expired'],
  'invalid expiration': ['F', 'neutral'],
  'no key': ['L', 'permerror', 'no key for signature'],
  'unknown key type': ['M', 'permerror'],
  'unknown key version': ['G', 'permerror'],
  'key not for email': ['G', 'permerror'],
  'inappropriate hash algorithm': ['Q', 'permerror'],
  'inappropriate key algorithm': ['Q', 'permerror'],
  'incompatible version': ['R', 'permerror'],
  'domain mismatch': ['H', 'permerror'],
  'signature syntax error': ['C', 'permerror'],
  'signature missing required tag': ['C', 'permerror'],
  'From field not signed': ['C', 'permerror'],
  'unsupported query method': ['C', 'permerror'],
};
/** 'invalid public key' is I (revoked) or M, by the key record itself. */
export const INVALID_KEY = 'invalid public key';

function mapNeutral(comment: string, row: DkimSignatureResult): Mapped {
  if (comment === INVALID_KEY) return revoked(row.rr) ? entry('I', 'permerror', 'key revoked') : entry('M', 'permerror', comment);
  const known = NEUTRAL_COMMENTS[comment];
  if (known) return entry(known[0], known[1], known[2] ?? comment);
  // What the crypto library threw (a key of another type than a=, say).
  return entry('B', 'permerror', comment || 'signature could not be checked');
}

/** A key record whose p= is empty: the key was revoked (RFC 6376 §3.6.1). */
function revoked(rr: string | undefined): boolean {
  if (!rr) return false;
  const p = /(?:^|;)\s*p=([^;]*)/.exec(rr);
  return p !== null && (p[1] ?? '').trim() === '';
}

const CHECKED = new WeakMap<Head, Set<HeaderField>>();

/**
 * The DKIM-Signature fields that are checked (bounds.ts): the first MAX_DKIM_SIGNATURES in
 * header order, less those whose h= lists more than MAX_SIGNED_NAMES names.
 */
export function checkedSignatures(head: Head): ReadonlySet<HeaderField> {
  let checked = CHECKED.get(head);
  if (checked) return checked;
  checked = new Set();
  for (const field of firstSignatures(head)) {
    if (uncheckable(field) === null) checked.add(field);
  }
  CHECKED.set(head, checked);
  return checked;
}

/** Why a signature is past the bounds and not given to mailauth, or null. */
function uncheckable(field: HeaderField): string | null {
  if (spaceRunOver(field.raw)) return `more than ${MAX_SPACE_RUN} spaces in a row`;
  const h = parseTags(fieldValue(field).toString('latin1'))?.get('h') ?? '';
  return signedNameCount(h) > MAX_SIGNED_NAMES ? `h= lists more than ${MAX_SIGNED_NAMES} fields` : null;
}

function firstSignatures(head: Head): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const field of head.fields) {
    if (field.key !== 'dkim-signature') continue;
    fields.push(field);
    if (fields.length === MAX_DKIM_SIGNATURES) break;
  }
  return fields;
}

/**
 * Every checked DKIM-Signature of the head, in order, with mailauth's result for exactly that
 * signature. mailauth reports in header order and leaves out what it cannot process, so the
 * results are taken in order: a field takes the next result only when that result names the
 * same d=, s=, a= and b=; otherwise mailauth skipped the field. Two signatures alike in all
 * four would make the same result, so which of them a result goes to cannot matter.
 */
export function dkimEntries(head: Head, rows: readonly DkimSignatureResult[]): DkimEntry[] {
  const signed = rows.filter((row) => row.status.result !== 'none');
  const checked = checkedSignatures(head);
  let next = 0;
  const entries: DkimEntry[] = [];
  for (const field of firstSignatures(head)) {
    const tags = parseTags(fieldValue(field).toString('latin1'));
    const b = (tags?.get('b') ?? '').replace(/[ \t\r\n]+/g, '');
    const names = { d: tags?.get('d') ?? '', s: tags?.get('s') ?? '', a: tags?.get('a') ?? '', b: b.slice(0, 8) };
    if (!checked.has(field)) {
      entries.push({ ...names, ...entry('C', 'permerror', uncheckable(field) ?? 'not checked') });
      continue;
    }
    const row = signed[next];
    if (row === undefined || !sameSignature(row, names.d, names.s, names.a, b)) {
      entries.push({ ...names, ...skipped(tags) });
      continue;
    }
    next++;
    entries.push({ ...names, ...mapDkimResult(row) });
  }
  // Anything mailauth reported that was not matched (it should not happen): still reported.
  for (const row of signed.slice(next)) {
    entries.push({ d: row.signingDomain ?? '', s: row.selector ?? '', a: row.algo ?? '', b: (row.signature ?? '').slice(0, 8), ...mapDkimResult(row) });
  }
  const unchecked = head.fields.reduce((count, field) => count + (field.key === 'dkim-signature' ? 1 : 0), 0) - MAX_DKIM_SIGNATURES;
  if (unchecked > 0) entries.push({ letter: 'N', result: 'none', comment: `${unchecked} more signatures not checked` });
  if (entries.length === 0) entries.push({ letter: 'N', result: 'none', comment: 'message not signed' });
  return entries;
}

function sameSignature(row: DkimSignatureResult, d: string, s: string, a: string, b: string): boolean {
  const same = (x: string | undefined, y: string): boolean => (x ?? '').toLowerCase() === y.toLowerCase();
  return same(row.signingDomain, d) && same(row.selector, s) && same(row.algo, a)
    && (row.signature ?? '').replace(/[ \t\r\n]+/g, '') === b;
}

/** Why mailauth skipped a signature, as it would say in its strict mode. */
function skipped(tags: ReadonlyMap<string, string> | null): Mapped {
  if (!tags) return entry('C', 'permerror', 'signature syntax error');
  const a = (tags.get('a') ?? '').toLowerCase();
  if (!['rsa-sha256', 'rsa-sha1', 'ed25519-sha256'].includes(a)) return entry('C', 'permerror', 'unknown algorithm');
  const c = (tags.get('c') ?? 'simple/simple').toLowerCase().split('/');
  if (!c.every((part) => part === 'simple' || part === 'relaxed')) return entry('C', 'permerror', 'unknown canonicalization');
  if (!tags.get('d') || !tags.get('s')) return entry('C', 'permerror', 'signature missing required tag');
  return entry('C', 'permerror', 'signature could not be processed');
}

/** The message's DKIM letter: A if any signature passes, else that of the topmost one. */
export function messageDkimLetter(entries: readonly DkimEntry[]): DkimLetter {
  if (entries.some((e) => e.letter === 'A')) return 'A';
  return entries[0]?.letter ?? 'N';
}
