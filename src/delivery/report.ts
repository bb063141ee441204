// The report protocol of qmail-remote(8) on fd 1 (spec §2): recipient reports r/h/s in argv
// order, then exactly one message report K/Z/D, each ending in one NUL byte. Under
// qmail-rspawn fd 2 is the same pipe, so this module is the only code that writes to either.
import { writeSync, write } from 'node:fs';

export type RecipientLetter = 'r' | 'h' | 's';
export type MessageLetter = 'K' | 'Z' | 'D';

export interface RecipientReport {
  readonly letter: RecipientLetter;
  /** Empty for 'r'; for h/s the reason, ending in LF. */
  readonly text: string;
}

export interface MessageReport {
  readonly letter: MessageLetter;
  /** Ends in LF; may hold several lines. */
  readonly text: string;
}

export interface Reports {
  readonly recipients: readonly RecipientReport[];
  readonly message: MessageReport;
}

// A NUL inside a report would end it early and hand qmail-rspawn a second, bogus report.
const withoutNul = (text: string): string => text.replace(/\0/g, '?');

export function encodeReports(reports: Reports): Buffer {
  const parts: Buffer[] = [];
  for (const recipient of reports.recipients) {
    parts.push(Buffer.from(recipient.letter + withoutNul(recipient.text) + '\0', 'latin1'));
  }
  parts.push(Buffer.from(reports.message.letter + withoutNul(reports.message.text) + '\0', 'latin1'));
  return Buffer.concat(parts);
}

/**
 * Writes the whole report to fd 1 and resolves once the kernel has it. qmail-rspawn reads a
 * pipe, which may be non-blocking: writeSync can meet EAGAIN, so fall back to the async write
 * and retry the rest. A write error (reader gone) is swallowed, as qmail's zerodie() does.
 */
export async function writeReports(reports: Reports, fd = 1): Promise<void> {
  let pending = encodeReports(reports);
  while (pending.length > 0) {
    let written: number;
    try {
      written = writeSync(fd, pending);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      written = await new Promise<number>((resolve) => {
        write(fd, pending, (err, n) => resolve(err ? -1 : n));
      });
      if (written < 0) return;
    }
    pending = pending.subarray(written);
  }
}
