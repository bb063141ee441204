// The checks under their deadline, kept twice. On this thread a timer ends the wait at the
// deadline: what the checks learned by then stands, the rest is temperror, and the message is
// queued. That timer needs the event loop, which a check busy in one long synchronous task (a
// regular expression, a parser loop) would hold; the caps of bounds.ts keep every task short,
// and for whatever they miss a watchdog, a process apart (bin/qmail-dkverify, watchdog.ts),
// kills this one when the checks are still running a grace period after the deadline:
// qmail-smtpd then answers 451, and the sender tries again later. The next program has not
// started yet: this process becomes it only once the message is handed over. Nothing is lost
// and nothing is passed unchecked either way.
//
// The checks used to run in a worker thread stopped at the deadline: that kept even a busy
// check's partial results, but cost ~100 ms of CPU per message to start (docs/verify.md).
import type { MessageSource } from '../mail/message.ts';
import type { Results } from './auth-results.ts';
import { checkMessage, UNFINISHED, type CheckSettings } from './check.ts';
import type { Watchdog } from './watchdog.ts';
import { VerifyFailure } from './outcomes.ts';

/**
 * How long past the deadline the watchdog waits for this thread's own timer. Every task the
 * checks run is bounded (bounds.ts) far below this; the longest, reading a 100 MiB body for
 * DomainKeys in one pass, takes about a second.
 */
export const WATCHDOG_GRACE_MS = 10_000;

/** Before the head is read, nothing is known but that nothing was checked. */
const NOTHING_YET: Results = {
  dk: { letter: 'F', result: 'temperror', comment: UNFINISHED },
  dkim: [{ letter: 'K', result: 'temperror', comment: UNFINISHED }],
  spf: { result: 'temperror', comment: UNFINISHED },
  dmarc: { result: 'temperror', comment: UNFINISHED },
  arc: { result: 'temperror', comment: UNFINISHED },
};

/** The checks, ended at `deadlineMs` here, and by `watchdog` (armed for WATCHDOG_GRACE_MS longer) from outside. */
export async function checkWithin(source: MessageSource, settings: CheckSettings, deadlineMs: number, watchdog: Watchdog): Promise<Results> {
  let fallback = NOTHING_YET;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Results>((resolve) => {
    timer = setTimeout(() => {
      // What the checks still wait for will not be used: their lookups end now, so that
      // they end soon too.
      settings.resolver.cancel();
      resolve(fallback);
    }, deadlineMs);
  });
  const checks = checkMessage(source, settings, {
    fallback: (results) => {
      fallback = results;
    },
    dk: (dk) => {
      fallback = { ...fallback, dk };
    },
  }).catch((error: unknown) => {
    throw new VerifyFailure('INTERNAL', 'verification failed', { cause: error });
  });
  // Disarmed when the checks are over, not at the deadline: checks that run on past it are still
  // watched until the hand-over, and killed if they never end.
  checks.finally(() => watchdog.disarm()).catch(() => undefined);
  try {
    return await Promise.race([checks, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
