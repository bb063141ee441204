// SMTP replies as qmail reads and quotes them.
import type { SmtpReply } from '../../common/failures.ts';

// qmail-remote.c HUGESMTPTEXT: "Remote host said" quotes at most this many bytes of a reply.
const REPLY_TEXT_BYTES = 5000;
// A reply that does not start with three digits is judged as a temporary failure, so a
// broken server defers mail instead of bouncing it (qmail would compute a code from any
// three bytes, usually landing in the 5xx range).
const UNPARSABLE_CODE = 451;

/**
 * The reply as qmail's get()/outsmtptext() quote it, from its bytes (a latin1 string, one char
 * per byte, lines joined by LF): every line with its code and its LF, CR dropped, NUL as '?',
 * at most REPLY_TEXT_BYTES; a text cut inside a line still ends in LF, as reports must.
 */
export function parseReply(bytes: string): SmtpReply {
  const digits = /^\d{3}/.exec(bytes);
  let text = `${bytes}\n`.replace(/\r/g, '').replace(/\0/g, '?');
  if (text.length > REPLY_TEXT_BYTES) text = text.slice(0, REPLY_TEXT_BYTES).replace(/\n?$/, '\n');
  return { code: digits ? Number(digits[0]) : UNPARSABLE_CODE, text };
}

/** What nodemailer's decodeServerResponse() makes of a reply's bytes, to recognise it. */
export function decodedLikeNodemailer(bytes: string): string {
  const utf8 = Buffer.from(bytes, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? bytes : utf8;
}
