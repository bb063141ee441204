// What one message may make qmail-dkverify do. Strangers write every header it reads, and
// qmail-smtpd neither times out its queue program nor limits how many run (tcpserver allows
// 40 at once), so each kind of work is capped before it is parsed, and the whole check runs
// in a worker thread that is stopped from outside at the deadline (check-bounded.ts).
// docs/verify.md lists each attack class with its bound and the test that shows it.
import type { Head } from '../mail/header.ts';

/** DKIM-Signature fields checked, the first in header order (OpenDKIM's MaximumSignaturesToVerify). */
export const MAX_DKIM_SIGNATURES = 10;
/** Names in one signature's h= (a real signer lists a few dozen). */
export const MAX_SIGNED_NAMES = 256;
/** Lines of one folded field: mailauth's header parser is quadratic in them. */
export const MAX_LINES_PER_FIELD = 1000;
/** Fields in the header section: the h= scans are names × fields. */
export const MAX_FIELDS = 5000;
/**
 * White space in one run inside a signature field (DKIM-Signature, ARC-*): mailauth's tag
 * parser is quadratic in such runs, and a real signer folds with a few spaces at a time.
 */
export const MAX_SPACE_RUN = 256;
/** DNS queries one message may cause, all checks together (SPF's own limit of 10 included). */
export const MAX_LOOKUPS = 50;
/** The worker's JavaScript heap; past it the worker is stopped and the checks are temperror. */
export const WORKER_HEAP_MB = 192;

/** Why the header section is past what is checked at all, or null. */
export function headerBeyondBounds(head: Head): string | null {
  if (head.fields.length > MAX_FIELDS) return `more than ${MAX_FIELDS} header fields`;
  for (const field of head.fields) {
    if (countLines(field.raw) > MAX_LINES_PER_FIELD) return `a header field of more than ${MAX_LINES_PER_FIELD} lines`;
    if (field.key.startsWith('arc-') && spaceRunOver(field.raw)) return `an ARC field with more than ${MAX_SPACE_RUN} spaces in a row`;
  }
  return null;
}

/** Whether the field holds a run of more than MAX_SPACE_RUN bytes of white space (CR and LF included). */
export function spaceRunOver(raw: Buffer): boolean {
  let run = 0;
  for (const byte of raw) {
    run = byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a ? run + 1 : 0;
    if (run > MAX_SPACE_RUN) return true;
  }
  return false;
}

function countLines(raw: Buffer): number {
  let lines = 0;
  for (let at = raw.indexOf(0x0a); at !== -1 && lines <= MAX_LINES_PER_FIELD; at = raw.indexOf(0x0a, at + 1)) lines++;
  return lines;
}

/** The number of h= names in a signature's tag text, counted without splitting it. */
export function signedNameCount(h: string): number {
  let names = 1;
  for (let at = h.indexOf(':'); at !== -1 && names <= MAX_SIGNED_NAMES; at = h.indexOf(':', at + 1)) names++;
  return names;
}

export class LookupLimitError extends Error {
  readonly code = 'ETIMEOUT';
  constructor() {
    super(`more than ${MAX_LOOKUPS} DNS lookups for one message`);
  }
}

/**
 * A resolve function that answers at most MAX_LOOKUPS queries; past that every query fails as
 * a timeout would, so the check it belongs to ends as temperror instead of asking on.
 */
export function limitLookups<A extends unknown[], R>(resolve: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let asked = 0;
  return (...args: A) => (++asked > MAX_LOOKUPS ? Promise.reject(new LookupLimitError()) : resolve(...args));
}
