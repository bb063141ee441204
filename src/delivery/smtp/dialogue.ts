// One session of the SMTP dialogue, the one place that says what follows what, as qmail-remote's
// smtp() does it (docs/qmail-remote.md §2, §6): greeting, EHLO (HELO fallback), STARTTLS when
// offered, AUTH when configured, MAIL, one RCPT at a time, DATA, the message, the final dot,
// QUIT without waiting. Every outcome is one catalogued report (src/common/failures.ts).
//
// Never a false K (unlike qmail): the dialogue is lock-step, so the server may only speak when
// one reply is due. Input at any other time, more than one reply at once, a reply to DATA that
// is not 3xx or a reply below 400 to the final dot that is not 2xx means its replies and our
// commands may be out of step: the delivery stops with Z (OUT_OF_STEP) and the mail stays
// queued. A reply that a server sends early but that arrives after the final dot was written
// cannot be told from the real one, by this or by any client.
//
// Trusts: the caller for the message bytes (CRLF lines, already signed, not dot-stuffed) and
// for the addresses to connect to (loopback or not is the router's business). Does not trust
// the server (any bytes, any length, any timing) nor the envelope (checked before use).
// Never throws, never prints: nodemailer's logger is off and every failure is a report.
import { isIP, type Socket } from 'node:net';
import { resultType, satisfies, tlsLog, tlsOptions, type TlsFacts, type TlsRequirement } from '../tls/requirement.ts';
import { systemCertificates } from '../tls/trust.ts';
import type { TlsLog } from '../log.ts';
import { BAD_RECIPIENT, failure, recipientRejected, smtpReport, type SmtpReply } from '../../common/failures.ts';
import type { RecipientReport } from '../report.ts';
import { ended, type Delivery, type Ending, type SessionOptions, type Stage } from './types.ts';
import type { Envelope } from './envelope.ts';
import { Wire } from './wire.ts';

// A 530 on the plaintext retry after a failed handshake: the server wants the TLS we could not do.
const TLS_WANTED = 530;


export interface Session {
  recipients: RecipientReport[];
  ending: Ending;
  stage: Stage;
  tls?: TlsLog;
}


export async function session(socket: Socket, ip: string, d: Delivery, envelope: Envelope, options: SessionOptions): Promise<Session> {
  const recipients: RecipientReport[] = [];
  const progress: Progress = { stage: 'greeting' };
  let wire: Wire;
  try {
    const tls = tlsOptions(options.requirement, options.requirement.name === '' || isIP(options.requirement.name) !== 0, systemCertificates);
    wire = new Wire(socket, ip, d, options, tls);
  } catch (error) {
    socket.destroy();
    return { recipients, ending: failure('INTERNAL', error), stage: 'greeting' };
  }
  const ending = await dialogue(wire, ip, d, envelope, options, recipients, progress);
  await wire.quit();
  const tls = progress.tls ?? (ending.code === 'TLS_FAILED' ? failedHandshake(options.requirement) : undefined);
  return { recipients, ending, stage: progress.stage, ...(tls ? { tls } : {}) };
}

interface Progress {
  stage: Stage;
  /** The TLS side, once the session is set up. */
  tls?: TlsLog;
}

/** A handshake that never finished: no version, nothing verified. */
function failedHandshake(requirement: TlsRequirement): TlsLog {
  return { version: null, verified: false, policy: requirement.policy, result: 'validation-failure' };
}

async function dialogue(
  wire: Wire,
  ip: string,
  d: Delivery,
  envelope: Envelope,
  options: SessionOptions,
  recipients: RecipientReport[],
  progress: Progress,
): Promise<Ending> {
  const opened = await wire.open();
  if (ended(opened)) return opened.ended;
  // The session is set up (STARTTLS or SMTPS included) and nothing of the transaction is out:
  // a session that falls short of its requirement ends here, before AUTH and MAIL.
  const facts = wire.tls();
  progress.tls = tlsLog(options.requirement, facts);
  if (!satisfies(options.requirement, facts)) {
    return smtpReport('TLS_UNVERIFIED', ip, { cause: `${options.requirement.policy}: ${resultType(facts)}${facts.error ? ` (${facts.error})` : ''}` });
  }
  if (d.auth) {
    progress.stage = 'auth';
    const refused = await authenticate(wire, ip, d.auth, facts);
    if (refused) return refused;
  }
  progress.stage = 'mail';
  const mail = await wire.command(`MAIL FROM:<${envelope.sender}>${mailParameters(wire.extensions(), d, envelope)}`);
  if (ended(mail)) return mail.ended;
  if (mail.code >= 400) return smtpReport('SENDER_REJECTED', ip, { reply: mail, softOnly: options.retry });
  progress.stage = 'rcpt';
  const rcptEnding = await rcpts(wire, ip, envelope.recips, recipients, options.retry);
  if (rcptEnding) return rcptEnding;
  if (!recipients.some((r) => r.letter === 'r')) return smtpReport('NO_RECIPIENT_ACCEPTED', ip);
  progress.stage = 'data';
  const data = await wire.command('DATA');
  if (ended(data)) return data.ended;
  if (data.code >= 400) return smtpReport('DATA_REJECTED', ip, { reply: data, softOnly: wantsTls(data, options) });
  // qmail sends the message after any reply below 400; anything but 3xx here means the
  // reply was not DATA's (a 250 left over from RCPT), and the message would be read as commands.
  if (data.code < 300) return wire.outOfStep(`${data.code} to DATA`);
  progress.stage = 'message';
  const final = await wire.message(d.message);
  if (ended(final)) return final.ended;
  if (final.code >= 400) return smtpReport('MESSAGE_REJECTED', ip, { reply: final, softOnly: wantsTls(final, options) });
  if (final.code >= 300) return wire.outOfStep(`${final.code} to the final dot`);
  return smtpReport('ACCEPTED', ip, { reply: final });
}

/**
 * The MAIL parameters for what the server announced: SIZE= (RFC 1870) so that it can refuse a
 * message too large before it is sent (its reply decides, never the announced limit), BODY=8BITMIME
 * (RFC 6152) for 8-bit content, SMTPUTF8 (RFC 6531) for an 8-bit address. Without the keyword
 * nothing is added and the line is qmail's.
 */
export function mailParameters(extensions: ReadonlySet<string>, d: Delivery, envelope: Envelope): string {
  const params: string[] = [];
  if (extensions.has('SIZE') && d.size !== undefined && d.size > 0) params.push(`SIZE=${d.size}`);
  if (extensions.has('8BITMIME') && d.eightBit?.() === true) params.push('BODY=8BITMIME');
  if (extensions.has('SMTPUTF8') && [envelope.sender, ...envelope.recips].some((address) => address !== null && EIGHT_BIT.test(address))) {
    params.push('SMTPUTF8');
  }
  return params.map((param) => ` ${param}`).join('');
}

const EIGHT_BIT = /[\x80-\xff]/;

function wantsTls(reply: SmtpReply, options: SessionOptions): boolean {
  return options.retry && reply.code === TLS_WANTED;
}

/**
 * AUTH only over TLS whose certificate verified (qmail's auth patches keep credentials out of
 * the clear; a TLS session nobody checked may end at whoever intercepts it).
 */
async function authenticate(wire: Wire, ip: string, auth: { user: string; pass: string }, facts: TlsFacts): Promise<Ending | null> {
  if (!wire.secure || facts.version === null) return smtpReport('TLS_REQUIRED_FOR_AUTH', ip);
  if (!facts.authorized) return smtpReport('TLS_UNVERIFIED', ip, { cause: `credentials: ${resultType(facts)}` });
  const login = await wire.login(auth);
  if (ended(login)) return login.ended;
  if (login.accepted) return null;
  return smtpReport('AUTH_REJECTED', ip, login.reply ? { reply: login.reply } : {});
}

/**
 * One RCPT at a time, in argv order; a recipient refused before connecting is h in its place.
 * Each report is kept as soon as it is known (qmail prints it at once), so a connection that
 * dies later still reports the recipients before it.
 */
async function rcpts(
  wire: Wire,
  ip: string,
  recips: Array<string | null>,
  out: RecipientReport[],
  retry: boolean,
): Promise<Ending | null> {
  for (const recip of recips) {
    if (recip === null) {
      out.push({ letter: 'h', text: BAD_RECIPIENT });
      continue;
    }
    const reply = await wire.command(`RCPT TO:<${recip}>`);
    if (ended(reply)) return reply.ended;
    out.push(reply.code < 400 ? { letter: 'r', text: '' } : recipientRejected(ip, reply, retry));
  }
  return null;
}
