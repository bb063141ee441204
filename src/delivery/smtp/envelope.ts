// The envelope as it goes into MAIL FROM and RCPT TO: qmail-remote's addrmangle() and quote()
// (docs/qmail-remote.md §1), and the check that an address still fits on one command line.
import { BAD_RECIPIENT, failure } from '../../common/failures.ts';
import type { RecipientReport } from '../report.ts';
import type { Delivery, DeliveryResult } from './types.ts';
import { result } from './result.ts';

// Bytes that would end or split the command line even inside quotes (quote.c escapes CR and
// LF with a backslash, but the bytes still go out and a CRLF would end the command).
const LINE_BREAKING = /[\r\n\0]/;
// Outside a quoted local part (the domain, or an address without '@') these end the path.
const PATH_ENDING = /[<>]/;

export interface Envelope {
  sender: string;
  /** The recipients as they go into RCPT TO, or null for one that cannot be sent. */
  recips: Array<string | null>;
}

export function checkEnvelope(d: Delivery): Envelope | { refused: DeliveryResult } {
  if (!sendable(d.sender)) return { refused: result([], failure('BAD_SENDER'), 'envelope') };
  const recips = d.recips.map((recip) => (sendable(recip) ? addrmangle(recip) : null));
  if (!recips.some((recip) => recip !== null)) {
    const rejected = recips.map((): RecipientReport => ({ letter: 'h', text: BAD_RECIPIENT }));
    return { refused: result(rejected, failure('NO_RECIPIENT'), 'envelope') };
  }
  return { sender: addrmangle(d.sender), recips };
}

/** Whether the address, once quoted, still fits between < and > on one command line. */
function sendable(address: string): boolean {
  if (LINE_BREAKING.test(address)) return false;
  const at = address.lastIndexOf('@');
  return !PATH_ENDING.test(at < 0 ? address : address.slice(at + 1));
}

/**
 * qmail-remote's addrmangle() without the CNAME step (docs/qmail-remote.md §1): split at the last '@', quote
 * the local part as quote.c does, keep the domain; no '@' means verbatim. One char per byte.
 */
export function addrmangle(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  return quote(address.slice(0, at)) + address.slice(at);
}

// quote.c's ok[]: the bytes a local part may hold unquoted (none of 0x80 and above).
const ATOM = /^[!#$%&'*+\-./0-9=?A-Z^_`a-z{|}~]+$/;

/** quote.c: quote an empty local part, one with any other byte, or a leading, trailing or double dot. */
function quote(local: string): string {
  const needed = !ATOM.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..');
  return needed ? `"${local.replace(/[\r\n"\\]/g, '\\$&')}"` : local;
}
