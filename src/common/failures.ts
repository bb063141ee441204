// The catalogue of message reports qmail-remote can give, in the words of netqmail-1.06's
// qmail-remote.c (docs/qmail-remote.md §2.1). Every outcome the program can meet is one of these codes: the
// fixed texts (FAILURES), and the SMTP stages (SMTP_REPORTS), whose sentences take the IP and
// the server's reply. So the text qmail-send logs and quotes into bounces never depends on
// where the error came from, and the cause of an error goes to the log, never into a report.
// The letter decides the message's fate: K delivered, Z kept queued, D bounced.

export type Letter = 'Z' | 'D';

interface Entry {
  readonly letter: Letter;
  readonly text: string;
}

export const FAILURES = {
  NO_CONNECTION: { letter: 'Z', text: "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n" },
  READ_MESSAGE: { letter: 'Z', text: 'Unable to read message. (#4.3.0)\n' },
  TEMP_DNS: { letter: 'Z', text: "Sorry, I couldn't find any host by that name. (#4.1.2)\n" },
  READ_CONTROL: { letter: 'Z', text: 'Unable to read control files. (#4.3.0)\n' },
  // Our wording (docs/qmail-remote.md §7): the bltweb patch's is not known; indimail's says much the same.
  READ_KEY: { letter: 'Z', text: 'Unable to read DKIM/DomainKeys private key. (#4.3.0)\n' },
  INTERNAL: { letter: 'Z', text: 'qmail-remote-dkim hit an internal error; will try again. (#4.3.0)\n' },
  USAGE: { letter: 'D', text: 'I (qmail-remote) was invoked improperly. (#5.3.5)\n' },
  // Checked before any SMTP command: these characters would end or split the command line.
  BAD_SENDER: { letter: 'D', text: 'Sorry, the envelope sender contains characters SMTP cannot carry. (#5.1.7)\n' },
  NO_RECIPIENT: { letter: 'D', text: 'Sorry, no recipient address could be sent over SMTP. (#5.1.3)\n' },
  NO_MX_OR_IP: { letter: 'D', text: "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n" },
  NULL_MX: { letter: 'D', text: "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n" },
  // MTA-STS enforce (RFC 8461 §5): no MX of the domain is one its policy lists. Deferred, never
  // bounced: the policy or the MX records may be fixed, and queuelifetime ends the wait.
  BIND_FAILED: { letter: 'Z', text: 'Unable to use the outgoing address control/outgoingip or control/domainbindings names. (#4.4.0)\n' },
  NO_ADDRESS_IN_FAMILY: { letter: 'Z', text: 'Sorry, that host has no address of the family I may use (control/ipv6, control/outgoingip). (#4.4.1)\n' },
  STS_NO_MX: { letter: 'Z', text: 'Sorry, no mail exchanger for that domain is listed in its MTA-STS policy. (#4.7.5)\n' },
  MX_IS_ME: {
    letter: 'D',
    text:
      "Sorry. Although I'm listed as a best-preference MX or A for that host,\n" +
      "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n",
  },
} as const satisfies Record<string, Entry>;

export type FailureCode = keyof typeof FAILURES;

/** A message report that is not success: its letter and its whole text (ending in LF). */
export interface Failure {
  readonly letter: Letter;
  readonly text: string;
  /** Stable code for logs: a FailureCode, an SmtpCode or NO_SUCH_HOST. */
  readonly code: string;
  /** What went wrong underneath, for the log only (never in the report). */
  readonly cause?: string;
}

export function failure(code: FailureCode, cause?: unknown): Failure {
  const entry: Entry = FAILURES[code];
  return { letter: entry.letter, text: entry.text, code, ...causeOf(cause) };
}

/** An error as one line for the log: its code and message, never a stack. */
export function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${code ? `${code}: ` : ''}${cause.message}`;
  }
  return String(cause);
}

const causeOf = (cause: unknown): { cause?: string } => (cause === undefined ? {} : { cause: describeCause(cause) });

// ---------------------------------------------------------------------------------------------
// The SMTP stages (docs/qmail-remote.md §2.1 table): qmail-remote's quit(prefix, suffix) sentences, with the IP
// the dialogue was with and, when the server said something, its reply quoted after them.

/** A server reply as qmail quotes it: the code of its first line and its text, ending in LF. */
export interface SmtpReply {
  readonly code: number;
  readonly text: string;
}

/** 'reply': D for a 5xx reply, Z for anything else (qmail's `code >= 500 ? D : Z`). */
type SmtpLetter = 'K' | Letter | 'reply';

interface SmtpEntry {
  readonly letter: SmtpLetter;
  readonly sentence: (ip: string) => string;
}

export const SMTP_REPORTS = {
  GREETING_FAILED: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but greeting failed.` },
  HELO_REJECTED: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but my name was rejected.` },
  CONNECTION_DIED: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but connection died. (#4.4.2)` },
  // qmail's flagcritical: the final dot reached the kernel, the server may have the message.
  CONNECTION_DIED_AFTER_DOT: {
    letter: 'Z',
    sentence: (ip) => `Connected to ${ip} but connection died. Possible duplicate! (#4.4.2)`,
  },
  // The STARTTLS handshake failed: smtp/index.ts retries in plaintext, and reports this only when
  // the retry cannot connect. Worded as qmail words a connection that ends early.
  TLS_FAILED: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but connection died. (#4.4.2)` },
  // Not in qmail (which takes such input for the next reply): the server sent something when no
  // reply was due, or a reply of a kind the command cannot have, so its replies and our commands
  // may be out of step and no reply can be trusted, least of all a 250 to the final dot.
  OUT_OF_STEP: {
    letter: 'Z',
    sentence: (ip) => `Connected to ${ip} but its replies were out of step with my commands. (#4.5.0)`,
  },
  OUT_OF_STEP_AFTER_DOT: {
    letter: 'Z',
    sentence: (ip) =>
      `Connected to ${ip} but its replies were out of step with my commands. Possible duplicate! (#4.5.0)`,
  },
  // TLS was required (credentials, SMTPS, tlshosts/, MTA-STS enforce) and the server offered
  // none, or its certificate did not verify for the name: nothing of the transaction was sent.
  TLS_UNVERIFIED: {
    letter: 'Z',
    sentence: (ip) => `Connected to ${ip} but TLS is required and could not be verified. (#4.7.5)`,
  },
  // jms1's AUTH patch: credentials never travel in clear.
  TLS_REQUIRED_FOR_AUTH: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but STARTTLS is required for AUTH. (#4.7.0)` },
  AUTH_REJECTED: { letter: 'Z', sentence: (ip) => `Connected to ${ip} but authentication was rejected.` },
  SENDER_REJECTED: { letter: 'reply', sentence: (ip) => `Connected to ${ip} but sender was rejected.` },
  // Every rejection was quoted in its recipient report already, so no reply text here.
  NO_RECIPIENT_ACCEPTED: { letter: 'D', sentence: (ip) => `Giving up on ${ip}.` },
  DATA_REJECTED: { letter: 'reply', sentence: (ip) => `${ip} failed on DATA command.` },
  MESSAGE_REJECTED: { letter: 'reply', sentence: (ip) => `${ip} failed after I sent the message.` },
  ACCEPTED: { letter: 'K', sentence: (ip) => `${ip} accepted message.` },
} as const satisfies Record<string, SmtpEntry>;

export type SmtpCode = keyof typeof SMTP_REPORTS;

/** How one SMTP delivery ended: a message report of any letter, K included. */
export interface SmtpOutcome {
  readonly letter: 'K' | Letter;
  readonly text: string;
  readonly code: SmtpCode;
  readonly cause?: string;
}

/** Options of smtpReport(): the reply to quote, and whether a 5xx may bounce (see smtp/dialogue.ts). */
export interface SmtpReportOptions {
  readonly reply?: SmtpReply;
  /** A 5xx reply defers instead of bouncing (the plaintext retry after a failed handshake). */
  readonly softOnly?: boolean;
  readonly cause?: unknown;
}

export function smtpReport(code: SmtpCode, ip: string, options: SmtpReportOptions = {}): SmtpOutcome {
  const entry: SmtpEntry = SMTP_REPORTS[code];
  const { reply } = options;
  let letter: 'K' | Letter = entry.letter === 'reply' ? (reply !== undefined && reply.code >= 500 ? 'D' : 'Z') : entry.letter;
  if (options.softOnly && letter === 'D') letter = 'Z';
  const text = `${entry.sentence(ip)}\n${reply ? remoteSaid(reply) : ''}`;
  return { letter, text, code, ...causeOf(options.cause) };
}

/** A refused recipient: h for 5xx, s otherwise (or always s when 5xx may not bounce). */
export function recipientRejected(ip: string, reply: SmtpReply, softOnly = false): { letter: 'h' | 's'; text: string } {
  return { letter: reply.code >= 500 && !softOnly ? 'h' : 's', text: `${ip} does not like recipient.\n${remoteSaid(reply)}` };
}

/** Checked before any SMTP command: the characters would end or split the command line. */
export const BAD_RECIPIENT = 'Sorry, the recipient address contains characters SMTP cannot carry. (#5.1.3)\n';

function remoteSaid(reply: SmtpReply): string {
  return `Remote host said: ${reply.text}`;
}

/** "Sorry, I couldn't find any host named HOST." with HOST made safe as qmail's outsafe() does. */
export function noSuchHost(host: string, cause?: unknown): Failure {
  return {
    letter: 'D',
    text: `Sorry, I couldn't find any host named ${outsafe(host)}. (#5.1.2)\n`,
    code: 'NO_SUCH_HOST',
    ...causeOf(cause),
  };
}

/** qmail's outsafe(): bytes below 33 or above 126 print as '?' (text holds one byte per char). */
export function outsafe(text: string): string {
  return text.replace(/[^\x21-\x7e]/g, '?');
}

/**
 * The one shape of "a value, or why not": stages return these and never print. The reason is a
 * catalogued Failure unless a module names another type for it (a note for an administrator, a
 * verdict); states with more than two outcomes are unions of their own.
 */
export type Result<T, E = Failure> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = <E = Failure>(error: E): Result<never, E> => ({ ok: false, error });
