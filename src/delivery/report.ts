// The report protocol of qmail-remote(8) on fd 1 (docs/qmail-remote.md §2): recipient reports r/h/s in argv
// order, then exactly one message report K/Z/D, each ending in one NUL byte. Under
// qmail-rspawn fd 2 is the same pipe, so this module is the only code that writes to either.
import { writeSync } from 'node:fs';
import { sleepSync } from '../common/sync-io.ts';

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

// How long to wait, at most, before trying a full pipe again; the wait starts at 1 ms and
// doubles, so a reader that is only slow costs little and one that has paused costs no CPU.
const MAX_WAIT_MS = 20;

/**
 * Writes every byte of `data` to `fd`, however the pipe behaves: Node makes fd 2 non-blocking
 * and under qmail-rspawn fd 1 is the same open pipe, so a write can be partial or fail with
 * EAGAIN whenever the reader falls behind. Both are retried, after a short sleep when the pipe
 * is full, until the last byte is out. Synchronous on purpose: nothing can end the process
 * (an exit, a crash handler) between two parts of the report. Returns false only when the
 * reader is gone (EPIPE, EBADF): then there is no one to tell, as with qmail's zerodie().
 */
export function writeFully(fd: number, data: Buffer): boolean {
  let pending = data;
  let wait = 1;
  while (pending.length > 0) {
    let written = 0;
    try {
      written = writeSync(fd, pending);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') return false;
    }
    if (written > 0) {
      pending = pending.subarray(written);
      wait = 1;
    } else {
      sleepSync(wait);
      wait = Math.min(wait * 2, MAX_WAIT_MS);
    }
  }
  return true;
}

/** Writes the whole report to fd 1 (see writeFully); true once the last byte is out. */
export function writeReports(reports: Reports, fd = 1): boolean {
  return writeFully(fd, encodeReports(reports));
}
