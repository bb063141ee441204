// What mailauth's DKIM verifier extends in place of its MessageParser (lib/dkim/message-parser.js)
// in the verify bundle (scripts/bundle.mjs): mailauth's own class, but for the scan that turns
// a bare LF into CRLF. mailauth looks at every byte of the message for one, in JavaScript: about
// half the CPU of a long message with a DKIM signature, once its relaxed hash is the loop
// (mailauth-relaxed.ts). qmail-dkverify hands mailauth the message normalised to CRLF already
// (src/verify/check.ts), where that scan never changes a byte.
//
// Here the body loop that normalises line ends (src/canon/kernels.ts, the send pass without
// dot-stuffing) tells at native speed whether a chunk has anything to change. That pass only
// ever adds bytes: a CR before a bare LF (or before an LF that starts the chunk), an LF after a
// bare CR (or after a CR that ends it). So its output is exactly as long as the chunk only when
// every LF of the chunk follows a CR within it: then mailauth's scan would change nothing, and
// the chunk goes on as it is. Any other chunk goes through mailauth's scan, so the bytes are
// always mailauth's. So does a short one (the header section, a small body): there mailauth's
// scan costs less than making the loop's instance, which a verification without a signature
// over its body would otherwise make for nothing. test/verify/mailauth-parser.test.ts holds the
// two to each other.
import { MessageParser as MailauthMessageParser } from 'mailauth/lib/dkim/message-parser.js';
import { PIECE } from '../canon/kernels.ts';
import { sharedKernel } from './mailauth-kernel.ts';

/** The shortest chunk the loop looks at; below it mailauth's scan takes well under a millisecond. */
export const LOOP_FROM_BYTES = 16 << 10;

export class MessageParser extends MailauthMessageParser {
  override *ensureLinebreaks(input: Buffer): Generator<Buffer> {
    if (input.length >= LOOP_FROM_BYTES && nothingToChange(input)) {
      this.lastByte = input[input.length - 1];
      yield input;
      return;
    }
    yield* super.ensureLinebreaks(input);
  }
}

/** Whether the normalising pass leaves `input` as long as it is (see the header). */
function nothingToChange(input: Buffer): boolean {
  const kernel = sharedKernel();
  if (!kernel) return false;
  let state = 0;
  let length = 0;
  for (let at = 0; at < input.length; at += PIECE) {
    const out = kernel.send(input.subarray(at, at + PIECE), state, true, false);
    state = out.state;
    length += out.out.length;
  }
  return length === input.length;
}
