// One delivery attempt over SMTP, as qmail-remote's smtp() does it (docs/qmail-remote.md §2.1, §5.4, §6): try
// the addresses in order until one connects, then greeting, EHLO (HELO fallback), STARTTLS
// when offered, AUTH when configured, MAIL, one RCPT at a time, DATA, the message, the final
// dot, QUIT without waiting. Every outcome is one catalogued report (src/common/failures.ts).
//
// nodemailer's SMTPConnection sets the session up through its public API (connect(), login(),
// close(), `secure`). The transaction is driven here, one command at a time, because send()
// judges replies differently from qmail (only 2xx succeeds, PIPELINING, trimmed and UTF-8
// encoded addresses) and reports the recipients only at the end. That takes four private
// members of nodemailer 10.6.0, pinned exactly in package.json and each checked by
// test/delivery/nodemailer-contract.test.ts:
//   _socket            the socket in use (the TLS one after STARTTLS): commands, the message
//                      and QUIT are written to it as bytes (_sendCommand would encode them
//                      as UTF-8, turning a Latin-1 address into other bytes);
//   _responseActions   the handler of the next reply, queued when a command has been sent;
//   _processResponse / _responseQueue
//                      wrapped to see each reply's bytes before nodemailer decodes them, and
//                      to notice replies nobody asked for;
//   upgrading          a STARTTLS handshake is under way (its failure earns a plaintext retry).
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
import { connect, isIP, type Socket } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { DotStuffer } from './transparency.ts';
import { resultType, satisfies, tlsFacts, tlsLog, tlsOptions, type TlsFacts, type TlsRequirement } from './tls/requirement.ts';
import { systemCertificates } from './tls/trust.ts';
import type { TlsLog } from './log.ts';
import {
  BAD_RECIPIENT,
  describeCause,
  failure,
  recipientRejected,
  smtpReport,
  type Failure,
  type SmtpOutcome,
  type SmtpReply,
} from '../common/failures.ts';
import type { MessageReport, RecipientReport, Reports } from './report.ts';

export interface DeliveryAddress {
  ip: string;
  family: 4 | 6;
  /**
   * What its TLS session must be (src/delivery/tls/policy.ts); opportunistic with no SNI when
   * absent. Its name (the MX or relay name) is sent as SNI and is what a certificate must match.
   */
  tls?: TlsRequirement;
}

export interface Delivery {
  /** In order; the next one is tried only when a connection cannot be made. */
  addresses: DeliveryAddress[];
  port: number;
  helohost: string;
  /**
   * One char per byte (see argv.ts), sent as those bytes. '' is a bounce (MAIL FROM:<>); the
   * double bounce sender '#@[]' passes as is.
   */
  sender: string;
  /** argv order, one char per byte; the recipient reports come back in the same order. */
  recips: string[];
  /** The message (LF or CRLF lines, already signed, not dot-stuffed); the dot-stuffer ends every line in CRLF. Called at most once, after DATA was accepted. */
  message: () => NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>;
  /** Seconds, control/timeoutconnect (default 60). */
  timeoutConnect: number;
  /** Seconds of read or write inactivity, control/timeoutremote (default 1200). */
  timeoutRemote: number;
  /** SMTP AUTH credentials, used only over TLS whose certificate verified. */
  auth?: { user: string; pass: string };
  /** Implicit TLS (SMTPS, smtproutes port 465): the handshake comes before the greeting. */
  implicitTls?: boolean;
}

/** The stages of the dialogue, for the log line. */
export type Stage = 'envelope' | 'connect' | 'greeting' | 'auth' | 'mail' | 'rcpt' | 'data' | 'message';

/** How a dialogue ended: a catalogued report (SMTP stage or plain failure). */
export type Ending = SmtpOutcome | Failure;

export interface DeliveryResult {
  reports: Reports;
  /** The address the reports talk about, when a connection was made. */
  ip?: string;
  /** For the log: the catalogue code, where the dialogue ended and why, when known. */
  code: string;
  stage: Stage;
  cause?: string;
  /** The TLS side of the session the reports talk about, for the log. */
  tls?: TlsLog;
}

// qmail-remote.c HUGESMTPTEXT: "Remote host said" quotes at most this many bytes of a reply.
const REPLY_TEXT_BYTES = 5000;
// A reply that does not start with three digits is judged as a temporary failure, so a
// broken server defers mail instead of bouncing it (qmail would compute a code from any
// three bytes, usually landing in the 5xx range).
const UNPARSABLE_CODE = 451;
// QUIT is written and the connection closed without waiting for the answer ("waiting for
// remote side is just too ridiculous", qmail-remote.c); this only bounds the write itself.
const QUIT_WRITE_MS = 1000;
// setTimeout turns anything longer into 1 ms, with a warning on stderr (the report pipe).
const MAX_TIMER_MS = 2 ** 31 - 1;
// Bytes that would end or split the command line even inside quotes (quote.c escapes CR and
// LF with a backslash, but the bytes still go out and a CRLF would end the command).
const LINE_BREAKING = /[\r\n\0]/;
// Outside a quoted local part (the domain, or an address without '@') these end the path.
const PATH_ENDING = /[<>]/;
// A 530 on the plaintext retry after a failed handshake: the server wants the TLS we could not do.
const TLS_WANTED = 530;

export async function deliver(d: Delivery): Promise<DeliveryResult> {
  try {
    return await attempt(d);
  } catch (error) {
    return result([], failure('INTERNAL', error), 'connect');
  }
}

const OPPORTUNISTIC: TlsRequirement = { kind: 'opportunistic', policy: 'none', name: '' };

async function attempt(d: Delivery): Promise<DeliveryResult> {
  const envelope = checkEnvelope(d);
  if ('refused' in envelope) return envelope.refused;
  // A session that TLS could not make safe enough ends before MAIL; under a requirement the
  // next address is tried (RFC 8461 §5: the next MX), and the last such ending is reported.
  let unsafe: DeliveryResult | null = null;
  for (const address of d.addresses) {
    const requirement = address.tls ?? OPPORTUNISTIC;
    const socket = await connectTcp(address.ip, d.port, milliseconds(d.timeoutConnect));
    if (!socket) continue;
    const options = { startTls: true, retry: false, requirement, implicit: d.implicitTls === true };
    const first = await session(socket, address.ip, d, envelope, options);
    if (first.ending.code === 'TLS_UNVERIFIED') {
      unsafe = sessionResult(first, address.ip);
      continue;
    }
    // Only opportunistic STARTTLS earns a plaintext retry; required TLS is never given up.
    if (first.ending.code !== 'TLS_FAILED' || options.implicit || requirement.kind === 'verified') return sessionResult(first, address.ip);
    return retryWithoutTls(address.ip, d, envelope, first, requirement);
  }
  return unsafe ?? result([], failure('NO_CONNECTION'), 'connect');
}

/**
 * A failed TLS handshake gets one more connection to the same address in plaintext, as
 * Postfix's "may" level does: opportunistic TLS must not cost deliverability. But a refusal
 * that may only mean "not without TLS" must not bounce the mail either: on this retry a 530
 * anywhere, and any 5xx to MAIL or RCPT, defers (see softOnly).
 */
async function retryWithoutTls(ip: string, d: Delivery, envelope: Envelope, first: Session, requirement: TlsRequirement): Promise<DeliveryResult> {
  const socket = await connectTcp(ip, d.port, milliseconds(d.timeoutConnect));
  if (!socket) return sessionResult(first, ip);
  return sessionResult(await session(socket, ip, d, envelope, { startTls: false, retry: true, requirement, implicit: false }), ip);
}

function sessionResult(s: Session, ip: string): DeliveryResult {
  return { ...result(s.recipients, s.ending, s.stage), ip, ...(s.tls ? { tls: s.tls } : {}) };
}

function result(recipients: RecipientReport[], ending: Ending, stage: Stage): DeliveryResult {
  const message: MessageReport = { letter: ending.letter, text: ending.text };
  return {
    reports: { recipients, message },
    code: ending.code,
    stage,
    ...(ending.cause !== undefined ? { cause: ending.cause } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The envelope

interface Envelope {
  sender: string;
  /** The recipients as they go into RCPT TO, or null for one that cannot be sent. */
  recips: Array<string | null>;
}

function checkEnvelope(d: Delivery): Envelope | { refused: DeliveryResult } {
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

// ---------------------------------------------------------------------------------------------
// Connecting

/** qmail's timeoutconn(): the connected socket, or null when it fails or takes too long. */
function connectTcp(ip: string, port: number, timeoutMs: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    let socket: Socket;
    try {
      socket = connect({ host: ip, port, noDelay: true });
    } catch {
      resolve(null); // a bad port or address: as unreachable as a refused one
      return;
    }
    const settle = (connected: boolean): void => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      if (!connected) socket.destroy();
      resolve(connected ? socket : null);
    };
    const onError = (): void => settle(false);
    const timer = setTimeout(() => settle(false), timeoutMs);
    socket.once('error', onError);
    socket.once('connect', () => {
      // Commands are small writes answered one at a time; Nagle would hold each back until
      // the previous one is acknowledged, about 40 ms per delivery against delayed ACKs.
      socket.setNoDelay(true);
      settle(true);
    });
  });
}

/** Seconds from a control file to a timer value Node accepts; "0" is kept as short as can be. */
function milliseconds(seconds: number): number {
  if (!Number.isFinite(seconds)) return MAX_TIMER_MS;
  return Math.min(Math.max(Math.round(seconds * 1000), 1), MAX_TIMER_MS);
}

// ---------------------------------------------------------------------------------------------
// The dialogue

interface SessionOptions {
  startTls: boolean;
  /** The plaintext retry after a failed handshake: refusals that may mean "TLS only" defer. */
  retry: boolean;
  requirement: TlsRequirement;
  /** SMTPS: TLS from the first byte. */
  implicit: boolean;
}

interface Session {
  recipients: RecipientReport[];
  ending: Ending;
  stage: Stage;
  tls?: TlsLog;
}

/** The reply, or how the dialogue ended while waiting for it. */
type Step<T> = T | { ended: Ending };

const ended = <T>(step: Step<T>): step is { ended: Ending } =>
  typeof step === 'object' && step !== null && 'ended' in step;

async function session(socket: Socket, ip: string, d: Delivery, envelope: Envelope, options: SessionOptions): Promise<Session> {
  const recipients: RecipientReport[] = [];
  const progress: Progress = { stage: 'greeting' };
  let wire: Wire;
  try {
    const tls = await tlsOptions(options.requirement, options.requirement.name === '' || isIP(options.requirement.name) !== 0, systemCertificates);
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
  const mail = await wire.command(`MAIL FROM:<${envelope.sender}>`);
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

// ---------------------------------------------------------------------------------------------
// Replies

/**
 * The reply as qmail's get()/outsmtptext() quote it, from its bytes (a latin1 string, one char
 * per byte, lines joined by LF): every line with its code and its LF, CR dropped, NUL as '?',
 * at most REPLY_TEXT_BYTES; a text cut inside a line still ends in LF, as reports must.
 */
function parseReply(bytes: string): SmtpReply {
  const digits = /^\d{3}/.exec(bytes);
  let text = `${bytes}\n`.replace(/\r/g, '').replace(/\0/g, '?');
  if (text.length > REPLY_TEXT_BYTES) text = text.slice(0, REPLY_TEXT_BYTES).replace(/\n?$/, '\n');
  return { code: digits ? Number(digits[0]) : UNPARSABLE_CODE, text };
}

/** What nodemailer's decodeServerResponse() makes of a reply's bytes, to recognise it. */
function decodedLikeNodemailer(bytes: string): string {
  const utf8 = Buffer.from(bytes, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? bytes : utf8;
}

// ---------------------------------------------------------------------------------------------
// The wire: nodemailer's SMTPConnection plus the few internals the transaction needs

/** The private members of SMTPConnection this module relies on (see the header). */
export interface Internals {
  _socket: Socket | false;
  /** Complete replies not yet handled, as bytes (latin1), lines joined by LF. */
  _responseQueue: string[];
  /** One handler per expected reply, in order. */
  _responseActions: Array<(reply: string) => void>;
  _processResponse(): unknown;
  upgrading?: boolean;
}

export function internalsOf(conn: SMTPConnection): Internals {
  const inner = conn as unknown as Partial<Internals>;
  const usable =
    '_socket' in inner &&
    Array.isArray(inner._responseQueue) &&
    Array.isArray(inner._responseActions) &&
    typeof inner._processResponse === 'function';
  // A nodemailer release that reworked these fails here, as a Z report, not halfway through.
  if (!usable) throw new Error('nodemailer SMTPConnection internals have changed');
  return inner as Internals;
}

/** A nodemailer error as it arrives on 'error' or in a callback. */
interface ConnectionError {
  code?: string;
  command?: string;
  response?: string;
  message?: string;
}

type Phase = 'setup' | 'transaction';

class Wire {
  private readonly conn: SMTPConnection;
  private readonly internals: Internals;
  private readonly ip: string;
  /** The bytes of the reply nodemailer is handling right now. */
  private current: string | undefined;
  /** How the dialogue ended, once it has: the first ending is the one reported. */
  private ending: Ending | null = null;
  /** The step waiting for a reply (lock-step: never more than one), told when the dialogue ends. */
  private waiter: ((ending: Ending) => void) | null = null;
  /** Who drives the dialogue: nodemailer (greeting, EHLO, STARTTLS, AUTH) or this module. */
  private phase: Phase = 'setup';
  /** In the transaction: a command is out and its reply has not come yet. */
  private due = false;
  /** The bytes received so far end inside a line: more input than the reply being read. */
  private midLine = false;
  /** The socket whose input is watched (the plain one, then the TLS one) and how. */
  private watched: { socket: Socket; listener: (chunk: Buffer) => void } | null = null;
  /** The final dot has been written out: losing the connection now may duplicate the message. */
  private flushed = false;

  constructor(socket: Socket, ip: string, d: Delivery, options: SessionOptions, tls: Record<string, unknown>) {
    this.ip = ip;
    const remote = milliseconds(d.timeoutRemote);
    this.conn = new SMTPConnection({
      connection: socket,
      host: ip,
      port: d.port,
      name: d.helohost,
      // SMTPS: nodemailer starts TLS on the connected socket before reading the greeting.
      secure: options.implicit,
      ignoreTLS: !options.startTls,
      opportunisticTLS: true,
      // SNI and, when the certificate must verify, the CAs (tls/requirement.ts). The handshake
      // never fails on an unverified certificate: whether it may carry the mail is decided
      // after it, before AUTH and MAIL; opportunistic TLS unverified is still better than none.
      tls,
      // The greeting and the STARTTLS handshake share one deadline of timeoutremote.
      connectionTimeout: remote,
      greetingTimeout: remote,
      socketTimeout: remote,
      // Every close is an abort or follows QUIT, which needs no answer: destroy at once.
      socketCloseTimeout: 0,
      logger: false,
      debug: false,
      transactionLog: false,
    });
    this.internals = internalsOf(this.conn);
    this.watch(socket);
    this.captureReplies();
    this.conn.on('error', (error: ConnectionError) => this.end(this.classify(error)));
    this.conn.on('end', () => this.end(this.classify({ message: 'connection closed' })));
  }

  get secure(): boolean {
    return this.conn.secure;
  }

  /** The TLS session the dialogue runs over now (none when plaintext). */
  tls(): TlsFacts {
    return tlsFacts(this.internals._socket);
  }

  /** Greeting, EHLO or HELO, and STARTTLS when offered. */
  open(): Promise<Step<true>> {
    return this.step<true>((resolve) => {
      this.conn.connect((error) => (error ? this.end(this.classify(error)) : resolve(true)));
    });
  }

  login(auth: { user: string; pass: string }): Promise<Step<{ accepted: boolean; reply?: SmtpReply }>> {
    return this.step((resolve) => {
      this.conn.login({ user: auth.user, pass: auth.pass }, (error) => {
        if (!error) return resolve({ accepted: true });
        const response = (error as ConnectionError).response;
        resolve({ accepted: false, ...(response === undefined ? {} : { reply: this.replyFor(response) }) });
      });
    });
  }

  /** Sends one command line (one char per byte) and resolves with its reply. */
  command(line: string): Promise<Step<SmtpReply>> {
    this.startTransaction();
    const reply = this.expectReply();
    this.send(Buffer.from(`${line}\r\n`, 'latin1'));
    return reply;
  }

  /**
   * Sends the message with dot-stuffing and the final dot (transparency.ts) and resolves with
   * the reply to the dot. No reply is due before the dot is out: one that comes sooner stops
   * the delivery (OUT_OF_STEP), so K always answers the whole message.
   */
  async message(source: Delivery['message']): Promise<Step<SmtpReply>> {
    const socket = this.internals._socket;
    if (this.ending || !socket) return { ended: this.ending ?? this.died('no socket') };
    const stuffer = new DotStuffer();
    const sent = await this.writeBody(socket, source, stuffer);
    if (sent !== null) return { ended: this.end(sent) };
    // The dot's reply is due as soon as the dot is handed over: over TLS the write's callback
    // can come after the reply has been read. qmail's flagcritical ("Possible duplicate!") is
    // set when the write completes, or by the reply itself, which proves the dot arrived.
    const reply = this.expectReply(true);
    if (await writeChunk(socket, stuffer.end())) this.flushed = true;
    else this.end(this.died('write failed'));
    return reply;
  }

  /** Ends the dialogue as out of step with the server; the report says so. */
  outOfStep(why: string): Ending {
    return this.end(smtpReport(this.flushed ? 'OUT_OF_STEP_AFTER_DOT' : 'OUT_OF_STEP', this.ip, { cause: why }));
  }

  /** QUIT without waiting for the answer, then close. */
  quit(): Promise<void> {
    const socket = this.internals._socket;
    if (!socket || socket.destroyed) {
      this.conn.close();
      return Promise.resolve();
    }
    // Nothing may be read from now on: whatever the server says, the report is decided.
    this.due = true;
    this.internals._responseActions.push(() => undefined);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.conn.close();
        resolve();
      };
      const timer = setTimeout(done, QUIT_WRITE_MS);
      socket.write('QUIT\r\n', done);
    });
  }

  /**
   * The message without the final dot, one chunk at a time, the next only once the socket has
   * taken the last: a chunk may be a view into a buffer its producer reuses (mail/message.ts),
   * and nothing piles up in memory however large the message.
   */
  private async writeBody(socket: Socket, source: Delivery['message'], stuffer: DotStuffer): Promise<Ending | null> {
    const chunks = readMessage(source);
    for (;;) {
      const next = await chunks.next();
      if (this.ending) return this.ending;
      if (next.done) return null;
      if ('failed' in next.value) return failure('READ_MESSAGE', next.value.failed);
      if (!(await writeChunk(socket, stuffer.stuff(next.value.chunk)))) return this.ending ?? this.died('write failed');
    }
  }

  /** Hands the socket a command; a failed write ends the dialogue through 'error' or 'end'. */
  private send(bytes: Buffer): void {
    const socket = this.internals._socket;
    if (this.ending) return;
    if (!socket || socket.destroyed) {
      this.end(this.died('socket gone'));
      return;
    }
    socket.write(bytes);
  }

  /** From the first command on, this module reads the replies; the TLS socket is watched too. */
  private startTransaction(): void {
    if (this.phase === 'transaction') return;
    this.phase = 'transaction';
    const socket = this.internals._socket;
    if (socket) this.watch(socket);
    // The setup's last reply was handled; anything after it came unasked.
    if (this.midLine || this.internals._responseQueue.length > 0) this.outOfStep('input after the session was set up');
  }

  /** Queues the handler of the next reply and marks it due. */
  private expectReply(toTheDot = false): Promise<Step<SmtpReply>> {
    return this.step<SmtpReply>((resolve) => {
      this.due = true;
      this.internals._responseActions.push((str) => {
        this.due = false;
        if (toTheDot) this.flushed = true;
        const reply = this.replyFor(str);
        // Lock-step: this reply must be all there is; a further line, or part of one, is unasked.
        if (this.midLine || this.internals._responseQueue.length > 0) this.outOfStep('more input than one reply');
        else resolve(reply);
      });
    });
  }

  /** A step of the dialogue: resolves with its value, or with the ending if the dialogue ends first. */
  private step<T>(start: (resolve: (value: T) => void) => void): Promise<Step<T>> {
    return new Promise<Step<T>>((resolve) => {
      if (this.ending) return resolve({ ended: this.ending });
      this.waiter = (ending) => resolve({ ended: ending });
      start((value) => {
        this.waiter = null;
        resolve(value);
      });
    });
  }

  /** Records the ending (the first one wins), closes the connection and tells the waiting step. */
  private end(ending: Ending): Ending {
    if (this.ending) return this.ending;
    this.ending = ending;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.(ending);
    this.conn.close();
    return ending;
  }

  private died(cause: unknown): Ending {
    return smtpReport(this.flushed ? 'CONNECTION_DIED_AFTER_DOT' : 'CONNECTION_DIED', this.ip, { cause });
  }

  /** What an error from nodemailer means for the report. */
  private classify(error: ConnectionError): Ending {
    if (this.ending) return this.ending;
    const cause = describeCause(error);
    // The STARTTLS handshake failed or the server dropped it: worth a plaintext retry.
    if (this.internals.upgrading) return smtpReport('TLS_FAILED', this.ip, { cause });
    const response = error.response;
    if (error.code === 'EPROTOCOL' && /^Unexpected Response/.test(error.message ?? '')) {
      return smtpReport(this.flushed ? 'OUT_OF_STEP_AFTER_DOT' : 'OUT_OF_STEP', this.ip, { cause });
    }
    const reply = response === undefined ? undefined : this.replyFor(response);
    if (reply && error.code === 'EPROTOCOL' && /greeting/i.test(error.message ?? '')) {
      return smtpReport('GREETING_FAILED', this.ip, { reply, cause });
    }
    if (reply && (error.command === 'HELO' || error.command === 'EHLO')) {
      return smtpReport('HELO_REJECTED', this.ip, { reply, cause });
    }
    return this.died(cause);
  }

  /**
   * Watches a socket's input before nodemailer sees it: input while no reply is due stops the
   * delivery, and whether the input so far ends inside a line is kept for expectReply().
   */
  private watch(socket: Socket): void {
    if (this.watched?.socket === socket) return;
    // After STARTTLS the plain socket carries only ciphertext, which says nothing about lines.
    this.watched?.socket.removeListener('data', this.watched.listener);
    const listener = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      this.midLine = chunk[chunk.length - 1] !== 0x0a;
      if (this.phase === 'transaction' && !this.due) this.outOfStep('input while no reply was due');
    };
    this.watched = { socket, listener };
    this.midLine = false;
    socket.prependListener('data', listener);
  }

  /**
   * Records the bytes of each reply before nodemailer decodes them as UTF-8 (which would
   * lose them for 8-bit text), so reports quote what the server sent, as qmail does. More
   * than one reply waiting at once is more than lock-step allows.
   */
  private captureReplies(): void {
    const original = this.internals._processResponse;
    this.internals._processResponse = () => {
      if (this.ending) return false;
      if (this.internals._responseQueue.length > 1) {
        this.outOfStep('several replies at once');
        return false;
      }
      this.current = this.internals._responseQueue[0];
      return original.call(this.conn);
    };
  }

  /** The reply nodemailer handed over, as bytes: the captured ones when they are its source. */
  private replyFor(decoded: string): SmtpReply {
    const current = this.current;
    if (current !== undefined && decodedLikeNodemailer(current) === decoded) return parseReply(current);
    // Not from the queue (e.g. a reply cut short by a close): re-encode what is known.
    const wide = /[^\0-\xff]/.test(decoded);
    return parseReply(wide ? Buffer.from(decoded, 'utf8').toString('latin1') : decoded);
  }
}

/** Resolves true once the socket has taken the bytes, false if it could not. */
function writeChunk(socket: Socket, data: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    socket.write(data, (error) => resolve(!error));
  });
}

/** The message as Buffers; a failure to read it is told apart from a failure to send it. */
async function* readMessage(source: Delivery['message']): AsyncGenerator<{ chunk: Buffer } | { failed: unknown }> {
  try {
    for await (const chunk of source()) {
      yield { chunk: typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk };
    }
  } catch (error) {
    yield { failed: error };
  }
}
