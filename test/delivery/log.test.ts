// The delivery log: one line per delivery to a file or over UDP syslog, never to the console,
// with what an administrator needs and no key material.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDelivery, logDelivery, logTarget, type DeliveryLog } from '../../src/delivery/log.ts';

const ENTRY: DeliveryLog = {
  host: 'example.net',
  ip: '192.0.2.7',
  sender: 'alice@example.com',
  recips: ['bob@example.net', 'evil\n@example.net'],
  signatures: ['dkim d=example.com s=default a=rsa-sha256', 'domainkeys d=example.com s=default a=rsa-sha1'],
  notes: [],
  result: 'K',
  report: '192.0.2.7 accepted message.\nRemote host said: 250 ok\n',
  ms: 12,
};

const scratches: string[] = [];
after(() => {
  for (const dir of scratches) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-log-'));
  scratches.push(dir);
  return dir;
}

test('the target comes from QMAILREMOTE_LOG, else control/dklog; off by default', () => {
  const dir = scratch();
  assert.equal(logTarget(dir, {}), null);
  writeFileSync(join(dir, 'dklog'), '/var/log/qmail/dkim.log\n');
  assert.deepEqual(logTarget(dir, {}), { kind: 'file', path: '/var/log/qmail/dkim.log' });
  assert.deepEqual(logTarget(dir, { QMAILREMOTE_LOG: 'syslog' }), { kind: 'syslog', host: '127.0.0.1', port: 514 });
  assert.deepEqual(logTarget(dir, { QMAILREMOTE_LOG: 'syslog:127.0.0.2:5514' }), { kind: 'syslog', host: '127.0.0.2', port: 5514 });
  assert.equal(logTarget(dir, { QMAILREMOTE_LOG: 'off' }), null);
});

test('one line with host, ip, envelope, signatures, result and time; strangers cannot add lines', () => {
  const line = formatDelivery(ENTRY);
  assert.doesNotMatch(line, /\n/);
  assert.match(line, /host=example\.net ip=192\.0\.2\.7 sender=<alice@example\.com> recips=<bob@example\.net>,<evil\?@example\.net>/);
  assert.match(line, /sig=\[dkim d=example\.com s=default a=rsa-sha256\] sig=\[domainkeys d=example\.com s=default a=rsa-sha1\]/);
  assert.match(line, /result=K ms=12 report="192\.0\.2\.7 accepted message\.\/Remote host said: 250 ok\/"$/);
  assert.match(formatDelivery({ ...ENTRY, signatures: [], notes: ['no key for example.com'] }), /unsigned note=\[no key for example\.com\]/);
});

test('the TLS side in RFC 8460 terms: version, whether the certificate verified, the policy, the result', () => {
  const tls = { version: 'TLSv1.3', verified: false, policy: 'sts-enforce', result: 'certificate-expired' } as const;
  assert.match(formatDelivery({ ...ENTRY, notes: ['x'], tls }), / note=\[x\] tls=TLSv1\.3 cert=unverified policy=sts-enforce tls-result=certificate-expired result=K /);
  const plain = { version: null, verified: false, policy: 'none', result: 'starttls-not-supported' } as const;
  assert.match(formatDelivery({ ...ENTRY, tls: plain }), / tls=none cert=- policy=none tls-result=starttls-not-supported /);
  assert.doesNotMatch(formatDelivery(ENTRY), /tls=/, 'no session, no TLS fields');
});

test('to a file, through winston', async () => {
  const dir = scratch();
  mkdirSync(join(dir, 'sub'));
  const path = join(dir, 'sub', 'delivery.log');
  await logDelivery({ kind: 'file', path }, ENTRY);
  await logDelivery({ kind: 'file', path }, { ...ENTRY, result: 'Z' });
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0] ?? '', /^\S+ qmail-remote-dkim\[\d+\]: host=example\.net .* result=K /);
  assert.match(lines[1] ?? '', /result=Z/);
});

test('to syslog over UDP, facility mail', async () => {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const got = new Promise<string>((resolve) => socket.once('message', (msg) => resolve(msg.toString())));
  await logDelivery({ kind: 'syslog', host: '127.0.0.1', port: socket.address().port }, ENTRY);
  const datagram = await got;
  socket.close();
  assert.match(datagram, /^<22>qmail-remote-dkim\[\d+\]: host=example\.net /);
});

test('a log that cannot be written changes nothing and throws nothing', async () => {
  const dir = scratch();
  writeFileSync(join(dir, 'a-file'), 'before\n');
  await assert.doesNotReject(logDelivery({ kind: 'file', path: join(dir, 'a-file', 'y.log') }, ENTRY));
  assert.deepEqual(readdirSync(dir), ['a-file']);
  assert.equal(readFileSync(join(dir, 'a-file'), 'latin1'), 'before\n');
});

test('a FIFO, a device or a directory as the log is not written, and the call returns at once', async () => {
  const dir = scratch();
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // A reader that never reads: a writer's open would succeed, and a line written would wait
  // in the pipe, where the read below finds it.
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    for (const path of [fifo, '/dev/zero', '/dev/null', dir]) {
      await assert.doesNotReject(logDelivery({ kind: 'file', path }, ENTRY));
    }
    assert.equal(pending(reader), 0, 'nothing was written to the FIFO');
  } finally {
    closeSync(reader);
  }
  assert.deepEqual(readdirSync(dir), ['fifo'], 'nothing made in the directory');
  // With no reader at all, a blocking open would never return: this one returns.
  await assert.doesNotReject(logDelivery({ kind: 'file', path: fifo }, ENTRY));
});

/** The bytes waiting in a FIFO opened non-blocking: none reads as EOF (no writer) or EAGAIN. */
function pending(fd: number): number {
  try {
    return readSync(fd, Buffer.alloc(64 << 10));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    throw error;
  }
}

test('a log in a missing directory is dropped, and no directory is made', async () => {
  const dir = scratch();
  await logDelivery({ kind: 'file', path: join(dir, 'missing', 'sub', 'delivery.log') }, ENTRY);
  assert.equal(existsSync(join(dir, 'missing')), false);
});
