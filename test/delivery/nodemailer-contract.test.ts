// The contract with nodemailer's SMTPConnection that src/delivery/smtp/wire.ts relies on beyond its
// public API: each private member is present and behaves as relied on. package.json pins the
// exact version these tests were written against; a new release must pass them before the pin
// moves.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { internalsOf, type Internals } from '../../src/delivery/smtp/index.ts';
import { startScriptServer, type Script } from '../helpers/script-server.ts';

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { dependencies: Record<string, string> };
const installed = (require('nodemailer/package.json') as { version: string }).version;

interface ErrorLike {
  code?: string;
  message?: string;
  command?: string;
  response?: string;
}

/** An SMTPConnection over a socket of our own, as smtp/wire.ts makes it, greeted and EHLO'd. */
async function opened(t: TestContext, script: Script, startTls = false) {
  const server = await startScriptServer(script);
  t.after(() => server.close());
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host: server.host, port: server.port }, () => resolve(s));
    s.once('error', reject);
  });
  const conn = new SMTPConnection({
    connection: socket,
    host: server.host,
    port: server.port,
    name: 'client.test',
    ignoreTLS: !startTls,
    opportunisticTLS: true,
    tls: { rejectUnauthorized: false },
    socketCloseTimeout: 0,
    logger: false,
  });
  t.after(() => conn.close());
  const errors: ErrorLike[] = [];
  // A failure reaches the connect() callback or the 'error' event, depending on the stage;
  // `upgrading` is read at that moment.
  let upgradingAtFailure: boolean | undefined;
  const connected = await new Promise<ErrorLike | null>((resolve) => {
    const failed = (error: ErrorLike): void => {
      upgradingAtFailure ??= internalsOf(conn).upgrading === true;
      resolve(error);
    };
    conn.on('error', (error: ErrorLike) => {
      errors.push(error);
      failed(error);
    });
    conn.connect((error) => (error ? failed(error) : resolve(null)));
  });
  return { conn, socket, internals: internalsOf(conn), errors, connected, server, upgradingAtFailure };
}

function nextReply(internals: Internals): Promise<string> {
  return new Promise((resolve) => internals._responseActions.push(resolve));
}

test('the nodemailer in use is the exact version pinned in package.json', () => {
  assert.match(pkg.dependencies.nodemailer ?? '', /^\d+\.\d+\.\d+$/, 'an exact version, not a range');
  assert.equal(installed, pkg.dependencies.nodemailer);
});

test('internalsOf finds every private member smtp/wire.ts uses on a fresh SMTPConnection', () => {
  const internals = internalsOf(new SMTPConnection({ logger: false }));
  assert.ok('_socket' in internals);
  assert.ok(Array.isArray(internals._responseQueue));
  assert.ok(Array.isArray(internals._responseActions));
  assert.equal(typeof internals._processResponse, 'function');
  assert.throws(() => internalsOf({} as SMTPConnection), /internals have changed/);
});

test('_ehloLines: the lines of the EHLO reply after the first, codes stripped, for MAIL\'s SIZE=, BODY= and SMTPUTF8', async (t) => {
  const { internals, connected } = await opened(t, { replies: { EHLO: '250-script.test says SMTPUTF8\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 SIZEABLE' } });
  assert.equal(connected, null);
  assert.deepEqual(internals._ehloLines, ['SIZE 1000', '8BITMIME', 'SIZEABLE']);
  const bare = await opened(t, { replies: { EHLO: '250 script.test' } });
  assert.deepEqual(bare.internals._ehloLines, []);
});

test('_socket is the socket handed over, and bytes written to it reach the server unchanged', async (t) => {
  const { socket, internals, connected, server } = await opened(t, {});
  assert.equal(connected, null);
  assert.equal(internals._socket, socket);
  const reply = nextReply(internals);
  (internals._socket as Socket).write(Buffer.from('MAIL FROM:<caf\xe9@x.test>\r\n', 'latin1'));
  assert.equal(await reply, '250 ok');
  assert.ok(server.sessions[0]?.received.includes(Buffer.from('caf\xe9@x.test', 'latin1')));
});

test('_responseActions: a handler queued after a command gets that command\'s reply', async (t) => {
  const { internals } = await opened(t, { replies: { NOOP: '250-first\r\n250 second', RSET: '451 later' } });
  const noop = nextReply(internals);
  (internals._socket as Socket).write('NOOP\r\n');
  assert.equal(await noop, '250-first\n250 second');
  const rset = nextReply(internals);
  (internals._socket as Socket).write('RSET\r\n');
  assert.equal(await rset, '451 later');
});

test('_processResponse runs with the reply\'s bytes first in _responseQueue, before they are decoded', async (t) => {
  const { internals } = await opened(t, { replies: { NOOP: Buffer.from('250-caf\xe9\r\n250 caf\xc3\xa9\r\n', 'latin1') } });
  const seen: Array<string | undefined> = [];
  const original = internals._processResponse;
  internals._processResponse = function (this: unknown) {
    if (internals._responseQueue.length > 0) seen.push(internals._responseQueue[0]);
    return original.call(this);
  };
  const reply = nextReply(internals);
  (internals._socket as Socket).write('NOOP\r\n');
  const decoded = await reply;
  assert.equal(seen[0], '250-caf\xe9\n250 caf\xc3\xa9', 'bytes as latin1, lines joined by LF, CR dropped');
  assert.equal(decoded, '250-caf\xe9\n250 caf\xc3\xa9', 'not valid UTF-8 as a whole: handed over as bytes');
});

test('_responseQueue holds every complete reply of a chunk when _processResponse runs', async (t) => {
  const { internals } = await opened(t, { replies: { NOOP: '250 one\r\n250 two' } });
  const lengths: number[] = [];
  const original = internals._processResponse;
  internals._processResponse = function (this: unknown) {
    if (internals._responseQueue.length > 0) lengths.push(internals._responseQueue.length);
    return original.call(this);
  };
  const reply = nextReply(internals);
  reply.catch(() => undefined);
  (internals._socket as Socket).write('NOOP\r\n');
  await reply;
  assert.equal(lengths[0], 2);
});

test('a reply with no handler queued is an EPROTOCOL "Unexpected Response" error', async (t) => {
  const { conn, internals, errors } = await opened(t, {});
  const failed = new Promise<void>((resolve) => conn.once('error', () => resolve()));
  (internals._socket as Socket).write('NOOP\r\n'); // answered, but nobody asked for the answer
  await failed;
  assert.equal(errors[0]?.code, 'EPROTOCOL');
  assert.match(errors[0]?.message ?? '', /^Unexpected Response/);
});

test('upgrading is true while a STARTTLS handshake fails, and _socket becomes the TLS socket when one succeeds', async (t) => {
  const failing = await opened(
    t,
    {
      replies: {
        EHLO: '250-script.test\r\n250 STARTTLS',
        STARTTLS: { reply: '220 go ahead', answerNextWith: '500 this is not TLS\r\n' },
      },
    },
    true,
  );
  assert.ok(failing.connected, 'the handshake failed');
  assert.equal(failing.upgradingAtFailure, true);

  const { selfSignedCert } = await import('../helpers/tls.ts');
  const { SMTPServer } = await import('smtp-server');
  const server = new SMTPServer({ ...selfSignedCert(), logger: false, authOptional: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.server.address() as { port: number };
  const socket: Socket = await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
  });
  const conn = new SMTPConnection({
    connection: socket, host: '127.0.0.1', port, name: 'client.test', opportunisticTLS: true,
    tls: { rejectUnauthorized: false }, socketCloseTimeout: 0, logger: false,
  });
  await new Promise<void>((resolve, reject) => conn.connect((error) => (error ? reject(error) : resolve())));
  const internals = internalsOf(conn);
  const secure = conn.secure;
  const tlsSocket = internals._socket;
  const upgrading = internals.upgrading;
  conn.close(); // before the server's close, which waits for its connections
  assert.equal(secure, true);
  assert.ok(tlsSocket instanceof TLSSocket);
  assert.notEqual(tlsSocket, socket);
  assert.equal(upgrading, false);
});

test('a greeting other than 220 and a refused HELO come back with their reply and the command', async (t) => {
  const greeting = await opened(t, { greeting: '554 go away' });
  assert.equal(greeting.connected?.code, 'EPROTOCOL');
  assert.match(greeting.connected?.message ?? '', /greeting/i);
  assert.equal(greeting.connected?.response, '554 go away');
  const helo = await opened(t, { replies: { EHLO: '502 no', HELO: '550 bad name' } });
  assert.equal(helo.connected?.command, 'HELO');
  assert.equal(helo.connected?.response, '550 bad name');
});
