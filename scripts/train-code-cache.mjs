// The last step of the build: trains the code caches that bin/run-bundle.cjs runs the bundles
// from. Each program does once, on loopback, what it does for every message, and the cache
// written at its exit holds every function that run compiled:
// - qmail-remote signs a small message with DomainKeys and DKIM (a 2048-bit RSA key made for
//   the run) and delivers it to an SMTP server in this process;
// - qmail-dkverify verifies that message as it arrived (DomainKeys, DKIM, SPF, DMARC), its key
//   and policies served by a DNS server in this process, and hands it to a next program that
//   reads it.
// A run that fails leaves its bundles without a cache, which costs start-up time and nothing
// else: the build says so and goes on.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = (file) => join(root, 'dist', file);
const TRAINER = join(root, 'scripts', 'train-bundle.cjs');
const DOMAIN = 'example.com';
const CLIENT_IP = '192.0.2.1';
const RUN_TIMEOUT_MS = 60_000;

const MESSAGE = [
  'Received: (qmail 4242 invoked by uid 1000); 1 Dec 2026 10:00:00 -0000',
  'Date: Tue, 1 Dec 2026 10:00:00 +0000',
  `From: Alice <alice@${DOMAIN}>`,
  'To: bob@example.net',
  'Subject: training the code cache',
  `Message-ID: <training.4242@${DOMAIN}>`,
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  ...Array.from({ length: 20 }, (_, i) => `Line ${i}: the quick brown fox  jumps over\tthe lazy dog. `),
  '.a line that starts with a dot',
  '',
].join('\n');

/** An SMTP server that takes one message at a time and keeps each, unstuffed, with LF ends. */
async function startSink() {
  const messages = [];
  const server = createServer((socket) => {
    let buffered = '';
    let data = null;
    socket.setEncoding('latin1');
    socket.write('220 training ESMTP\r\n');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      buffered += chunk;
      for (let end; (end = buffered.indexOf('\r\n')) !== -1; ) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (data !== null) {
          if (line === '.') {
            messages.push(Buffer.from(data.join('\n') + '\n', 'latin1'));
            data = null;
            socket.write('250 ok\r\n');
          } else data.push(line.startsWith('.') ? line.slice(1) : line);
        } else if (/^DATA$/i.test(line)) {
          data = [];
          socket.write('354 go ahead\r\n');
        } else if (/^QUIT$/i.test(line)) socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, messages, close: () => server.close() };
}

/** A DNS server on UDP that answers TXT queries for `records` and NXDOMAIN for other names. */
async function startDns(records) {
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    const answer = answerFor(query, records);
    if (answer) socket.send(answer, peer.port, peer.address);
  });
  await new Promise((resolve, reject) => socket.once('error', reject).bind(0, '127.0.0.1', resolve));
  return { server: `127.0.0.1:${socket.address().port}`, close: () => socket.close() };
}

function answerFor(query, records) {
  if (query.length < 17) return null;
  const labels = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    labels.push(query.toString('latin1', at + 1, at + 1 + query[at]));
    at += 1 + query[at];
  }
  const questionEnd = at + 5;
  if (questionEnd > query.length) return null;
  const name = labels.join('.').toLowerCase();
  const type = query.readUInt16BE(at + 1);
  const texts = Object.hasOwn(records, name) ? (type === 16 ? [records[name]] : []) : null;
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8480 | (query.readUInt16BE(2) & 0x0100) | (texts === null ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(texts?.length ?? 0, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...(texts ?? []).map(txtRecord)]);
}

/** One TXT answer pointing at the question's name, the text cut in strings of 255 bytes. */
function txtRecord(text) {
  const strings = [];
  for (let at = 0; at < text.length; at += 255) {
    const piece = Buffer.from(text.slice(at, at + 255), 'latin1');
    strings.push(Buffer.from([piece.length]), piece);
  }
  const rdata = Buffer.concat(strings);
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc00c, 0);
  fixed.writeUInt16BE(16, 2);
  fixed.writeUInt16BE(1, 4);
  fixed.writeUInt32BE(60, 6);
  fixed.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([fixed, rdata]);
}

/**
 * Runs one training (scripts/train-bundle.cjs): `stdio` as the program gets it, a minimal
 * environment as qmail gives, with a qmail home of the run's own (a qmail host's is never
 * touched) and without NODE_OPTIONS (V8 takes a cache only under the flags it was made with). Resolves with its exit status and what it wrote to fd 1.
 */
function train(launcher, bundles, args, stdio, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TRAINER, join(root, 'bin', launcher), bundles.map(dist).join(','), ...args], {
      stdio,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      timeout: RUN_TIMEOUT_MS,
    });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk.toString('latin1')));
    child.stdio[5]?.resume();
    child.on('error', () => resolve({ status: null, output }));
    child.on('close', (status) => resolve({ status, output }));
  });
}

/** Takes away the caches of `bundles` after a run that did not do its job. */
function discard(bundles, why) {
  for (const bundle of bundles) rmSync(`${dist(bundle)}.v8cache`, { force: true });
  process.stderr.write(`train-code-cache: ${why}; ${bundles.join(', ')} will compile at every start\n`);
}

const REMOTE_BUNDLES = ['qmail-remote.cjs'];
const VERIFY_BUNDLES = ['qmail-dkverify-check.cjs', 'qmail-dkverify-mailauth.cjs'];

const dir = mkdtempSync(join(tmpdir(), 'train-code-cache-'));
let sink = null;
let dns = null;
try {
  for (const bundle of [...REMOTE_BUNDLES, ...VERIFY_BUNDLES]) {
    for (const file of [`${dist(bundle)}.v8cache`, `${dist(bundle)}.v8cache.new`]) rmSync(file, { force: true });
  }
  sink = await startSink();
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const control = join(dir, 'control');
  mkdirSync(join(dir, 'keys', DOMAIN), { recursive: true });
  mkdirSync(control);
  writeFileSync(join(dir, 'keys', DOMAIN, 'default'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(control, 'me'), 'mx.example.net\n');
  writeFileSync(join(control, 'smtproutes'), `:127.0.0.1:${sink.port}\n`);
  writeFileSync(join(control, 'dksign'), `${join(dir, 'keys')}/%/default\n`);
  writeFileSync(join(dir, 'message'), MESSAGE);

  const message = openSync(join(dir, 'message'), 'r');
  const remote = await train('qmail-remote', REMOTE_BUNDLES, ['example.net', `alice@${DOMAIN}`, 'bob@example.net'], [message, 'pipe', 'ignore'], { QMAILHOME: dir, CONTROLDIR: control });
  closeSync(message);
  const signed = sink.messages[0];
  if (remote.status !== 0 || !/^r\0K/.test(remote.output) || signed === undefined) {
    discard([...REMOTE_BUNDLES, ...VERIFY_BUNDLES], 'qmail-remote did not deliver the training message');
  } else {
    const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    dns = await startDns({
      [`default._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${spki}`,
      [DOMAIN]: `v=spf1 ip4:${CLIENT_IP} -all`,
      [`_dmarc.${DOMAIN}`]: 'v=DMARC1; p=reject',
    });
    writeFileSync(join(dir, 'received'), signed);
    writeFileSync(join(dir, 'envelope'), `Falice@${DOMAIN}\0Tbob@example.net\0\0`);
    writeFileSync(join(dir, 'queue'), `#!/bin/sh\ncat >'${join(dir, 'queued')}'; cat <&1 >/dev/null; exit 0\n`);
    chmodSync(join(dir, 'queue'), 0o755);
    const received = openSync(join(dir, 'received'), 'r');
    const envelope = openSync(join(dir, 'envelope'), 'r');
    // The launcher bin/qmail-dkverify runs; its watchdog's pipe (fd 5) is only read here.
    const verify = await train('qmail-dkverify.cjs', VERIFY_BUNDLES, ['--watchdog-fd=5'], [received, envelope, 'ignore', 'ignore', 'ignore', 'pipe'], {
      CONTROLDIR: control,
      QMAILHOME: dir,
      DKQUEUE: join(dir, 'queue'),
      DKVERIFY: '',
      DKVERIFY_DNS: dns.server,
      TCPREMOTEIP: CLIENT_IP,
    });
    closeSync(received);
    closeSync(envelope);
    // The run must have taken the path of a message that passes every check, the common one.
    const results = verify.status === 0 ? readFileSync(join(dir, 'queued'), 'latin1').split('\n\n')[0] : '';
    const passed = ['domainkeys', 'dkim', 'spf', 'dmarc'].every((check) => new RegExp(`\\b${check}=pass\\b`).test(results));
    if (!passed) discard(VERIFY_BUNDLES, `qmail-dkverify (exit ${verify.status}) did not pass the training message`);
  }
} catch (error) {
  // No loopback to train on, say: the bundles compile at every start.
  discard([...REMOTE_BUNDLES, ...VERIFY_BUNDLES], `no training (${error.message})`);
} finally {
  sink?.close();
  dns?.close();
  rmSync(dir, { recursive: true, force: true });
}
