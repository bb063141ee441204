// control/ipv6 against two scripted servers on one port, 127.0.0.1 and ::1, both the addresses
// of one relay name served by dnsmasq: which one is tried first, and that an `*-only` setting
// never connects to the other family, deferring when nothing of its own family is left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startScriptServer, type ScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer, type DnsRecords } from '../helpers/dnsmasq.ts';
import { Homes, qmailRemote } from '../helpers/qmail-remote-rig.ts';
import { withFamilies, parseFamilyPolicy } from '../../src/delivery/family.ts';
import type { Address } from '../../src/delivery/route.ts';

const homes = new Homes('qrd-family-');
let v4: ScriptServer;
let v6: ScriptServer;

before(async () => {
  v4 = await startScriptServer({}, '127.0.0.1');
  v6 = await startScriptServer({}, '::1', v4.port);
});

after(async () => {
  await v4?.close();
  await v6?.close();
});

async function deliver(records: DnsRecords, ipv6?: string): Promise<{ report: string; v4: number; v6: number }> {
  const before4 = v4.sessions.length;
  const before6 = v6.sessions.length;
  const dns: DnsServer = await startDns(records);
  try {
    const run = await qmailRemote({
      home: homes.home({ smtproutes: `example.net:relay.example.test:${v4.port}\n`, ...(ipv6 !== undefined ? { ipv6 } : {}) }),
      args: ['example.net', 'alice@example.com', 'bob@example.net'],
      dns: dns.server,
    });
    await v4.idle();
    await v6.idle();
    assert.equal(run.stderr, '');
    return { report: run.stdout, v4: v4.sessions.length - before4, v6: v6.sessions.length - before6 };
  } finally {
    await dns.stop();
  }
}

const BOTH: DnsRecords = { a: [{ name: 'relay.example.test', ip: '127.0.0.1' }], aaaa: [{ name: 'relay.example.test', ip: '::1' }] };

test('without control/ipv6 (or prefer-ipv4) IPv4 first; prefer-ipv6 IPv6 first', async () => {
  assert.deepEqual(await deliver(BOTH), { report: 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0', v4: 1, v6: 0 });
  assert.equal((await deliver(BOTH, 'prefer-ipv4\n')).v4, 1);
  const six = await deliver(BOTH, 'prefer-ipv6\n');
  assert.deepEqual(six, { report: 'r\0K::1 accepted message.\nRemote host said: 250 queued\n\0', v4: 0, v6: 1 });
});

test('ipv4-only and ipv6-only never connect to the other family; nothing of theirs left defers', async () => {
  assert.deepEqual((await deliver(BOTH, 'ipv4-only\n')), { report: 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0', v4: 1, v6: 0 });
  assert.deepEqual((await deliver(BOTH, 'ipv6-only\n')), { report: 'r\0K::1 accepted message.\nRemote host said: 250 queued\n\0', v4: 0, v6: 1 });
  const onlyV6 = await deliver({ aaaa: BOTH.aaaa ?? [] }, 'ipv4-only\n');
  assert.deepEqual(onlyV6, { report: 'ZSorry, that host has no address of the family I may use (control/ipv6, control/outgoingip). (#4.4.1)\n\0', v4: 0, v6: 0 });
  const onlyV4 = await deliver({ a: BOTH.a ?? [] }, 'ipv6-only\n');
  assert.equal(onlyV4.report[0], 'Z');
  assert.equal(onlyV4.v4, 0);
});

test('an unknown control/ipv6 value defers every delivery: a control file error, never a guess', async () => {
  const wrong = await deliver(BOTH, 'ipv6-please\n');
  assert.deepEqual(wrong, { report: 'ZUnable to read control files. (#4.3.0)\n\0', v4: 0, v6: 0 });
  assert.equal(parseFamilyPolicy('IPv4-Only').ok, true, 'case does not matter');
});

test('prefer-ipv6 reorders within one MX name and preference, never across them', () => {
  const a = (ip: string, family: 4 | 6, name: string, pref: number): Address => ({ ip, family, name, pref });
  const addresses = [a('192.0.2.1', 4, 'mx1', 10), a('2001:db8::1', 6, 'mx1', 10), a('192.0.2.2', 4, 'mx2', 20), a('2001:db8::2', 6, 'mx2', 20)];
  const result = withFamilies({ host: 'x', port: 25, addresses, relayed: false }, 'prefer-ipv6');
  assert.ok(result.ok);
  assert.deepEqual(result.value.addresses.map((x) => x.ip), ['2001:db8::1', '192.0.2.1', '2001:db8::2', '192.0.2.2']);
});
