// Forwarded mail, the real path (docs/signing.md, "Forwarded mail"): a message enters through
// bin/qmail-dkverify as qmail-smtpd runs it, and what it queued leaves through bin/qmail-remote
// to a scripted server, both with the same control/entrykey. What arrives is checked by dkimpy
// (DKIM and arc_verify) and by mailauth, with keys from a real DNS server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authenticate } from 'mailauth';
import { startScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { run as runCommand, runNode } from '../helpers/run.ts';
import { makeRsaKey, type TestKey } from '../helpers/keys.ts';
import { signWithDkimpy } from '../helpers/reference-signers.ts';
import { interpreters, runScript, verifyWithDkimpy } from '../helpers/verifiers.ts';
import { asReceived, dkverify } from '../verify/harness.ts';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const OUR_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));
const STRACE = '/usr/bin/strace';
const ARC_SCRIPT = fileURLToPath(new URL('../helpers/reference/dkimpy-arc.py', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'qrd-forward-'));
const ENTRY_KEY = `${randomBytes(32).toString('hex')}\n`;
const STRANGER = '198.51.100.7';
const BANK = makeRsaKey();
const FORWARDER = makeRsaKey();
let dns: DnsServer;

before(async () => {
  mkdirSync(join(work, 'keys', 'example.com'), { recursive: true });
  copyFileSync(OUR_KEY, join(work, 'keys', 'example.com', 'default'));
  const ours = createPublicKey(createPrivateKey(readFileSync(OUR_KEY))).export({ type: 'spki', format: 'der' }).toString('base64');
  dns = await startDns({
    txt: [
      { name: 'default._domainkey.example.com', text: `v=DKIM1; k=rsa; p=${ours}` },
      { name: 'example.com', text: 'v=spf1 ip4:192.0.2.1 -all' },
      { name: '_dmarc.example.com', text: 'v=DMARC1; p=reject' },
      { name: 'sel._domainkey.bank.test', text: BANK.txt },
      { name: 'bank.test', text: `v=spf1 ip4:${STRANGER} -all` },
      { name: '_dmarc.bank.test', text: 'v=DMARC1; p=reject' },
      { name: 'arc._domainkey.forwarder.test', text: FORWARDER.txt },
    ],
  });
});

after(async () => {
  await dns?.stop();
  rmSync(work, { recursive: true, force: true });
});

const message = (from: string, body = 'Please wire the money today.\n', extra = ''): Buffer =>
  Buffer.from(
    `Date: Thu, 03 Dec 2026 05:00:00 +0000\nFrom: ${from}\nTo: Bob <bob@example.com>\nSubject: forwarded\n` +
      `Message-ID: <fwd-${randomBytes(6).toString('hex')}@example.test>\n${extra}\n${body}`,
    'latin1',
  );

/** In through qmail-dkverify from `ip`, as qmail-smtpd hands it over: what was queued. */
async function enter(text: Buffer, env: Record<string, string> = {}, entryKey = ENTRY_KEY): Promise<Buffer> {
  const run = await dkverify(asReceived(text, STRANGER, 'client.example.org'), dns.server, {
    env: { DKVERIFY: '', TCPREMOTEIP: STRANGER, ...env },
    control: entryKey ? { entrykey: entryKey } : {},
  });
  assert.equal(run.status, 0, run.stderr);
  assert.ok(run.queued, 'queued');
  return run.queued.message;
}

let homes = 0;
/** A qmail home whose control/ routes to `port` and shares the entry key (none when ''). */
function home(port: number, entryKey: string): string {
  const dir = join(work, `home${homes++}`);
  mkdirSync(join(dir, 'control'), { recursive: true });
  const files = { me: 'mx.example.com\n', dksign: `${work}/keys/%/default\n`, smtproutes: `:127.0.0.1:${port}\n`, ...(entryKey ? { entrykey: entryKey } : {}) };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'control', name), text);
  return dir;
}

/** Out through qmail-remote, as qmail-rspawn runs it for a .qmail forward: what the server got. */
async function leave(queued: Buffer, entryKey = ENTRY_KEY, trace?: string): Promise<{ wire: Buffer; report: string }> {
  const server = await startScriptServer({});
  try {
    const qmailHome = home(server.port, entryKey);
    const queueFile = join(qmailHome, 'queued');
    writeFileSync(queueFile, queued);
    const fd = openSync(queueFile, 'r');
    try {
      const args = ['gmail.test', 'bounce@example.com', 'carol@gmail.test'];
      const options = { stdin: fd, env: { PATH: process.env.PATH ?? '', QMAILHOME: qmailHome, QMAILREMOTE_DNS: dns.server } };
      const run = trace === undefined
        ? await runNode(QMAIL_REMOTE, args, options)
        : await runCommand(STRACE, ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', trace, process.execPath, QMAIL_REMOTE, ...args], options);
      await server.idle();
      assert.equal(run.stderr, '');
      assert.match(run.stdout, /^r\0K/, run.stdout);
      const wire = server.sessions[0]?.messages[0];
      assert.ok(wire, 'delivered');
      return { wire, report: run.stdout };
    } finally {
      closeSync(fd);
    }
  } finally {
    await server.close();
  }
}

const fields = (wire: Buffer, name: string): string[] => {
  const head = wire.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return [...head.matchAll(new RegExp(`^${name}:[^\\r]*(?:\\r\\n[ \\t][^\\r]*)*`, 'gim'))].map((m) => m[0].replace(/\r\n[ \t]+/g, ' '));
};

async function arcByDkimpy(wire: Buffer): Promise<{ cv: string | null; reason: string; instances: number }> {
  const out = await runScript(interpreters.python, ARC_SCRIPT, ['verify', '--dns', dns.server], wire);
  return JSON.parse(out.toString()) as { cv: string | null; reason: string; instances: number };
}

async function arcByMailauth(wire: Buffer): Promise<string> {
  const resolver = dns.resolver();
  const result = await authenticate(wire, {
    ip: '192.0.2.99', helo: 'mx.example.com', sender: 'bounce@example.com', mta: 'gmail.test',
    resolver: (name: string, type: string) => resolver.resolve(name, type) as Promise<never>,
  });
  return result.arc ? result.arc.status.result : 'none';
}

async function sealWithDkimpy(text: Buffer): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'arc-key-'));
  try {
    writeFileSync(join(dir, 'key'), FORWARDER.privateKeyPem, { mode: 0o600 });
    const withResults = Buffer.concat([Buffer.from('Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=bank.test\r\n'), text]);
    return await runScript(interpreters.python, ARC_SCRIPT, ['seal', '--domain', 'forwarder.test', '--selector', 'arc', '--key', join(dir, 'key'), '--srv-id', 'forwarder.test'], withResults);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ourDkim = (wire: Buffer): string[] => fields(wire, 'DKIM-Signature').filter((f) => /\bd=example\.com;/.test(f));

test('a spoof of our domain forwarded through the host leaves without our signature, sealed with what entry found', async () => {
  const queued = await enter(message('CEO <ceo@example.com>'));
  assert.match(queued.toString('latin1'), /\(entry v=1 t=\d+ sd=example\.com bh=/, 'qmail-dkverify marked it');
  const { wire } = await leave(queued);
  assert.deepEqual(ourDkim(wire), [], 'no DKIM-Signature of ours');
  assert.deepEqual(fields(wire, 'DomainKey-Signature'), [], 'no DomainKey-Signature');
  const aar = fields(wire, 'ARC-Authentication-Results');
  assert.equal(aar.length, 1);
  assert.match(aar[0] ?? '', /^ARC-Authentication-Results: i=1; mx\.example\.net; .*dmarc=fail/);
  assert.doesNotMatch(aar[0] ?? '', /entry v=1/, 'the mark stays out of the seal');
  assert.match(fields(wire, 'ARC-Seal')[0] ?? '', /i=1; .*cv=none/);
  assert.deepEqual(await arcByDkimpy(wire), { cv: 'pass', reason: 'success', instances: 1 });
  assert.equal(await arcByMailauth(wire), 'pass');
});

test('sign --explain says which rule decided, and shows the seal', async () => {
  const queued = await enter(message('CEO <ceo@example.com>'));
  const explain = await runNode(CLI, ['sign', '--control', join(home(25, ENTRY_KEY), 'control'), '--explain'], { stdin: queued });
  assert.equal(explain.status, 0);
  assert.match(explain.stderr, /note: came in from outside with From: example\.com unauthenticated .*not signed with its key/);
  assert.match(explain.stderr, /note: arc seal d=example\.com s=default cv=none/);
  assert.match(explain.stdout, /^ARC-Seal: i=1;/);
});

test('keys --dns names the sealing key and checks its record, and refuses an entry key others can read', async () => {
  const control = join(home(25, ENTRY_KEY), 'control');
  // Accounts of its own, as qmail's INSTALL.ids makes them, never this host's: the audit reads
  // them to see who can read a key.
  const accounts = ['--passwd', join(control, '..', 'passwd'), '--group', join(control, '..', 'group')];
  writeFileSync(accounts[1] as string, 'root:x:0:0:root:/root:/bin/sh\nqmailr:x:7794:2108::/var/qmail:/bin/false\n');
  writeFileSync(accounts[3] as string, 'root:x:0:\nqmail:x:2108:\n');
  chmodSync(join(control, 'entrykey'), 0o440);
  const audited = await runNode(CLI, ['keys', '--control', control, '--dns', dns.server, ...accounts]);
  // Only the forwarding lines are asserted: the key's own permissions are another test's.
  assert.match(audited.stdout, /^example\.com default rsa [^\n]*\n {2}seals forwarded mail \(ARC\), for control\/me\n/);
  assert.match(audited.stdout, /\n {2}ok: default\._domainkey\.example\.com publishes this key\n/);
  assert.doesNotMatch(audited.stdout, /entrykey/);
  chmodSync(join(control, 'entrykey'), 0o644);
  const open = await runNode(CLI, ['keys', '--control', control, ...accounts]);
  assert.equal(open.status, 1);
  assert.match(open.stdout, /problem: .*entrykey is open to other users/);
});

test('a forward of signed mail keeps its signature and gets an ARC set that dkimpy and mailauth verify', async () => {
  const signed = await signWithDkimpy(message('Alice <alice@bank.test>', 'Your statement is ready.\n'), { domain: 'bank.test', selector: 'sel', key: BANK });
  const queued = await enter(signed);
  assert.match(queued.toString('latin1'), /dkim=pass header\.d=bank\.test/);
  const { wire } = await leave(queued);
  const dkim = await verifyWithDkimpy(wire, dns.server);
  assert.deepEqual(dkim.signatures.map((s) => [s.domain, s.result]), [['bank.test', 'pass']], 'the original signature, intact');
  assert.equal((await arcByDkimpy(wire)).cv, 'pass');
  assert.equal(await arcByMailauth(wire), 'pass');
});

test('mail that entry authenticated for our domain is signed with our key, and sealed', async () => {
  const original = message('Colleague <bob@example.com>', 'Minutes attached.\n');
  const privateKey = createPrivateKey(readFileSync(OUR_KEY));
  const ours: TestKey = { type: 'rsa', privateKey, privateKeyPem: readFileSync(OUR_KEY, 'latin1'), txt: '' };
  const signed = await signWithDkimpy(original, { domain: 'example.com', selector: 'default', key: ours });
  const { wire } = await leave(await enter(signed));
  assert.equal(ourDkim(wire).length, 2, 'the original and ours');
  assert.deepEqual((await verifyWithDkimpy(wire, dns.server)).signatures.map((s) => s.result), ['pass', 'pass']);
  assert.equal((await arcByDkimpy(wire)).cv, 'pass');
});

test('an ARC set on mail that no DKIM signature covers: its message signature is checked against the body', async () => {
  // The only signature over the body is the ARC-Message-Signature: qmail-dkverify must still
  // give mailauth the body (it gives none to mail that nothing signs).
  const sealed = await sealWithDkimpy(message('Alice <alice@bank.test>', 'Forwarded unsigned.\n'));
  assert.equal((await arcByDkimpy(sealed)).cv, 'pass', 'the other sealer made a valid set');
  assert.match((await enter(sealed)).toString('latin1'), /dkim=none[^]*arc=pass/);
  const changed = Buffer.from(sealed.toString('latin1').replace('Forwarded unsigned.', 'Forwarded, changed.'), 'latin1');
  assert.match((await enter(changed)).toString('latin1'), /arc=fail/);
});

test('an i=1 chain from another sealer gets i=2 with cv=pass', async () => {
  const signed = await signWithDkimpy(message('Alice <alice@bank.test>', 'Forwarded twice.\n'), { domain: 'bank.test', selector: 'sel', key: BANK });
  const sealed = await sealWithDkimpy(signed);
  assert.equal((await arcByDkimpy(sealed)).cv, 'pass', 'the other sealer made a valid set');
  const queued = await enter(sealed);
  assert.match(queued.toString('latin1'), /arc=pass/);
  const { wire } = await leave(queued);
  const seals = fields(wire, 'ARC-Seal');
  assert.equal(seals.length, 2);
  assert.match(seals[0] ?? '', /i=2; .*cv=pass/);
  assert.deepEqual(await arcByDkimpy(wire), { cv: 'pass', reason: 'success', instances: 2 });
  assert.equal(await arcByMailauth(wire), 'pass');
});

test('a broken chain never gets cv=pass', async () => {
  const signed = await signWithDkimpy(message('Alice <alice@bank.test>', 'Original text.\n'), { domain: 'bank.test', selector: 'sel', key: BANK });
  const sealed = await sealWithDkimpy(signed);
  const broken = Buffer.from(sealed.toString('latin1').replace('Original text.', 'Changed text.'), 'latin1');
  const queued = await enter(broken);
  assert.match(queued.toString('latin1'), /arc=fail/);
  const { wire } = await leave(queued);
  const seals = fields(wire, 'ARC-Seal');
  assert.match(seals[0] ?? '', /i=2; .*cv=fail/, 'sealed as failed: the chain ends here');
  assert.notEqual((await arcByDkimpy(wire)).cv, 'pass');
  assert.notEqual(await arcByMailauth(wire), 'pass');
});

test('a From: rewritten here (a list re-injecting) is signed as local mail, and sealed', async () => {
  const queued = (await enter(message('Mallory <mallory@bank.test>'))).toString('latin1');
  const rewritten = Buffer.from(queued.replace('From: Mallory <mallory@bank.test>', 'From: List <list@example.com>'), 'latin1');
  const { wire } = await leave(rewritten);
  assert.equal(ourDkim(wire).length, 1, 'signed with our key');
  assert.equal(fields(wire, 'ARC-Seal').length, 1);
});

test('local mail and relay-client mail are signed as before, and not sealed', async () => {
  const local = await leave(message('Alice <alice@example.com>'));
  assert.equal(ourDkim(local.wire).length, 1);
  assert.equal(fields(local.wire, 'DomainKey-Signature').length, 1);
  assert.deepEqual(fields(local.wire, 'ARC-Seal'), []);
  const relayed = await leave(await enter(message('Alice <alice@example.com>'), { RELAYCLIENT: '' }));
  assert.equal(ourDkim(relayed.wire).length, 1);
  assert.deepEqual(fields(relayed.wire, 'ARC-Seal'), []);
});

test('a forged or moved entry mark gets neither a seal nor a bypass of signing', async () => {
  // A local user copies a genuine marked field from a spoof that came in onto mail of their own.
  const genuine = (await enter(message('CEO <ceo@example.com>'))).toString('latin1');
  const field = /^Authentication-Results: [^\n]*\n(?:[ \t][^\n]*\n)*/m.exec(genuine)?.[0] ?? '';
  assert.match(field, /entry v=1/);
  const moved = Buffer.concat([Buffer.from(field, 'latin1'), message('CEO <ceo@example.com>', 'Another body.\n')]);
  const forged = Buffer.from(field.replace(/mac=[A-Za-z0-9+/=]{44}/, `mac=${Buffer.alloc(32, 1).toString('base64')}`), 'latin1');
  for (const text of [moved, Buffer.concat([forged, message('CEO <ceo@example.com>')])]) {
    const { wire } = await leave(text);
    assert.equal(ourDkim(wire).length, 1, 'signed as local mail');
    assert.deepEqual(fields(wire, 'ARC-Seal'), [], 'not sealed');
  }
  // And without the shared key on the sending side, no mark is believed at all.
  const { wire } = await leave(Buffer.from(genuine, 'latin1'), '');
  assert.equal(ourDkim(wire).length, 1);
  assert.deepEqual(fields(wire, 'ARC-Seal'), []);
});

test('mailauth is loaded to seal a forward, and not for local mail nor for a forged mark', async (t) => {
  if (!existsSync(STRACE)) return t.skip('strace is not installed');
  const opened = async (text: Buffer): Promise<string> => {
    const trace = join(work, `trace-${homes}`);
    await leave(text, ENTRY_KEY, trace);
    return readFileSync(trace, 'latin1');
  };
  const local = await opened(message('Alice <alice@example.com>'));
  assert.match(local, /qmail-remote\.cjs/, 'the trace sees the program');
  assert.doesNotMatch(local, /mailauth/);
  const forged = `Authentication-Results: mx.example.net; dkim=pass header.d=example.com (entry v=1 t=${Math.floor(Date.now() / 1000)} sd=example.com bh=${'A'.repeat(43)}= mac=${'B'.repeat(43)}=)\n`;
  assert.doesNotMatch(await opened(Buffer.concat([Buffer.from(forged), message('Alice <alice@example.com>')])), /mailauth/);
  assert.match(await opened(await enter(message('Alice <alice@bank.test>'))), /mailauth\/lib\/arc/);
});
