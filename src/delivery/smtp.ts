// One delivery attempt over SMTP, as qmail-remote's smtp() does it (spec §2.1, §5.4, §6): try
// the addresses in order until one connects, then greeting, EHLO (HELO fallback), STARTTLS
// when offered, AUTH when configured, MAIL, one RCPT at a time, DATA, the message, the final
// dot, QUIT without waiting. Every outcome is one set of reports in qmail-remote's words.
//
// nodemailer's SMTPConnection sets the session up (greeting, EHLO/HELO, STARTTLS, AUTH). The
// transaction is driven here through the same two internals its own verbs use
// (_responseActions, _sendCommand), because send() judges replies differently from qmail
// (only 2xx succeeds, PIPELINING, trimmed addresses) and reports the recipients only at the
// end. Replies are quoted from the bytes as received (see Wire.replyFor).
//
// Trusts: the caller for the message bytes (CRLF lines, already signed, not dot-stuffed) and
// for the addresses to connect to (loopback or not is the router's business). Does not trust
// the server (any bytes, any length, any timing) nor the envelope (checked before use).
// Never throws, never prints: nodemailer's logger is off and every failure is a report.
import { connect, type Socket } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { DotStuffer } from './transparency.ts';
import { failure, type Failure } from '../common/failures.ts';
import type { MessageLetter, MessageReport, RecipientReport, Reports } from './report.ts';

export interface DeliveryAddress {
  ip: string;
  family: 4 | 6;
}

export interface Delivery {
  /** In order; the next one is tried only when a connection cannot be made. */
  addresses: DeliveryAddress[];
  port: number;
  helohost: string;
  /** '' is a bounce (MAIL FROM:<>); the double bounce sender '#@[]' passes as is. */
  sender: string;
  /** argv order; the recipient reports come back in the same order. */
  recips: string[];
  /** CRLF lines, already signed, not dot-stuffed. Called at most once, after DATA was accepted. */
  message: () => NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>;
  /** Seconds, control/timeoutconnect (default 60). */
  timeoutConnect: number;
  /** Seconds of read or write inactivity, control/timeoutremote (default 1200). */
  timeoutRemote: number;
  /** SMTP AUTH credentials, used only over a connection that STARTTLS secured. */
  auth?: { user: string; pass: string };
}

export interface DeliveryResult {
  reports: Reports;
  /** The address the reports talk about, when a connection was made. */
  ip?: string;
  /** Where the dialogue ended, for the log. */
  stage?: string;
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
// Addresses go between < and > on one command line; these would end or split it.
const UNSAFE_ADDRESS = /[\r\n\0<>]/;
const BAD_RECIPIENT = 'Sorry, the recipient address contains characters SMTP cannot carry. (#5.1.3)\n';

export async function deliver(d: Delivery): Promise<DeliveryResult> {
  try {
    return await attempt(d);
  } catch {
    return { reports: { recipients: [], message: asReport(failure('INTERNAL')) } };
  }
}

async function attempt(d: Delivery): Promise<DeliveryResult> {
  const envelope = checkEnvelope(d);
  if ('failure' in envelope) return envelope.failure;
  for (const address of d.addresses) {
    const socket = await connectTcp(address.ip, d.port, milliseconds(d.timeoutConnect));
    if (!socket) continue;
    const result = await session(socket, address.ip, d, envelope, true);
    if (result !== TLS_FAILED) return result;
    return retryWithoutTls(address.ip, d, envelope);
  }
  return { reports: { recipients: [], message: asReport(failure('NO_CONNECTION')) }, stage: 'connect' };
}

/**
 * A failed TLS handshake gets one more connection to the same address in plaintext, as
 * Postfix's "may" level does: opportunistic TLS must not cost deliverability.
 */
async function retryWithoutTls(ip: string, d: Delivery, envelope: Envelope): Promise<DeliveryResult> {
  const socket = await connectTcp(ip, d.port, milliseconds(d.timeoutConnect));
  if (!socket) return stopped([], ip, { kind: 'died', critical: false }, 'starttls');
  const result = await session(socket, ip, d, envelope, false);
  // Unreachable: without STARTTLS there is no handshake to fail.
  return result === TLS_FAILED ? stopped([], ip, { kind: 'died', critical: false }, 'starttls') : result;
}

// ---------------------------------------------------------------------------------------------
// The envelope

interface Envelope {
  sender: string;
  /** The recipients as they go into RCPT TO, or null for one that cannot be sent. */
  recips: Array<string | null>;
}

function checkEnvelope(d: Delivery): Envelope | { failure: DeliveryResult } {
  if (UNSAFE_ADDRESS.test(d.sender)) return { failure: onlyMessage(failure('BAD_SENDER')) };
  const recips = d.recips.map((recip) => (UNSAFE_ADDRESS.test(recip) ? null : addrmangle(recip)));
  if (!recips.some((recip) => recip !== null)) {
    const rejected = recips.map((): RecipientReport => ({ letter: 'h', text: BAD_RECIPIENT }));
    return { failure: { reports: { recipients: rejected, message: asReport(failure('NO_RECIPIENT')) } } };
  }
  return { sender: addrmangle(d.sender), recips };
}

/**
 * qmail-remote's addrmangle() without the CNAME step (spec §1): split at the last '@', quote
 * the local part when it is not a dot-atom, keep the domain; no '@' means verbatim.
 */
export function addrmangle(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  return quote(address.slice(0, at)) + address.slice(at);
}

// quote.c: the characters a local part may hold unquoted.
const ATOM = /^[!#$%&'*+\-./0-9=?A-Z^_`a-z{|}~]+$/;

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

const TLS_FAILED = Symbol('TLS handshake failed');

type Stage = 'greeting' | 'auth' | 'mail' | 'rcpt' | 'data' | 'message';

/** How a session ended early: each kind is one report (see stopReport). */
type Stop =
  | { kind: 'died'; critical: boolean }
  | { kind: 'tls' }
  | { kind: 'greeting'; reply: Reply }
  | { kind: 'helo'; reply: Reply };

class Stopped extends Error {
  readonly stop: Stop;
  constructor(stop: Stop) {
    super(stop.kind);
    this.stop = stop;
  }
}

/** The message source failed while the body was going out; the final dot was never sent. */
class ReadFailed extends Error {}

/** The end of a dialogue that went as far as a reply: its report, then QUIT. */
interface Ending {
  message: MessageReport;
  stage: Stage;
}

async function session(
  socket: Socket,
  ip: string,
  d: Delivery,
  envelope: Envelope,
  startTls: boolean,
): Promise<DeliveryResult | typeof TLS_FAILED> {
  let wire: Wire;
  try {
    wire = new Wire(socket, ip, d, startTls);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  const recipients: RecipientReport[] = [];
  const progress: { stage: Stage } = { stage: 'greeting' };
  try {
    const ending = await dialogue(wire, ip, d, envelope, recipients, progress);
    await wire.quit();
    return { reports: { recipients, message: ending.message }, ip, stage: ending.stage };
  } catch (error) {
    wire.close();
    if (error instanceof ReadFailed) {
      return { reports: { recipients, message: asReport(failure('READ_MESSAGE')) }, ip, stage: progress.stage };
    }
    if (!(error instanceof Stopped)) throw error;
    if (error.stop.kind === 'tls') return TLS_FAILED;
    return stopped(recipients, ip, error.stop, progress.stage);
  }
}

async function dialogue(
  wire: Wire,
  ip: string,
  d: Delivery,
  envelope: Envelope,
  recipients: RecipientReport[],
  progress: { stage: Stage },
): Promise<Ending> {
  await wire.open();
  if (d.auth) {
    progress.stage = 'auth';
    const refused = await authenticate(wire, ip, d.auth);
    if (refused) return refused;
  }
  progress.stage = 'mail';
  const mail = await wire.command(`MAIL FROM:<${envelope.sender}>`);
  if (mail.code >= 400) return ending(severity(mail), `Connected to ${ip} but sender was rejected.`, mail, 'mail');
  progress.stage = 'rcpt';
  await rcpts(wire, ip, envelope.recips, recipients);
  // Every rejection was quoted in its recipient report already, so no reply text here.
  if (!recipients.some((r) => r.letter === 'r')) return ending('D', `Giving up on ${ip}.`, undefined, 'rcpt');
  progress.stage = 'data';
  const data = await wire.command('DATA');
  if (data.code >= 400) return ending(severity(data), `${ip} failed on DATA command.`, data, 'data');
  progress.stage = 'message';
  const final = await wire.message(d.message);
  if (final.code >= 400) return ending(severity(final), `${ip} failed after I sent the message.`, final, 'message');
  return ending('K', `${ip} accepted message.`, final, 'message');
}

/** AUTH only over TLS (qmail's auth patches: credentials never travel in clear). */
async function authenticate(wire: Wire, ip: string, auth: { user: string; pass: string }): Promise<Ending | null> {
  if (!wire.secure) return ending('Z', `Connected to ${ip} but STARTTLS is required for AUTH. (#4.7.0)`, undefined, 'auth');
  const result = await wire.login(auth);
  if (result.accepted) return null;
  return ending('Z', `Connected to ${ip} but authentication was rejected.`, result.reply, 'auth');
}

/**
 * One RCPT at a time, in argv order; a recipient refused before connecting is h in its place.
 * Each report is kept as soon as it is known (qmail prints it at once), so a connection that
 * dies later still reports the recipients before it.
 */
async function rcpts(wire: Wire, ip: string, recips: Array<string | null>, out: RecipientReport[]): Promise<void> {
  for (const recip of recips) {
    out.push(recip === null ? { letter: 'h', text: BAD_RECIPIENT } : await rcpt(wire, ip, recip));
  }
}

async function rcpt(wire: Wire, ip: string, recip: string): Promise<RecipientReport> {
  const reply = await wire.command(`RCPT TO:<${recip}>`);
  if (reply.code < 400) return { letter: 'r', text: '' };
  return { letter: reply.code >= 500 ? 'h' : 's', text: `${ip} does not like recipient.\n${said(reply)}` };
}

// ---------------------------------------------------------------------------------------------
// Reports

function severity(reply: Reply): 'D' | 'Z' {
  return reply.code >= 500 ? 'D' : 'Z';
}

function ending(letter: MessageLetter, sentence: string, reply: Reply | undefined, stage: Stage): Ending {
  return { message: { letter, text: `${sentence}\n${reply ? said(reply) : ''}` }, stage };
}

function said(reply: Reply): string {
  return `Remote host said: ${reply.text}`;
}

function stopReport(stop: Exclude<Stop, { kind: 'tls' }>, ip: string): MessageReport {
  switch (stop.kind) {
    case 'greeting':
      return { letter: 'Z', text: `Connected to ${ip} but greeting failed.\n${said(stop.reply)}` };
    case 'helo':
      return { letter: 'Z', text: `Connected to ${ip} but my name was rejected.\n${said(stop.reply)}` };
    case 'died': {
      // qmail's flagcritical: the final dot reached the kernel, the server may have the message.
      const duplicate = stop.critical ? 'Possible duplicate! ' : '';
      return { letter: 'Z', text: `Connected to ${ip} but connection died. ${duplicate}(#4.4.2)\n` };
    }
  }
}

function stopped(
  recipients: RecipientReport[],
  ip: string,
  stop: Exclude<Stop, { kind: 'tls' }>,
  stage: string,
): DeliveryResult {
  return { reports: { recipients, message: stopReport(stop, ip) }, ip, stage };
}

function asReport(f: Failure): MessageReport {
  return { letter: f.letter, text: f.text };
}

function onlyMessage(f: Failure): DeliveryResult {
  return { reports: { recipients: [], message: asReport(f) } };
}

// ---------------------------------------------------------------------------------------------
// Replies

/** A server reply: the code of its first line and the text qmail quotes (see parseReply). */
interface Reply {
  code: number;
  text: string;
}

/**
 * The reply as qmail's get()/outsmtptext() quote it, from its bytes (a latin1 string, one char
 * per byte, lines joined by LF): every line with its code and its LF, CR dropped, NUL as '?',
 * at most REPLY_TEXT_BYTES; a text cut inside a line still ends in LF, as reports must.
 */
function parseReply(bytes: string): Reply {
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

/** What SMTPConnection's own verbs use to send a command and await its reply. */
interface Internals {
  /** Complete replies not yet handled, as bytes (latin1), lines joined by LF. */
  _responseQueue: string[];
  /** One handler per expected reply, in order. */
  _responseActions: Array<(reply: string) => void>;
  _sendCommand(line: string): void;
  _processResponse(): unknown;
}

function internalsOf(conn: SMTPConnection): Internals {
  const inner = conn as unknown as Partial<Internals>;
  const usable =
    Array.isArray(inner._responseQueue) &&
    Array.isArray(inner._responseActions) &&
    typeof inner._sendCommand === 'function' &&
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

class Wire {
  private readonly conn: SMTPConnection;
  private readonly internals: Internals;
  /** The bytes of the reply nodemailer is handling right now. */
  private current: string | undefined;
  private dead: Stop | null = null;
  /** Rejecters of the steps under way, told when the connection ends. */
  private readonly mourners = new Set<(stop: Stop) => void>();
  /** The final dot has been written out: losing the connection now may duplicate the message. */
  private flushed = false;

  constructor(socket: Socket, ip: string, d: Delivery, startTls: boolean) {
    const remote = milliseconds(d.timeoutRemote);
    this.conn = new SMTPConnection({
      connection: socket,
      host: ip,
      port: d.port,
      name: d.helohost,
      secure: false,
      ignoreTLS: !startTls,
      opportunisticTLS: true,
      // Opportunistic: an unverified certificate is still better than plaintext.
      tls: { rejectUnauthorized: false },
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
    this.captureReplies();
    this.conn.on('error', (error: ConnectionError) => this.die(this.classify(error)));
    this.conn.on('end', () => this.die(this.classify({})));
  }

  get secure(): boolean {
    return this.conn.secure;
  }

  /** Greeting, EHLO or HELO, and STARTTLS when offered. */
  open(): Promise<void> {
    return this.step<void>((resolve, reject) => {
      this.conn.connect((error) => (error ? reject(this.classify(error)) : resolve()));
    });
  }

  login(auth: { user: string; pass: string }): Promise<{ accepted: boolean; reply?: Reply }> {
    return this.step((resolve) => {
      this.conn.login({ user: auth.user, pass: auth.pass }, (error) => {
        if (!error) return resolve({ accepted: true });
        const response = (error as ConnectionError).response;
        resolve({ accepted: false, ...(response === undefined ? {} : { reply: this.replyFor(response) }) });
      });
    });
  }

  /** Sends one command line and resolves with its reply. */
  command(line: string): Promise<Reply> {
    const reply = this.expectReply();
    if (!this.dead) this.internals._sendCommand(line);
    return reply;
  }

  /**
   * Sends the message with dot-stuffing and the final dot (src/transparency.ts) and resolves with the reply to the dot. A reply that
   * comes early is only looked at once the dot is out, so K always follows the whole message.
   */
  async message(source: Delivery['message']): Promise<Reply> {
    const reply = this.expectReply();
    reply.catch(() => undefined); // judged below, after the body; a death rejects both
    await this.sendBody(source);
    return reply;
  }

  /** QUIT without waiting for the answer, then close. */
  quit(): Promise<void> {
    const socket = this.conn._socket;
    if (this.dead || !socket) {
      this.close();
      return Promise.resolve();
    }
    // If the 221 arrives before the close, nodemailer must not take it for an unexpected reply.
    this.internals._responseActions.push(() => undefined);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.close();
        resolve();
      };
      const timer = setTimeout(done, QUIT_WRITE_MS);
      socket.write('QUIT\r\n', done);
    });
  }

  close(): void {
    this.conn.close();
  }

  private sendBody(source: Delivery['message']): Promise<void> {
    const socket = this.conn._socket;
    if (this.dead || !socket) return Promise.reject(new Stopped(this.dead ?? this.classify({})));
    const sent = this.writeBody(socket, source);
    return this.step<void>((resolve, reject) => {
      sent.then(resolve, (error: unknown) => reject(error instanceof ReadFailed ? error : this.classify({})));
    });
  }

  /**
   * One chunk at a time, the next only once the socket has taken the last: a chunk may be a
   * view into a buffer its producer reuses (src/message.ts), and nothing piles up in memory
   * however large the message. The moment the final dot's write completes is qmail's
   * "flushed": a connection that dies after it may have delivered the message.
   */
  private async writeBody(socket: Socket, source: Delivery['message']): Promise<void> {
    const stuffer = new DotStuffer();
    for await (const chunk of readMessage(source)) {
      if (this.dead) throw new Error('connection died');
      await writeChunk(socket, stuffer.stuff(chunk));
    }
    await writeChunk(socket, stuffer.end());
    this.flushed = true;
  }

  /** Queues the handler for the next reply; the reply resolves the step synchronously. */
  private expectReply(): Promise<Reply> {
    return this.step<Reply>((resolve) => {
      this.internals._responseActions.push((str) => resolve(this.replyFor(str)));
    });
  }

  /**
   * A promise for one step of the dialogue that is rejected as soon as the connection ends,
   * unless the step settled first (a 421 reply arrives, then the server closes).
   */
  private step<T>(start: (resolve: (value: T) => void, reject: (reason: Stop | Error) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.dead) return reject(new Stopped(this.dead));
      const mourn = (stop: Stop): void => reject(new Stopped(stop));
      this.mourners.add(mourn);
      start(
        (value) => {
          this.mourners.delete(mourn);
          resolve(value);
        },
        (reason) => {
          this.mourners.delete(mourn);
          reject(reason instanceof Error ? reason : new Stopped(reason));
        },
      );
    });
  }

  private die(stop: Stop): void {
    if (this.dead) return;
    this.dead = stop;
    for (const mourn of this.mourners) mourn(stop);
    this.mourners.clear();
  }

  /** What an error from nodemailer means for the report. */
  private classify(error: ConnectionError): Stop {
    if (this.dead) return this.dead;
    // The STARTTLS handshake failed or the server dropped it: worth a plaintext retry.
    if (this.conn.upgrading) return { kind: 'tls' };
    const response = error.response;
    if (response !== undefined && error.code === 'EPROTOCOL' && /greeting/i.test(error.message ?? '')) {
      return { kind: 'greeting', reply: this.replyFor(response) };
    }
    if (response !== undefined && (error.command === 'HELO' || error.command === 'EHLO')) {
      return { kind: 'helo', reply: this.replyFor(response) };
    }
    return { kind: 'died', critical: this.flushed };
  }

  /**
   * Records the bytes of each reply before nodemailer decodes them as UTF-8 (which would
   * lose them for 8-bit text), so reports quote what the server sent, as qmail does.
   */
  private captureReplies(): void {
    const original = this.internals._processResponse;
    this.internals._processResponse = () => {
      this.current = this.internals._responseQueue[0];
      return original.call(this.conn);
    };
  }

  /** The reply nodemailer handed over, as bytes: the captured ones when they are its source. */
  private replyFor(decoded: string): Reply {
    const current = this.current;
    if (current !== undefined && decodedLikeNodemailer(current) === decoded) return parseReply(current);
    // Not from the queue (e.g. a reply cut short by a close): re-encode what is known.
    const wide = /[^\0-\xff]/.test(decoded);
    return parseReply(wide ? Buffer.from(decoded, 'utf8').toString('latin1') : decoded);
  }
}

/** The message as Buffers; a failure to read it is told apart from a failure to send it. */
function writeChunk(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

async function* readMessage(source: Delivery['message']): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of source()) {
      yield typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    }
  } catch (error) {
    throw new ReadFailed('message source failed', { cause: error });
  }
}
