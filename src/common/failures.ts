// The catalogue of message reports qmail-remote can give, in the words of netqmail-1.06's
// qmail-remote.c (spec §2.1). Every failure the program can meet is one of these codes, so
// the text qmail-send logs and quotes into bounces never depends on where the error came from.
// The letter decides the message's fate: Z keeps it queued, D bounces it.

export type Letter = 'Z' | 'D';

interface Entry {
  readonly letter: Letter;
  readonly text: string;
}

export const FAILURES = {
  NOMEM: { letter: 'Z', text: 'Out of memory. (#4.3.0)\n' },
  SYSTEM_RESOURCES: { letter: 'Z', text: 'System resources temporarily unavailable. (#4.3.0)\n' },
  NO_CONNECTION: { letter: 'Z', text: "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n" },
  READ_MESSAGE: { letter: 'Z', text: 'Unable to read message. (#4.3.0)\n' },
  TEMP_DNS: { letter: 'Z', text: "Sorry, I couldn't find any host by that name. (#4.1.2)\n" },
  READ_CONTROL: { letter: 'Z', text: 'Unable to read control files. (#4.3.0)\n' },
  // SPEC CHOICE (spec §7): the bltweb patch's wording is unknown; indimail says much the same.
  READ_KEY: { letter: 'Z', text: 'Unable to read DKIM/DomainKeys private key. (#4.3.0)\n' },
  INTERNAL: { letter: 'Z', text: 'qmail-remote-dkim hit an internal error; will try again. (#4.3.0)\n' },
  USAGE: { letter: 'D', text: 'I (qmail-remote) was invoked improperly. (#5.3.5)\n' },
  // Checked before any SMTP command: these characters would end or split the command line.
  BAD_SENDER: { letter: 'D', text: 'Sorry, the envelope sender contains characters SMTP cannot carry. (#5.1.7)\n' },
  NO_RECIPIENT: { letter: 'D', text: 'Sorry, no recipient address could be sent over SMTP. (#5.1.3)\n' },
  NO_MX_OR_IP: { letter: 'D', text: "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n" },
  NULL_MX: { letter: 'D', text: "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n" },
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
  /** Stable code for logs; free text reports (SMTP stages) use the stage name. */
  readonly code: string;
}

export function failure(code: FailureCode): Failure {
  const entry: Entry = FAILURES[code];
  return { letter: entry.letter, text: entry.text, code };
}

/** "Sorry, I couldn't find any host named HOST." with HOST made safe as qmail's outsafe() does. */
export function noSuchHost(host: string): Failure {
  return {
    letter: 'D',
    text: `Sorry, I couldn't find any host named ${outsafe(host)}. (#5.1.2)\n`,
    code: 'NO_SUCH_HOST',
  };
}

/** qmail's outsafe(): bytes below 33 or above 126 print as '?'. */
export function outsafe(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1').replace(/[^\x21-\x7e]/g, '?');
}

/** A value or the failure that stopped it: stages return these and never print. */
export type Result<T> = { ok: true; value: T } | { ok: false; failure: Failure };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(f: Failure): Result<T> => ({ ok: false, failure: f });
