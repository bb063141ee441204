// The qmail-queue envelope on fd 1: "F" sender NUL, then "T" recipient NUL for each recipient,
// then one more NUL. It is passed on to the next program exactly as it was read.
import { VerifyFailure } from './outcomes.ts';

export interface Envelope {
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The envelope bytes as read, up to and including the final NUL. */
  readonly bytes: Buffer;
}

/** Parses the envelope as qmail-queue does: a short envelope is a read error, a bad byte a format error. */
export function parseEnvelope(data: Buffer): Envelope {
  if (data.length === 0) throw new VerifyFailure('READ_ERROR', 'empty envelope');
  if (data[0] !== 0x46) throw new VerifyFailure('ENVELOPE_FORMAT', 'the envelope does not start with F');
  const senderEnd = data.indexOf(0, 1);
  if (senderEnd === -1) throw new VerifyFailure('READ_ERROR', 'the envelope ends inside the sender');
  const sender = data.subarray(1, senderEnd).toString('latin1');
  const recipients: string[] = [];
  let at = senderEnd + 1;
  for (;;) {
    if (at >= data.length) throw new VerifyFailure('READ_ERROR', 'the envelope ends before its final NUL');
    const kind = data[at];
    if (kind === 0) return { sender, recipients, bytes: data.subarray(0, at + 1) };
    if (kind !== 0x54) throw new VerifyFailure('ENVELOPE_FORMAT', 'an envelope entry that is not T');
    const end = data.indexOf(0, at + 1);
    if (end === -1) throw new VerifyFailure('READ_ERROR', 'the envelope ends inside a recipient');
    recipients.push(data.subarray(at + 1, end).toString('latin1'));
    at = end + 1;
  }
}
