// The source address: control/outgoingip, control/domainbindings (most specific sender domain
// wins) and control/helohostbyip, against a scripted server that records where each connection
// came from. An address this host does not have, or one of the wrong family, defers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startScriptServer, type ScriptServer } from '../helpers/script-server.ts';
import { Homes, qmailRemote } from '../helpers/qmail-remote-rig.ts';

const homes = new Homes('qrd-bind-');
let server: ScriptServer;

before(async () => {
  server = await startScriptServer({});
});

after(async () => {
  await server?.close();
});

async function deliver(files: Record<string, string>, sender = 'alice@example.com', relay = '127.0.0.1') {
  const before = server.sessions.length;
  const run = await qmailRemote({
    home: homes.home({ smtproutes: `:${relay}:${server.port}\n`, ...files }),
    args: ['example.net', sender, 'bob@example.net'],
  });
  await server.idle();
  assert.equal(run.stderr, '');
  const session = server.sessions[before];
  return { report: run.stdout, from: session?.remoteAddress ?? null, ehlo: session?.commands[0] ?? null };
}

test('outgoingip binds every connection; without it the system chooses', async () => {
  assert.deepEqual(await deliver({ outgoingip: '127.0.0.2\n' }), {
    report: 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0', from: '127.0.0.2', ehlo: 'EHLO mail.example.com',
  });
  assert.equal((await deliver({})).from, '127.0.0.1');
  assert.equal((await deliver({ outgoingip: '0.0.0.0\n' })).from, '127.0.0.1', 'the outgoingip patch\'s "any address": no binding');
});

test('domainbindings: the sender domain or its nearest parent wins over outgoingip; a bounce takes outgoingip', async () => {
  const files = { outgoingip: '127.0.0.2\n', domainbindings: 'example.com:127.0.0.3\nshop.example.com:127.0.0.4\n' };
  assert.equal((await deliver(files, 'alice@mail.example.com')).from, '127.0.0.3');
  assert.equal((await deliver(files, 'orders@shop.example.com')).from, '127.0.0.4');
  assert.equal((await deliver(files, 'someone@other.test')).from, '127.0.0.2');
  assert.equal((await deliver(files, '')).from, '127.0.0.2');
});

test('helohostbyip names the EHLO of the bound address', async () => {
  const bound = await deliver({ domainbindings: 'example.com:127.0.0.3\n', helohostbyip: '127.0.0.2:out2.example.com\n127.0.0.3:out3.example.com\n' });
  assert.equal(bound.from, '127.0.0.3');
  assert.equal(bound.ehlo, 'EHLO out3.example.com');
});

test('an address this host lacks, one of the other family, or a line that is not one: Z, no connection', async () => {
  const lacking = await deliver({ outgoingip: '192.0.2.77\n' });
  assert.equal(lacking.report, 'ZUnable to use the outgoing address control/outgoingip or control/domainbindings names. (#4.4.0)\n\0');
  assert.equal(lacking.from, null);
  const otherFamily = await deliver({ outgoingip: '::1\n' });
  assert.equal(otherFamily.report, 'ZSorry, that host has no address of the family I may use (control/ipv6, control/outgoingip). (#4.4.1)\n\0');
  assert.equal(otherFamily.from, null);
  const malformed = await deliver({ domainbindings: 'example.com 127.0.0.3\n' });
  assert.equal(malformed.report, 'ZUnable to read control files. (#4.3.0)\n\0');
  assert.equal((await deliver({ helohostbyip: 'nonsense\n', outgoingip: '127.0.0.2\n' })).report, 'ZUnable to read control files. (#4.3.0)\n\0');
});
