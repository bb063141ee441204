// A scripted SMTP peer on a loopback address: it answers each command with the reply its
// script has for the verb, can stay silent, drop the connection at any step, send any bytes
// (multi-line replies, NUL, 8-bit) and records everything it received, so tests can assert
// both the client's commands and the exact message bytes.
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/**
 * What the server does for one command: a string is sent with CRLF appended (separate the
 * lines of a multi-line reply with CRLF), a Buffer is sent as is, an Action says more.
 */
export type Step = string | Buffer | Action;

export interface Action {
  /** Sent first (a string gets CRLF appended). Without it the server stays silent. */
  reply?: string | Buffer;
  /** Then destroy the connection. */
  close?: boolean;
  /**
   * Then answer whatever the client sends next (a TLS ClientHello, say) with these bytes and
   * close: a server that says it starts TLS and does not.
   */
  answerNextWith?: string | Buffer;
  /**
   * Then read everything that follows without ever answering (a TLS handshake that never
   * completes, a server that hangs mid-dialogue), until the client gives up.
   */
  ignoreRest?: boolean;
  /**
   * Then start TLS with this key and certificate (the reply to STARTTLS): what follows is read
   * and recorded decrypted, so a test sees every byte the client sent inside TLS too.
   */
  startTls?: TlsIdentity;
}

export interface TlsIdentity {
  key: Buffer;
  cert: Buffer;
}

export interface Script {
  /**
   * The banner; default '220 script.test ESMTP'. An array gives the banners of successive
   * connections; its last entry repeats.
   */
  greeting?: Step | Step[];
  /**
   * Keyed by verb (EHLO, HELO, MAIL, RCPT, DATA, QUIT, STARTTLS, ...) and '.' for the end of
   * the message. An array gives the replies of successive uses in one connection; its last
   * entry repeats.
   */
  replies?: Record<string, Step | Step[]>;
  /** Destroy the connection as soon as the first bytes of the message arrive. */
  dropInBody?: boolean;
  /**
   * Sent once, as soon as the first bytes of the message arrive, long before the final dot:
   * a reply (a string gets CRLF appended) the client must not take for the dot's. The server
   * then stops reading, so a large message is still being sent when the reply arrives.
   */
  replyInBody?: string | Buffer;
  /** Implicit TLS (SMTPS): the handshake comes first, then the greeting inside it. */
  implicitTls?: TlsIdentity;
}

export interface ScriptSession {
  /** Command lines as received (latin1, without CRLF). */
  commands: string[];
  /** Every byte received on the connection. */
  readonly received: Buffer;
  /** Each message as sent between DATA's reply and the final dot, dot-stuffed, dot included. */
  wire: Buffer[];
  /** Each message with the transparency dots removed and without the final dot. */
  messages: Buffer[];
  /** Resolves when the connection is closed. */
  closed: Promise<void>;
  /** The SNI name the client sent in a TLS handshake, if any ('' for a handshake without one). */
  servername?: string;
  /** The client's address, as the server saw it. */
  readonly remoteAddress: string;
}

export interface ScriptServer {
  port: number;
  host: string;
  sessions: ScriptSession[];
  /** Resolves when every connection so far has closed. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULTS: Record<string, Step> = {
  EHLO: '250-script.test\r\n250 8BITMIME',
  HELO: '250 script.test',
  MAIL: '250 ok',
  RCPT: '250 ok',
  DATA: '354 go ahead',
  '.': '250 queued',
  QUIT: '221 bye',
  RSET: '250 ok',
  NOOP: '250 ok',
};

const END_OF_DATA = Buffer.from('\r\n.\r\n');

export async function startScriptServer(script: Script = {}, host = '127.0.0.1', port = 0): Promise<ScriptServer> {
  const sessions: ScriptSession[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    sessions.push(serve(socket, script, sessions.length));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    host,
    sessions,
    idle: async () => {
      await Promise.all(sessions.map((s) => s.closed));
    },
    close: () => closeServer(server, sockets),
  };
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function serve(raw: Socket, script: Script, index: number): ScriptSession {
  let socket: Socket = raw;
  let markClosed: () => void = () => undefined;
  const chunks: Buffer[] = [];
  const session: ScriptSession = {
    commands: [],
    get received() {
      return Buffer.concat(chunks);
    },
    wire: [],
    messages: [],
    closed: new Promise<void>((resolve) => (markClosed = resolve)),
    remoteAddress: raw.remoteAddress ?? '',
  };
  raw.on('close', () => markClosed());
  raw.on('error', () => undefined);
  const uses = new Map<string, number>();
  let pending: Buffer = Buffer.alloc(0);
  let inData = false;
  // The message so far, kept in parts (it may be large), and its last bytes, in which the
  // end of data is looked for across chunk boundaries. The CRLF the tail starts with stands
  // for the line end before the message, so an empty message (".\r\n") ends it too.
  let parts: Buffer[] = [];
  let length = 0;
  let tail: Buffer = Buffer.from('\r\n');
  let hijacked: Buffer | null = null;
  let ignoring = false;
  let repliedInBody = false;

  const act = (step: Step): void => {
    if (socket.destroyed) return;
    if (typeof step === 'string' || Buffer.isBuffer(step)) return void socket.write(asBytes(step));
    if (step.reply !== undefined) socket.write(asBytes(step.reply));
    if (step.answerNextWith !== undefined) hijacked = asBytes(step.answerNextWith, false);
    if (step.ignoreRest) ignoring = true;
    if (step.close) socket.destroy();
    if (step.startTls) startTls(step.startTls);
  };
  /** Input from now on comes through TLS; the handshake's failure just ends the connection. */
  const startTls = (identity: TlsIdentity, then?: () => void): void => {
    socket.removeListener('data', onInput);
    const secure = new TLSSocket(socket, { isServer: true, key: identity.key, cert: identity.cert, SNICallback: (name, done) => {
      session.servername = name;
      done(null);
    } });
    session.servername ??= '';
    secure.on('error', () => raw.destroy());
    secure.on('data', onInput);
    if (then) secure.once('secure', then);
    socket = secure;
    pending = Buffer.alloc(0);
  };
  const stepFor = (verb: string): Step => {
    const count = uses.get(verb) ?? 0;
    uses.set(verb, count + 1);
    const scripted = script.replies?.[verb];
    if (scripted === undefined) return DEFAULTS[verb] ?? '502 unknown command';
    if (!Array.isArray(scripted)) return scripted;
    return scripted[Math.min(count, scripted.length - 1)] ?? '502 unknown command';
  };

  const onCommand = (line: string): void => {
    session.commands.push(line);
    const verb = (line.split(' ', 1)[0] ?? '').toUpperCase();
    const step = stepFor(verb);
    act(step);
    if (verb === 'DATA' && startsData(step)) inData = true;
  };
  /** Takes the message from pending; true when it ended (what follows stays in pending). */
  const onData = (): boolean => {
    if (pending.length === 0) return false;
    if (script.dropInBody) {
      socket.destroy();
      return false;
    }
    if (script.replyInBody !== undefined && !repliedInBody) {
      repliedInBody = true;
      socket.write(asBytes(script.replyInBody));
      socket.pause();
    }
    const probe = Buffer.concat([tail, pending]);
    const found = probe.indexOf(END_OF_DATA);
    parts.push(pending);
    if (found < 0) {
      length += pending.length;
      tail = probe.subarray(-END_OF_DATA.length);
      pending = Buffer.alloc(0);
      return false;
    }
    const end = length - tail.length + found + END_OF_DATA.length;
    const data = Buffer.concat(parts);
    session.wire.push(data.subarray(0, end));
    session.messages.push(unstuff(data.subarray(0, end)));
    pending = data.subarray(end);
    [parts, length, tail, inData] = [[], 0, Buffer.from('\r\n'), false];
    act(stepFor('.'));
    return true;
  };

  function onInput(chunk: Buffer): void {
    chunks.push(chunk);
    if (ignoring) return;
    if (hijacked !== null) {
      socket.end(hijacked);
      return;
    }
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      if (inData) {
        if (!onData()) return;
        continue;
      }
      const lf = pending.indexOf(0x0a);
      if (lf < 0) return;
      const line = pending.subarray(0, lf).toString('latin1').replace(/\r$/, '');
      pending = pending.subarray(lf + 1);
      onCommand(line);
      if (socket.destroyed) return;
    }
  }
  socket.on('data', onInput);
  const greetings = script.greeting;
  const greeting = Array.isArray(greetings) ? greetings[Math.min(index, greetings.length - 1)] : greetings;
  const greet = (): void => act(greeting ?? '220 script.test ESMTP');
  if (script.implicitTls) startTls(script.implicitTls, greet);
  else greet();
  return session;
}

function asBytes(step: string | Buffer, withCrlf = true): Buffer {
  if (Buffer.isBuffer(step)) return step;
  return Buffer.from(withCrlf ? `${step}\r\n` : step, 'latin1');
}

/** A 3xx reply to DATA (or an action whose reply is one) starts the message. */
function startsData(step: Step): boolean {
  const reply = typeof step === 'string' || Buffer.isBuffer(step) ? step : step.reply;
  if (reply === undefined) return false;
  return /^3/.test(Buffer.isBuffer(reply) ? reply.toString('latin1') : reply);
}

/** RFC 5321 §4.5.2: drop the first dot of every line, and the final ".\r\n". */
export function unstuff(wire: Buffer): Buffer {
  const body = wire.subarray(0, wire.length - 3);
  const out: Buffer[] = [];
  let start = 0;
  while (start < body.length) {
    const lf = body.indexOf(0x0a, start);
    const end = lf < 0 ? body.length : lf + 1;
    const skip = body[start] === 0x2e ? 1 : 0;
    out.push(body.subarray(start + skip, end));
    start = end;
  }
  return Buffer.concat(out);
}
