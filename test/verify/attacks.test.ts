// The attack classes of docs/verify.md ("What a stranger can make it do"), each through the
// real bin/qmail-dkverify as qmail-smtpd runs it. Each asserts an outcome, never a time: the
// message is queued whole, and the checks ended on their own (no "deadline passed" in the
// result) with a 60-second deadline, so the bound is in the work, not in the timer. The one
// test of the timer itself has the checks wait for a DNS server that never answers; the
// watchdog that ends checks too busy to see the timer has tests of its own (watchdog.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { addedField, asReceived, dkverify, type Run } from './harness.ts';
import { MAX_LOOKUPS } from '../../src/verify/bounds.ts';

let dns: DnsServer;
before(async () => {
  dns = await startDns({});
});
after(async () => {
  await dns?.stop();
});

const DEADLINE = { DKVERIFY: '', DKVERIFY_TIMEOUT: '60' };

function probe(message: Buffer, server = dns.server): Promise<Run> {
  return dkverify(message, server, { env: DEADLINE });
}

function assertWhole(result: Run, message: Buffer): string {
  assert.equal(result.status, 0, result.stderr);
  assert.ok(result.queued?.message.subarray(-message.length).equals(message), 'the message is queued whole below the added field');
  const field = addedField(result);
  assert.match(field, /^Authentication-Results: mx\.example\.net;/);
  assert.doesNotMatch(field, /deadline passed/, 'the checks ended by themselves');
  return field;
}

const received = (head: string, body = 'body\n'): Buffer => asReceived(`${head}From: user@example.com\nSubject: s\n\n${body}`);

test('the deadline ends the wait of checks whose DNS never answers: every result temperror, the message whole', async () => {
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
  try {
    const signatures = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\n'
      + 'DomainKey-Signature: a=rsa-sha1; c=nofws; d=example.com; s=s; h=from; b=AAAA\n';
    const message = received(signatures);
    const result = await dkverify(message, `127.0.0.1:${silent.address().port}`, { env: { DKVERIFY: '', DKVERIFY_TIMEOUT: '1', TCPREMOTEIP: '192.0.2.1' } });
    assert.equal(result.status, 0);
    assert.ok(result.queued?.message.subarray(-message.length).equals(message));
    assert.match(addedField(result), /dkim=temperror \(verification deadline passed\).*domainkeys=temperror \(verification deadline passed\).*spf=temperror.*dmarc=temperror.*arc=temperror/);
  } finally {
    silent.close();
  }
});

test('40,000 folded continuation lines in one field: not given to the parsers, permerror', async () => {
  const message = received(`X-Folded: a\n${' b\n'.repeat(40000)}`);
  assert.match(assertWhole(await probe(message), message), /arc=permerror \(a header field of more than 1000 lines\)/);
});

test('a DKIM h= of 200,000 names: that signature is permerror, unread by mailauth', async () => {
  const names = Array.from({ length: 200000 }, () => 'x').join(':');
  const message = received(`DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from:${names}; bh=AAAA; b=AAAA\n`);
  assert.match(assertWhole(await probe(message), message), /dkim=permerror \(h= lists more than 256 fields\)/);
});

test('a DomainKeys h= of 200,000 names', async () => {
  const names = Array.from({ length: 200000 }, () => 'x').join(':');
  const message = received(`DomainKey-Signature: a=rsa-sha1; c=nofws; d=example.com; s=s; h=from:${names}; b=AAAA\n`);
  assert.match(assertWhole(await probe(message), message), /domainkeys=temperror \(key lookup failed\) header\.d=example\.com/);
});

test('a long run of spaces inside a tag value, in both kinds of signature', async () => {
  const spaces = ' '.repeat(200000);
  const message = received(
    `DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=AA${spaces}AA; b=AAAA\n` +
    `DomainKey-Signature: a=rsa-sha1; c=nofws; d=example.com; s=s; h=from; b=AA${spaces}AA\n`);
  assert.match(assertWhole(await probe(message), message), /dkim=permerror \(more than 256 spaces in a row\)/);
});

test('a long From: display name, quoted and not', async () => {
  for (const name of [`"${'a'.repeat(200000)}"`, 'a '.repeat(100000), `"<ceo@bank.test>${' '.repeat(100000)}"`]) {
    const message = asReceived(`DomainKey-Signature: a=rsa-sha1; c=nofws; d=example.com; s=s; b=AAAA\nFrom: ${name} <user@example.com>\nSubject: s\n\nbody\n`);
    assertWhole(await probe(message), message);
  }
});

test('300 signatures with distinct l= over 2 MB: ten are checked, so ten body hashes at most', async () => {
  const signatures = Array.from({ length: 300 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; l=${i * 7000}; bh=AAAA; b=AAAA\n`).join('');
  const message = received(signatures, `${'x'.repeat(76)}\n`.repeat(27000));
  const field = assertWhole(await probe(message), message);
  assert.equal((field.match(/dkim=(?!none)/g) ?? []).length, 10);
  assert.match(field, /dkim=none \(290 more signatures not checked\)/);
});

test('60,000 minimal signatures: past the bound on fields, not parsed as signatures at all', async () => {
  const message = received('DKIM-Signature: a=x\n'.repeat(60000));
  assert.match(assertWhole(await probe(message), message), /more than 5000 header fields/);
});

test(`1,000 signatures with distinct selectors: at most ${MAX_LOOKUPS} DNS queries for the message`, async () => {
  const counter = await countingDns();
  try {
    const signatures = Array.from({ length: 1000 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=victim.example; s=s${i}; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\n`).join('');
    const message = received(signatures, '');
    assertWhole(await probe(message, counter.server), message);
    assert.ok(counter.queries().length <= MAX_LOOKUPS, `${counter.queries().length} queries`);
    assert.ok(counter.queries().length >= 1, 'the counter saw the lookups');
  } finally {
    counter.close();
  }
});

/** A DNS server on loopback that answers every query NXDOMAIN and remembers each name asked. */
async function countingDns(): Promise<{ server: string; queries: () => string[]; close: () => void }> {
  const socket: Socket = createSocket('udp4');
  const names: string[] = [];
  socket.on('message', (query, peer) => {
    names.push(questionName(query));
    const answer = Buffer.from(query);
    answer[2] = 0x80 | ((query[2] ?? 0) & 0x01); // QR, RD kept
    answer[3] = 0x80 | 3; // RA, NXDOMAIN
    socket.send(answer, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { server: `127.0.0.1:${socket.address().port}`, queries: () => names, close: () => socket.close() };
}

function questionName(query: Buffer): string {
  const labels: string[] = [];
  for (let at = 12; at < query.length && query[at] !== 0; at += (query[at] ?? 0) + 1) {
    labels.push(query.subarray(at + 1, at + 1 + (query[at] ?? 0)).toString('latin1'));
  }
  return labels.join('.');
}
