// The wire: nodemailer's SMTPConnection plus the few internals the transaction needs. This is
// the one file that touches nodemailer's private members (test/delivery/nodemailer-contract.test.ts
// checks each against the pinned release):
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

/** The private members of SMTPConnection this module relies on (see the header). */
import type { Socket } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { DotStuffer } from '../transparency.ts';
import { tlsFacts, type TlsFacts } from '../tls/requirement.ts';
import { describeCause, failure, smtpReport, type SmtpReply } from '../../common/failures.ts';
import type { Delivery, Ending, SessionOptions, Step } from './types.ts';
import { decodedLikeNodemailer, parseReply } from './reply.ts';
import { milliseconds } from './connect.ts';

// QUIT is written and the connection closed without waiting for the answer ("waiting for
// remote side is just too ridiculous", qmail-remote.c); this only bounds the write itself.
const QUIT_WRITE_MS = 1000;

/** The private members of SMTPConnection this module relies on (see the header). */
export interface Internals {
  _socket: Socket | false;
  /** Complete replies not yet handled, as bytes (latin1), lines joined by LF. */
  _responseQueue: string[];
  /** One handler per expected reply, in order. */
  _responseActions: Array<(reply: string) => void>;
  _processResponse(): unknown;
  upgrading?: boolean;
  /** The lines of the last EHLO reply after the first, codes stripped (one keyword and its parameters each). */
  _ehloLines?: string[];
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

export class Wire {
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

  /**
   * The ESMTP keywords the server announced (RFC 5321 §4.1.1.1: the first word of each line of
   * the EHLO reply after the first), upper case; none after HELO. nodemailer's own list matches
   * a keyword anywhere in the reply, the greeting line and `SIZEABLE` included, and a parameter
   * the server never offered could earn a 5xx to MAIL: a bounce for our mistake.
   */
  extensions(): ReadonlySet<string> {
    const lines = this.internals._ehloLines;
    if (!Array.isArray(lines)) return new Set();
    return new Set(lines.map((line) => String(line).trim().split(/[ \t]/, 1)[0]?.toUpperCase() ?? '').filter(Boolean));
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
