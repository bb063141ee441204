// Every way qmail-dkverify can end, as the exit status qmail-smtpd (or any other caller of
// qmail-queue) turns into an SMTP reply. These are qmail-queue's own statuses (qmail-queue(8),
// qmail.c): the caller cannot tell this front end from qmail-queue itself. Nothing else ever
// reaches the caller: stdout is the envelope pipe and stderr may be the SMTP session's log.

export interface Outcome {
  /** The exit status. */
  readonly status: number;
  /** What qmail-smtpd answers for it, for the documentation and the tests. */
  readonly reply: string;
}

const outcome = (status: number, reply: string): Outcome => ({ status, reply });

export const OUTCOMES = {
  /** Only ever the next program's own 0: the message is queued. */
  QUEUED: outcome(0, '250 ok'),
  /** An uppercase DKVERIFY letter matched. */
  REJECTED: outcome(31, '554 mail server permanently rejected message (#5.3.0)'),
  /** fd 0 or fd 1 could not be read, or ended early. */
  READ_ERROR: outcome(54, '451 qq read error (#4.3.0)'),
  /** A control file exists but cannot be read, or control/me is missing. */
  CONFIG_ERROR: outcome(55, '451 qq unable to read configuration (#4.3.0)'),
  /** A lowercase DKVERIFY letter matched. */
  DEFERRED: outcome(71, '451 mail server temporarily rejected message (#4.3.0)'),
  /**
   * Every internal failure: a malformed DKVERIFY, a DKQUEUE that names this program, a next
   * program that cannot be run or dies of a signal, an exception.
   */
  INTERNAL: outcome(81, '451 qq internal bug (#4.3.0)'),
  /** fd 1 is not an envelope (no F, or a byte other than T or NUL where one must be). */
  ENVELOPE_FORMAT: outcome(91, '451 qq envelope format error (#4.3.0)'),
} as const satisfies Record<string, Outcome>;

export type OutcomeName = keyof typeof OUTCOMES;

/** A failure before the next program runs, carried to the exit as a catalogued outcome. */
export class VerifyFailure extends Error {
  readonly outcome: Outcome;
  constructor(name: OutcomeName, message: string, options?: ErrorOptions) {
    super(message, options);
    this.outcome = OUTCOMES[name];
  }
}

/**
 * The exit status for a failure: its outcome's, or INTERNAL for anything uncatalogued. The
 * verifying path is a bundle of its own (scripts/bundle.mjs) with its own copy of this class,
 * so each bundle turns its own failures into a status before they cross to the other.
 */
export function exitStatusFor(error: unknown): number {
  return error instanceof VerifyFailure ? error.outcome.status : OUTCOMES.INTERNAL.status;
}
