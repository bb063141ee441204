// The signing table (control/dkimkeys), oversigning and the nosign route (docs/signing.md):
// signatures made by our engine, checked by dkimpy (DKIM, ed25519 included), Mail::DKIM
// (DKIM and DomainKeys), OpenDKIM (its test mode), Exim (a simulated SMTP session) and rspamd
// (its DKIM module), all of which .ci/run installs; keys served by a real DNS server (OpenDKIM
// reads them from a file, Exim from a dnsmasq of its own).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bufferSource, normalisedMessage } from '../../src/mail/message.ts';
import { signMessage, type SignConfig } from '../../src/signing/sign.ts';
import { parseTable } from '../../src/signing/table.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeEd25519Key, makeRsaKey, type TestKey } from '../helpers/keys.ts';
import { OPENDKIM, verifyWithDkimpy, verifyWithMailDkim, verifyWithOpenDkim } from '../helpers/verifiers.ts';
import { startScriptServer } from '../helpers/script-server.ts';
import { runNode } from '../helpers/run.ts';
import { eximMissing, verifyWithExim } from '../helpers/exim.ts';
import { rspamdMissing, startRspamd, type Rspamd } from '../helpers/rspamd.ts';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const TIME = Math.floor(Date.now() / 1000);
const work = mkdtempSync(join(tmpdir(), 'qrd-table-'));
const KEYS: Record<string, TestKey> = {
  'example.com/rsa2026': makeRsaKey(),
  'example.com/ed2026': makeEd25519Key(),
  'example.org/default': makeRsaKey(),
  'operator.test/ops': makeRsaKey(),
  'example.net/default': makeRsaKey(),
};
let dns: DnsServer;
let rspamd: Rspamd | undefined;
const keyRecords = () =>
  Object.entries(KEYS).map(([path, key]) => {
    const [domain, selector] = path.split('/');
    return { name: `${selector}._domainkey.${domain}`, text: key.txt };
  });

before(async () => {
  for (const [path, key] of Object.entries(KEYS)) {
    mkdirSync(join(work, 'keys', path, '..'), { recursive: true });
    writeFileSync(join(work, 'keys', path), key.privateKeyPem, { mode: 0o600 });
  }
  dns = await startDns({ txt: keyRecords() });
  if (rspamdMissing === undefined) rspamd = await startRspamd({ txt: keyRecords() });
});

after(async () => {
  await rspamd?.stop();
  await dns?.stop();
  rmSync(work, { recursive: true, force: true });
});

const message = (from: string, extra = ''): Buffer =>
  Buffer.from(`From: ${from}\nTo: bob@example.net\nSubject: the table\nDate: Thu, 03 Dec 2026 06:00:00 +0000\nMessage-ID: <t@x>\n${extra}\nBody text.\n`);

function sign(text: Buffer, config: Partial<SignConfig>) {
  const result = signMessage(bufferSource(text), { templates: [], qmailHome: work, time: TIME, ...config });
  if (!result.ok) return result;
  return { ok: true as const, value: result.value, wire: Buffer.concat([result.value.prefix, normalisedMessage(bufferSource(text))]) };
}

const TABLE = parseTable([
  '# two signatures for example.com, DomainKeys off for example.org, example.net as the operator',
  `example.com:${work}/keys/example.com/rsa2026:x=604800,i=@example.com`,
  `example.com:${work}/keys/example.com/ed2026:ed25519-sha256`,
  `example.org:${work}/keys/%/default:dk=no`,
  `example.net:${work}/keys/%/ops:d=operator.test`,
  `nosign.test::nosign`,
  `broken.test:${work}/keys/%/default:x=soon`,
]);

const tableSign = (from: string) => sign(message(from), { table: TABLE });

const ADDED_FIELDS = ['To: eve@evil.test', 'Cc: eve@evil.test', 'Subject: urgent', 'Reply-To: eve@evil.test'];

/** The signed message with `field` put in above From:, as a spammer reusing it would. */
function withAdded(wire: Buffer, field: string): Buffer {
  const head = wire.indexOf('From: ');
  return Buffer.concat([wire.subarray(0, head), Buffer.from(`${field}\r\n`), wire.subarray(head)]);
}

test('oversigned: an added To, Cc, Subject or Reply-To makes dkimpy and Mail::DKIM fail the signature', async () => {
  const signed = sign(message('alice@example.net'), { templates: [`${work}/keys/%/default`] });
  assert.ok(signed.ok);
  assert.match(signed.wire.toString(), /h=from:subject:date:message-id:to:from:to:cc:subject:reply-to:date:\r\n\tmessage-id;/);
  assert.deepEqual((await verifyWithDkimpy(signed.wire, dns.server)).signatures.map((s) => s.result), ['pass']);
  const mailDkim = await verifyWithMailDkim(signed.wire, dns.server);
  assert.deepEqual(mailDkim.signatures.map((s) => [s.type, s.result]), [['dkim', 'pass'], ['dk', 'pass']]);
  const records = { 'default._domainkey.example.net': (KEYS['example.net/default'] as TestKey).txt };
  const openDkim = existsSync(OPENDKIM);
  if (openDkim) assert.match(await verifyWithOpenDkim(signed.wire, records), /verification \(s=default, d=example\.net, 2048-bit key\) succeeded/);
  for (const added of ADDED_FIELDS) {
    const tampered = withAdded(signed.wire, added);
    assert.deepEqual((await verifyWithDkimpy(tampered, dns.server)).signatures.map((s) => s.result), ['fail'], added);
    assert.equal((await verifyWithMailDkim(tampered, dns.server)).signatures.find((s) => s.type === 'dkim')?.result, 'fail', added);
    if (openDkim) assert.match(await verifyWithOpenDkim(tampered, records), /failed: signature verification failed/, added);
  }
});

test('oversigned, as Exim reads it: the signature passes, and fails with a To, Cc, Subject or Reply-To added', { skip: eximMissing ?? false }, async () => {
  const signed = sign(message('alice@example.net'), { templates: [`${work}/keys/%/default`] });
  assert.ok(signed.ok);
  const records = { txt: keyRecords() };
  assert.deepEqual((await verifyWithExim(signed.wire, records)).map((s) => [s.domain, s.selector, s.algorithm, s.status]), [
    ['example.net', 'default', 'rsa-sha256', 'pass'],
  ]);
  for (const added of ADDED_FIELDS) {
    const result = await verifyWithExim(withAdded(signed.wire, added), records);
    assert.deepEqual(result.map((s) => [s.status, s.reason]), [['fail', 'signature_incorrect']], added);
  }
});

test('oversigned, as rspamd reads it: R_DKIM_ALLOW, and R_DKIM_REJECT with a To, Cc, Subject or Reply-To added', { skip: rspamdMissing ?? false }, async () => {
  assert.ok(rspamd);
  const signed = sign(message('alice@example.net'), { templates: [`${work}/keys/%/default`] });
  assert.ok(signed.ok);
  assert.deepEqual(await rspamd.check(signed.wire), { R_DKIM_ALLOW: ['example.net:s=default'] });
  for (const added of ADDED_FIELDS) {
    assert.deepEqual(await rspamd.check(withAdded(signed.wire, added)), { R_DKIM_REJECT: ['example.net:s=default'] }, added);
  }
});

test('the table: one domain signed twice (RSA with x= and i=, ed25519), verified by dkimpy, Mail::DKIM, Exim and rspamd', async () => {
  const signed = tableSign('Alice <alice@example.com>');
  assert.ok(signed.ok);
  assert.deepEqual(signed.value.signatures.map((s) => [s.type, s.d, s.s, s.a, s.source]), [
    ['dkim', 'example.com', 'rsa2026', 'rsa-sha256', 'control/dkimkeys line 2'],
    ['dkim', 'example.com', 'ed2026', 'ed25519-sha256', 'control/dkimkeys line 3'],
    ['domainkeys', 'example.com', 'rsa2026', 'rsa-sha1', 'control/dkimkeys line 2'],
  ]);
  const text = signed.wire.toString();
  assert.match(text, /i=@example\.com; t=(\d+); x=(\d+);/);
  const [, t, x] = /t=(\d+); x=(\d+);/.exec(text) ?? [];
  assert.equal(Number(x) - Number(t), 604800);
  assert.deepEqual((await verifyWithDkimpy(signed.wire, dns.server)).signatures.map((s) => [s.selector, s.result]), [['rsa2026', 'pass'], ['ed2026', 'pass']]);
  assert.equal((await verifyWithMailDkim(signed.wire, dns.server)).signatures.find((s) => s.type === 'dk')?.result, 'pass');
  if (eximMissing === undefined) {
    const exim = await verifyWithExim(signed.wire, { txt: keyRecords() });
    assert.deepEqual(exim.map((s) => [s.selector, s.algorithm, s.status]).sort(), [['ed2026', 'ed25519-sha256', 'pass'], ['rsa2026', 'rsa-sha256', 'pass']]);
  }
  if (rspamd) assert.deepEqual([...((await rspamd.check(signed.wire)).R_DKIM_ALLOW ?? [])].sort(), ['example.com:s=ed2026', 'example.com:s=rsa2026']);
});

test('the table: dk=no, d= as the operator, nosign, and a broken line defers only its own domain', async () => {
  const org = tableSign('a@mail.example.org');
  assert.ok(org.ok);
  assert.deepEqual(org.value.signatures.map((s) => [s.type, s.d]), [['dkim', 'example.org']], 'a parent\'s key, no DomainKeys');
  assert.deepEqual((await verifyWithDkimpy(org.wire, dns.server)).signatures.map((s) => s.result), ['pass']);

  const operator = tableSign('a@example.net');
  assert.ok(operator.ok);
  assert.deepEqual(operator.value.signatures.map((s) => [s.type, s.d, s.s]), [['dkim', 'operator.test', 'ops'], ['domainkeys', 'operator.test', 'ops']]);
  assert.deepEqual((await verifyWithDkimpy(operator.wire, dns.server)).signatures.map((s) => s.result), ['pass']);

  const nosign = tableSign('a@nosign.test');
  assert.ok(nosign.ok);
  assert.deepEqual(nosign.value.signatures, []);
  assert.match(nosign.value.notes.join(), /line 6: nosign/);

  const broken = tableSign('a@broken.test');
  assert.equal(broken.ok, false);
  assert.equal(!broken.ok && broken.error.code, 'READ_CONTROL');
  assert.match(!broken.ok ? (broken.error.cause ?? '') : '', /control\/dkimkeys line 7: not an option: "x=soon"/);

  const none = tableSign('a@elsewhere.test');
  assert.ok(none.ok);
  assert.deepEqual(none.value.signatures, [], 'no line and no *: unsigned');
});

test('the table: an algorithm that is not the key\'s, or i= outside d=, defers that domain', () => {
  const wrongKind = sign(message('a@example.com'), { table: parseTable([`example.com:${work}/keys/example.com/ed2026:rsa-sha256`]) });
  assert.equal(!wrongKind.ok && wrongKind.error.code, 'READ_KEY');
  const outside = sign(message('a@example.com'), { table: parseTable([`example.com:${work}/keys/example.com/rsa2026:i=@evil.test`]) });
  assert.equal(!outside.ok && outside.error.code, 'READ_CONTROL');
});

test('sign --explain names the line that chose each key; keys reports the broken line', async () => {
  const control = join(work, 'control-explain');
  mkdirSync(control, { recursive: true });
  writeFileSync(join(control, 'dkimkeys'), `example.com:${work}/keys/example.com/rsa2026\nbroken.test:${work}/keys/%/default:x=soon\n`);
  const explained = await runNode(CLI, ['sign', '--control', control, '--explain'], { stdin: message('a@example.com') });
  assert.equal(explained.status, 0, explained.stderr);
  assert.match(explained.stderr, /dkimkeys: 2 lines \(dksign is not read\)/);
  assert.match(explained.stderr, /dkimkeys line 2: not an option/);
  assert.match(explained.stderr, /dkim: d=example\.com s=rsa2026 a=rsa-sha256 key=.* \(control\/dkimkeys line 1\)/);
  // Accounts of its own, never this host's: the audit reads them to see who can read a key.
  writeFileSync(join(work, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nqmailr:x:7794:2108::/var/qmail:/bin/false\n');
  writeFileSync(join(work, 'group'), 'root:x:0:\nqmail:x:2108:\n');
  const accounts = ['--passwd', join(work, 'passwd'), '--group', join(work, 'group')];
  const keys = await runNode(CLI, ['keys', '--control', control, '--dns', dns.server, ...accounts]);
  assert.equal(keys.status, 1);
  assert.match(keys.stdout, /problem: control\/dkimkeys line 2: not an option: "x=soon" \(mail for broken\.test waits\)/);
  assert.match(keys.stdout, /^example\.com rsa2026 rsa 2048 /m);
  assert.match(keys.stdout, /ok: rsa2026\._domainkey\.example\.com publishes this key/);
});

test('a route flagged nosign in smtproutes leaves unsigned; the same route without the flag is signed', async () => {
  for (const flag of ['/nosign', '']) {
    const server = await startScriptServer({});
    try {
      const home = mkdtempSync(join(work, 'home-'));
      mkdirSync(join(home, 'control'));
      writeFileSync(join(home, 'control', 'me'), 'mx.example.com\n');
      writeFileSync(join(home, 'control', 'dksign'), `${work}/keys/%/default\n`);
      writeFileSync(join(home, 'control', 'smtproutes'), `example.net:127.0.0.1:${server.port}${flag}\n`);
      writeFileSync(join(home, 'queued'), message('alice@example.org'));
      const fd = openSync(join(home, 'queued'), 'r');
      try {
        const run = await runNode(QMAIL_REMOTE, ['example.net', 'alice@example.org', 'bob@example.net'], { stdin: fd, env: { PATH: process.env.PATH ?? '', QMAILHOME: home, QMAILREMOTE_DNS: dns.server } });
        await server.idle();
        assert.match(run.stdout, /^r\0K/);
      } finally {
        closeSync(fd);
      }
      const wire = server.sessions[0]?.messages[0]?.toString() ?? '';
      assert.equal(/^DKIM-Signature:/m.test(wire), flag === '', `flag ${JSON.stringify(flag)}`);
    } finally {
      await server.close();
    }
  }
});
