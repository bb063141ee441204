// What one message may make qmail-dkverify do. Strangers write every header it reads, and
// qmail-smtpd neither times out its queue program nor limits how many run (tcpserver allows
// 40 at once), so each kind of work is capped before it is parsed, and the whole check has a
// deadline that a watchdog keeps from outside the process (check-bounded.ts).
// docs/verify.md lists each attack class with its bound and the test that shows it.
// The bounds on the header section itself are shared with sealing: src/mail/header-bounds.ts.
export { MAX_FIELDS, MAX_LINES_PER_FIELD, MAX_SPACE_RUN, headerBeyondBounds, spaceRunOver } from '../mail/header-bounds.ts';

/** DKIM-Signature fields checked, the first in header order (OpenDKIM's MaximumSignaturesToVerify). */
export const MAX_DKIM_SIGNATURES = 10;
/** Names in one signature's h= (a real signer lists a few dozen). */
export const MAX_SIGNED_NAMES = 256;
/** DNS queries one message may cause, all checks together (SPF's own limit of 10 included). */
export const MAX_LOOKUPS = 50;

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
