// bin/qmail-remote end to end, as qmail-rspawn runs it: fd 0 is the message file, fd 1 the
// report pipe, and fd 2 must stay empty (under qmail it is the same pipe). Each case asserts
// the exact report bytes, NULs included, an empty stderr and exit status 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runNode, type Run } from '../helpers/run.ts';
import { freePort } from '../helpers/ports.ts';
import { mkdtempSync, mkdirSync, writeFileSync, openSync, closeSync, copyFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Homes, qmailRemote as runQmailRemote } from '../helpers/qmail-remote-rig.ts';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { startScriptServer, type Script } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/verifiers.ts';
import { writeBigMessage } from '../helpers/big-message.ts';
import { makeTestCa } from '../helpers/ca.ts';
import { SMTPServer } from 'smtp-server';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const RSA_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));
const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const BOUNCE = fileURLToPath(new URL('../fixtures/bounce.eml', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'qrd-e2e-'));
const keys = join(work, 'keys');
let dns: DnsServer;

before(async () => {
  mkdirSync(join(keys, 'example.com'), { recursive: true });
  copyFileSync(RSA_KEY, join(keys, 'example.com', 'default'));
  const spki = createPublicKey(createPrivateKey(readFileSync(RSA_KEY))).export({ type: 'spki', format: 'der' });
  dns = await startDns({
    txt: [{ name: 'default._domainkey.example.com', text: `v=DKIM1; k=rsa; p=${spki.toString('base64')}` }],
    mx: [{ name: 'mx.test', host: 'mail.mx.test', pref: 10 }],
    a: [{ name: 'mail.mx.test', ip: '127.0.0.2' }],
  });
});

after(async () => {
  await dns?.stop();
  rmSync(work, { recursive: true, force: true });
});

const homes = new Homes('qrd-e2e-homes-');
/** The control directory of a new qmail home (test/helpers/qmail-remote-rig.ts); `files` overrides or adds files. */
function control(files: Record<string, string>): string {
  return join(homes.home({ dksign: `${keys}/%/default\n`, ...files }), 'control');
}

/** bin/qmail-remote through the shared rig, with this control directory and the test DNS server. */
function qmailRemote(args: string[], controlDir: string, message = SIMPLE, env: Record<string, string> = {}): Promise<Run> {
  return runQmailRemote({ home: dirname(controlDir), args, message, dns: dns.server, env: { CONTROLDIR: controlDir, ...env } });
}

/** Runs qmail-remote against a scripted server routed through smtproutes. */
async function against(script: Script, recips = ['bob@example.net'], sender = 'alice@example.com', message = SIMPLE) {
  const server = await startScriptServer(script);
  try {
    const run = await qmailRemote(['example.net', sender, ...recips], control({ smtproutes: `:127.0.0.1:${server.port}\n` }), message);
    await server.idle();
    return { run, server };
  } finally {
    await server.close();
  }
}

function expectReport(run: Run, report: string): void {
  assert.equal(run.stdout, report);
  assert.equal(run.stderr, '', 'nothing on fd 2');
  assert.equal(run.status, 0);
}

const IP = '127.0.0.1';

test('accepted: r, then K with the final reply; what arrived verifies under Mail::DKIM and dkimpy', async () => {
  const { run, server } = await against({ replies: { '.': '250 2.0.0 Ok: queued as 42' } });
  expectReport(run, `r\0K${IP} accepted message.\nRemote host said: 250 2.0.0 Ok: queued as 42\n\0`);
  const message = server.sessions[0]?.messages[0];
  assert.ok(message);
  const perl = await verifyWithMailDkim(message, dns.server);
  const py = await verifyWithDkimpy(message, dns.server);
  assert.deepEqual(perl.signatures.map((s) => [s.type, s.result]), [['dkim', 'pass'], ['dk', 'pass']]);
  assert.deepEqual(py.signatures.map((s) => [s.type, s.result]), [['dkim', 'pass']]);
  const original = readFileSync(SIMPLE, 'latin1').replace(/\n/g, '\r\n');
  assert.ok(message.toString('latin1').endsWith(original), 'the signature fields, then the queue file as it is, in CRLF');
});

test('with QMAILREMOTE_LOG, one line per delivery with d= and s=, and nothing of the key', async () => {
  const server = await startScriptServer({});
  try {
    const log = join(work, 'delivery.log');
    const run = await qmailRemote(['example.net', 'alice@example.com', 'bob@example.net'],
      control({ smtproutes: `:127.0.0.1:${server.port}\n` }), SIMPLE, { QMAILREMOTE_LOG: log });
    expectReport(run, `r\0K${IP} accepted message.\nRemote host said: 250 queued\n\0`);
    const line = readFileSync(log, 'utf8');
    assert.match(line, /host=127\.0\.0\.1 ip=127\.0\.0\.1 sender=<alice@example\.com> recips=<bob@example\.net>/);
    assert.match(line, /sig=\[dkim d=example\.com s=default a=rsa-sha256\] sig=\[domainkeys d=example\.com s=default a=rsa-sha1\]/);
    assert.match(line, /result=K ms=\d+ /);
    assert.doesNotMatch(line, /PRIVATE|MII/);
  } finally {
    await server.close();
  }
});

test('recipients 250/550/451 give r, h, s in argv order, and the message still goes', async () => {
  const { run } = await against(
    { replies: { RCPT: ['250 ok', '550 5.1.1 no such user', '451 4.3.0 try later'], '.': '250 done' } },
    ['a@example.net', 'b@example.net', 'c@example.net'],
  );
  expectReport(
    run,
    'r\0' +
      `h${IP} does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\0` +
      `s${IP} does not like recipient.\nRemote host said: 451 4.3.0 try later\n\0` +
      `K${IP} accepted message.\nRemote host said: 250 done\n\0`,
  );
});

test('every recipient rejected: Giving up', async () => {
  const { run, server } = await against({ replies: { RCPT: '550 nope' } });
  expectReport(run, `h${IP} does not like recipient.\nRemote host said: 550 nope\n\0DGiving up on ${IP}.\n\0`);
  assert.ok(!server.sessions[0]?.commands.includes('DATA'));
});

const stages: Array<[string, Script, string]> = [
  ['MAIL 5xx', { replies: { MAIL: '553 sender rejected' } }, `DConnected to ${IP} but sender was rejected.\nRemote host said: 553 sender rejected\n\0`],
  ['MAIL 4xx', { replies: { MAIL: '451 later' } }, `ZConnected to ${IP} but sender was rejected.\nRemote host said: 451 later\n\0`],
  ['DATA 5xx', { replies: { DATA: '554 no data' } }, `r\0D${IP} failed on DATA command.\nRemote host said: 554 no data\n\0`],
  ['DATA 4xx', { replies: { DATA: '451 no data now' } }, `r\0Z${IP} failed on DATA command.\nRemote host said: 451 no data now\n\0`],
  ['final dot 5xx', { replies: { '.': '554 5.7.1 spam' } }, `r\0D${IP} failed after I sent the message.\nRemote host said: 554 5.7.1 spam\n\0`],
  ['final dot 4xx', { replies: { '.': '452 full' } }, `r\0Z${IP} failed after I sent the message.\nRemote host said: 452 full\n\0`],
  ['greeting 554', { greeting: '554 go away' }, `ZConnected to ${IP} but greeting failed.\nRemote host said: 554 go away\n\0`],
  ['multi-line final reply', { replies: { '.': '250-first line\r\n250-second\r\n250 last' } },
    `r\0K${IP} accepted message.\nRemote host said: 250-first line\n250-second\n250 last\n\0`],
  ['NUL in a reply', { replies: { MAIL: Buffer.from('550 bad\0byte\r\n', 'latin1') } },
    `DConnected to ${IP} but sender was rejected.\nRemote host said: 550 bad?byte\n\0`],
  ['drop after the final dot', { replies: { '.': { close: true } } },
    `r\0ZConnected to ${IP} but connection died. Possible duplicate! (#4.4.2)\n\0`],
];

for (const [name, script, report] of stages) {
  test(name, async () => {
    const { run } = await against(script);
    expectReport(run, report);
  });
}

test('a drop in the middle of a large body: connection died, without "Possible duplicate!"', async () => {
  const big = await writeBigMessage(8 << 20);
  try {
    const { run } = await against({ dropInBody: true }, ['bob@example.net'], 'alice@example.com', big.path);
    expectReport(run, `r\0ZConnected to ${IP} but connection died. (#4.4.2)\n\0`);
  } finally {
    await big.remove();
  }
});

test('STARTTLS offered but the handshake fails: delivered by one plaintext retry', async () => {
  const { run, server } = await against({
    replies: { EHLO: '250-script.test\r\n250 STARTTLS', STARTTLS: { reply: '220 go ahead', answerNextWith: '500 not TLS\r\n' } },
  });
  expectReport(run, `r\0K${IP} accepted message.\nRemote host said: 250 queued\n\0`);
  assert.equal(server.sessions.length, 2);
  assert.ok(!server.sessions[1]?.commands.includes('STARTTLS'));
});

test('SMTP AUTH to a smarthost named in smtproutes, after STARTTLS whose certificate verifies', async (t) => {
  const auths: string[] = [];
  // The relay is written as an address: its certificate must name that address, from a CA
  // the system store (here SSL_CERT_FILE) trusts. test/delivery/transport-security.test.ts has the rest.
  const ca = makeTestCa();
  t.after(() => ca.cleanup());
  const smarthost = new SMTPServer({
    ...ca.issue({ ip: ['127.0.0.1'] }), logger: false, authMethods: ['PLAIN', 'LOGIN'],
    onAuth(auth, _session, callback) {
      auths.push(`${auth.method} ${auth.username ?? ''} ${auth.password ?? ''}`);
      callback(null, { user: auth.username });
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback());
    },
  });
  await new Promise<void>((resolve) => smarthost.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => smarthost.close(() => resolve())));
  const { port } = smarthost.server.address() as { port: number };
  const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'],
    control({ smtproutes: `:127.0.0.1:${port} relayuser pass word\n` }), SIMPLE, { SSL_CERT_FILE: ca.certFile, SSL_CERT_DIR: '/nonexistent' });
  expectReport(run, `r\0K${IP} accepted message.\nRemote host said: 250 OK: message queued\n\0`);
  assert.deepEqual(auths, ['PLAIN relayuser pass word']);
});

test('a silent server and timeoutremote 1: connection died, deferred', async () => {
  const server = await startScriptServer({ greeting: {} });
  try {
    const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'],
      control({ smtproutes: `:127.0.0.1:${server.port}\n`, timeoutremote: '1\n' }));
    expectReport(run, `ZConnected to ${IP} but connection died. (#4.4.2)\n\0`);
  } finally {
    await server.close();
  }
});

test('connection refused: no SMTP connection, deferred', async () => {
  const port = await freePort();
  const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'], control({ smtproutes: `:127.0.0.1:${port}\n` }));
  expectReport(run, "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0");
});

test('a bounce goes as MAIL FROM:<> and is signed by its From: domain', async () => {
  const { run, server } = await against({}, ['alice@example.net'], '', BOUNCE);
  assert.match(run.stdout, /^r\0K/);
  const session = server.sessions[0];
  assert.ok(session?.commands.includes('MAIL FROM:<>'), session?.commands.join(' | '));
  const perl = await verifyWithMailDkim(session?.messages[0] as Buffer, dns.server);
  assert.deepEqual(perl.signatures.map((s) => [s.type, s.domain, s.result]), [['dkim', 'example.com', 'pass'], ['dk', 'example.com', 'pass']]);
});

test('a double bounce goes as MAIL FROM:<#@[]>', async () => {
  const { run, server } = await against({}, ['postmaster@example.net'], '#@[]', BOUNCE);
  assert.match(run.stdout, /^r\0K/);
  assert.ok(server.sessions[0]?.commands.includes('MAIL FROM:<#@[]>'));
});

test('an unreadable key defers the message before any connection is made', async () => {
  const server = await startScriptServer({});
  try {
    const badKeys = join(work, 'badkeys', 'example.com');
    mkdirSync(badKeys, { recursive: true });
    writeFileSync(join(badKeys, 'default'), 'not a key\n');
    const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'],
      control({ smtproutes: `:127.0.0.1:${server.port}\n`, dksign: `${join(work, 'badkeys')}/%/default\n` }));
    expectReport(run, 'ZUnable to read DKIM/DomainKeys private key. (#4.3.0)\n\0');
    assert.equal(server.sessions.length, 0, 'no connection was made');
  } finally {
    await server.close();
  }
});

test('no key for the domain: delivered unsigned', async () => {
  const server = await startScriptServer({});
  try {
    const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'],
      control({ smtproutes: `:127.0.0.1:${server.port}\n`, dksign: `${join(work, 'nokeys')}/%/default\n` }));
    assert.match(run.stdout, /^r\0K/);
    await server.idle();
    assert.doesNotMatch(server.sessions[0]?.messages[0]?.toString('latin1') ?? '', /Signature:/);
  } finally {
    await server.close();
  }
});

test('an unreadable control file defers; a missing me and helohost defers', async () => {
  const dir = control({});
  mkdirSync(join(dir, 'smtproutes'));
  expectReport(await qmailRemote(['example.net', 'a@example.com', 'b@example.net'], dir), 'ZUnable to read control files. (#4.3.0)\n\0');
  const bare = join(work, 'bare-control');
  mkdirSync(bare);
  expectReport(await qmailRemote(['example.net', 'a@example.com', 'b@example.net'], bare), 'ZUnable to read control files. (#4.3.0)\n\0');
});

test('a message that cannot be read defers: fd 0 a directory', async () => {
  const run = await qmailRemote(['example.net', 'a@example.com', 'b@example.net'], control({}), work);
  expectReport(run, 'ZUnable to read message. (#4.3.0)\n\0');
});

test('a read error on fd 0 (a file open for writing only) defers', async () => {
  const path = join(work, 'write-only.eml');
  writeFileSync(path, readFileSync(SIMPLE));
  const fd = openSync(path, 'a');
  try {
    const run = await runNode(QMAIL_REMOTE, ['example.net', 'a@example.com', 'b@example.net'], {
      stdin: fd,
      env: { PATH: process.env.PATH ?? '', CONTROLDIR: control({}) },
    });
    expectReport(run, 'ZUnable to read message. (#4.3.0)\n\0');
  } finally {
    closeSync(fd);
  }
});

test('a message on a pipe, as when run by hand, is spooled and delivered the same', async () => {
  const server = await startScriptServer({});
  try {
    const run = await runNode(QMAIL_REMOTE, ['example.net', 'alice@example.com', 'bob@example.net'], {
      stdin: readFileSync(SIMPLE),
      env: { PATH: process.env.PATH ?? '', CONTROLDIR: control({ smtproutes: `:127.0.0.1:${server.port}\n` }) },
    });
    expectReport(run, `r\0K${IP} accepted message.\nRemote host said: 250 queued\n\0`);
    await server.idle();
    const original = readFileSync(SIMPLE, 'latin1').replace(/\n/g, '\r\n');
    assert.ok(server.sessions[0]?.messages[0]?.toString('latin1').endsWith(original));
  } finally {
    await server.close();
  }
});

test('too few arguments is qmail usage report', async () => {
  expectReport(await qmailRemote(['example.net', 'a@example.com'], control({})), 'DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0');
});

test('MX from a real DNS server, the port from smtproutes', async () => {
  const server = await startScriptServer({}, '127.0.0.2');
  try {
    const run = await qmailRemote(['mx.test', 'a@example.com', 'b@mx.test'], control({ smtproutes: `mx.test::${server.port}\n` }));
    expectReport(run, 'r\0K127.0.0.2 accepted message.\nRemote host said: 250 queued\n\0');
  } finally {
    await server.close();
  }
});

test('a host that does not exist bounces', async () => {
  const run = await qmailRemote(['nothere.test', 'a@example.com', 'b@nothere.test'], control({}));
  expectReport(run, "DSorry, I couldn't find any host named nothere.test. (#5.1.2)\n\0");
});

