// qmail's tcpto table: the bytes checked against qmail's format (tcpto.c: 16-byte records, the
// count at byte 4, the time little-endian at bytes 8-11) and its rules, in process with a
// clock of our own; then through bin/qmail-remote with two MX hosts, the first of which the
// table says timed out twice lately.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcptoTable } from '../../src/delivery/tcpto.ts';
import { startScriptServer, type ScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { policyHostIp } from '../helpers/policy-host.ts';
import { Homes, qmailRemote } from '../helpers/qmail-remote-rig.ts';

const T0 = 1_800_000_000;

const scratch: string[] = [];
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function home(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-tcpto-'));
  scratch.push(dir);
  mkdirSync(join(dir, 'queue', 'lock'), { recursive: true });
  writeFileSync(join(dir, 'queue', 'lock', 'tcpto'), Buffer.alloc(1024));
  writeFileSync(join(dir, 'queue', 'lock', 'tcpto6'), Buffer.alloc(2048));
  return dir;
}

const table = (dir: string, file = 'tcpto'): Buffer => readFileSync(join(dir, 'queue', 'lock', file));
const record = (dir: string, i: number): Buffer => table(dir).subarray(i * 16, i * 16 + 16);

test('a timeout is written as qmail writes it; a second counts only 120 s later; two skip the host for an hour or so', () => {
  const dir = home();
  let now = T0;
  const tcpto = tcptoTable(dir, () => now, 0);
  tcpto.record('192.0.2.7', true);
  assert.deepEqual([...record(dir, 0)], [192, 0, 2, 7, 1, 0, 0, 0, ...[...Buffer.from([0, 0, 0, 0])].map((_, i) => (T0 >>> (8 * i)) & 0xff), 0, 0, 0, 0]);
  now += 119;
  tcpto.record('192.0.2.7', true);
  assert.equal(record(dir, 0)[4], 1, 'within 120 s: not counted');
  assert.equal(tcpto.skip('192.0.2.7'), false, 'one timeout: still tried');
  now += 1;
  tcpto.record('192.0.2.7', true);
  assert.equal(record(dir, 0)[4], 2);
  assert.equal(record(dir, 0).readUInt32LE(8), T0 + 120);
  assert.equal(tcpto.skip('192.0.2.7'), true, 'two: skipped');
  now = T0 + 120 + (60 << 6) - 1;
  assert.equal(tcpto.skip('192.0.2.7'), true, 'pid 0: (60 + 0) × 64 s');
  now += 1;
  assert.equal(tcpto.skip('192.0.2.7'), false, 'then tried again');
  assert.equal(tcptoTable(dir, () => T0 + 120 + (60 << 6), 31).skip('192.0.2.7'), true, 'pid 31 waits (60 + 31) × 64 s');
  tcpto.record('192.0.2.7', false);
  assert.equal(record(dir, 0)[4], 0, 'a connection clears the count, as qmail-tcpok would');
  assert.equal(table(dir).subarray(16).every((b) => b === 0), true, 'nothing else written');
});

test('a new host takes the first free record, else the one whose time plus count × 1024 is oldest', () => {
  const dir = home();
  const full = Buffer.alloc(1024);
  for (let i = 0; i < 64; i++) {
    const r = full.subarray(i * 16);
    r.set([10, 0, 0, i]);
    r[4] = 1;
    r.writeUInt32LE(T0 + i * 10, 8);
  }
  full[5 * 16 + 4] = 0; // record 5 free
  writeFileSync(join(dir, 'queue', 'lock', 'tcpto'), full);
  tcptoTable(dir, () => T0 + 5000).record('198.51.100.1', true);
  assert.deepEqual([...record(dir, 5).subarray(0, 5)], [198, 51, 100, 1, 1]);
  // Now full: record 0 (T0 + 0 + 1024) is the oldest.
  tcptoTable(dir, () => T0 + 6000).record('198.51.100.2', true);
  assert.deepEqual([...record(dir, 0).subarray(0, 5)], [198, 51, 100, 2, 1]);
});

test('IPv6 hosts go in tcpto6: the family at byte 0, the address at 16-31; qmail\'s file is untouched', () => {
  const dir = home();
  tcptoTable(dir, () => T0).record('2001:db8::7', true);
  const r = table(dir, 'tcpto6').subarray(0, 32);
  assert.equal(r[0], 10);
  assert.equal(r[4], 1);
  assert.equal(r.toString('hex', 16), '20010db8000000000000000000000007');
  assert.ok(table(dir).every((b) => b === 0));
});

test('without the files or write access nothing is skipped or recorded, and nothing fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-tcpto-none-'));
  scratch.push(dir);
  const tcpto = tcptoTable(dir, () => T0);
  assert.doesNotThrow(() => tcpto.record('192.0.2.7', true));
  assert.equal(tcpto.skip('192.0.2.7'), false);
});

// ---------------------------------------------------------------------------------------------

const homes = new Homes('qrd-tcpto-e2e-');
const base = policyHostIp().replace(/\.1$/, '');
const DEAD = `${base}.21`;
const ALIVE = `${base}.22`;
let dead: ScriptServer;
let alive: ScriptServer;
let dns: DnsServer;

before(async () => {
  alive = await startScriptServer({}, ALIVE);
  dead = await startScriptServer({}, DEAD, alive.port);
  dns = await startDns({
    mx: [{ name: 'example.net', host: 'mx1.example.net', pref: 10 }, { name: 'example.net', host: 'mx2.example.net', pref: 20 }],
    a: [{ name: 'mx1.example.net', ip: DEAD }, { name: 'mx2.example.net', ip: ALIVE }],
  });
});

after(async () => {
  await dead?.close();
  await alive?.close();
  await dns?.stop();
});

/** A qmail home whose tcpto says DEAD timed out `count` times, the last just now. */
function homeWith(count: number): string {
  const dir = homes.home({ smtproutes: `example.net::${alive.port}\n` });
  mkdirSync(join(dir, 'queue', 'lock'), { recursive: true });
  const t = Buffer.alloc(1024);
  t.set(DEAD.split('.').map(Number));
  t[4] = count;
  t.writeUInt32LE(Math.floor(Date.now() / 1000) - 10, 8);
  writeFileSync(join(dir, 'queue', 'lock', 'tcpto'), t);
  return dir;
}

test('through qmail-remote: an MX that timed out twice is skipped and the next one delivers; one timeout is tried and cleared', async () => {
  const before = { dead: dead.sessions.length, alive: alive.sessions.length };
  const skipped = homeWith(2);
  const run = await qmailRemote({ home: skipped, args: ['example.net', 'alice@example.com', 'bob@example.net'], dns: dns.server });
  await alive.idle();
  assert.equal(run.stdout, `r\0K${ALIVE} accepted message.\nRemote host said: 250 queued\n\0`);
  assert.equal(dead.sessions.length, before.dead, 'the dead MX was not tried');
  assert.equal(table(skipped)[4], 2, 'and its record stays');

  const once = homeWith(1);
  const tried = await qmailRemote({ home: once, args: ['example.net', 'alice@example.com', 'bob@example.net'], dns: dns.server });
  await dead.idle();
  assert.equal(tried.stdout, `r\0K${DEAD} accepted message.\nRemote host said: 250 queued\n\0`);
  assert.equal(table(once)[4], 0, 'a connection made clears the count');
});

test('through qmail-remote: the only MX skipped by tcpto is Z, with no connection made', async () => {
  const before = dead.sessions.length;
  const dir = homeWith(2);
  const only = await startDns({ mx: [{ name: 'example.org', host: 'mx1.example.net', pref: 10 }], a: [{ name: 'mx1.example.net', ip: DEAD }] });
  try {
    writeFileSync(join(dir, 'control', 'smtproutes'), `example.org::${alive.port}\n`);
    const run = await qmailRemote({ home: dir, args: ['example.org', 'alice@example.com', 'bob@example.org'], dns: only.server });
    assert.equal(run.stdout, "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0");
    assert.equal(dead.sessions.length, before);
  } finally {
    await only.stop();
  }
});
