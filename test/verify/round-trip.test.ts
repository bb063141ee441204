// The whole path: bin/qmail-remote signs a queue file and delivers it to a test SMTP server;
// what arrived is handed, as qmail-smtpd would, to bin/qmail-dkverify, which must find
// dkim=pass and domainkeys=pass with the key served by a real DNS server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { addedField, asReceived, dkverify } from './harness.ts';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const RSA_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));
const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'dkverify-round-'));
let dns: DnsServer;

before(async () => {
  mkdirSync(join(work, 'keys', 'example.com'), { recursive: true });
  copyFileSync(RSA_KEY, join(work, 'keys', 'example.com', 'default'));
  const spki = createPublicKey(createPrivateKey(readFileSync(RSA_KEY))).export({ type: 'spki', format: 'der' });
  dns = await startDns({
    txt: [
      { name: 'default._domainkey.example.com', text: `v=DKIM1; k=rsa; p=${spki.toString('base64')}` },
      { name: 'example.com', text: 'v=spf1 ip4:192.0.2.1 -all' },
    ],
  });
});

after(async () => {
  await dns?.stop();
  rmSync(work, { recursive: true, force: true });
});

function qmailRemote(port: number): Promise<string> {
  const control = join(work, 'control');
  mkdirSync(control, { recursive: true });
  writeFileSync(join(control, 'me'), 'mail.example.com\n');
  writeFileSync(join(control, 'dksign'), `${work}/keys/%/default\n`);
  writeFileSync(join(control, 'smtproutes'), `:127.0.0.1:${port}\n`);
  const fd = openSync(SIMPLE, 'r');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [QMAIL_REMOTE, 'example.net', 'alice@example.com', 'bob@example.net'], {
      stdio: [fd, 'pipe', 'ignore'],
      env: { PATH: process.env.PATH ?? '', CONTROLDIR: control, QMAILREMOTE_DNS: dns.server },
    });
    const out: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', reject);
    child.on('close', () => {
      closeSync(fd);
      resolve(Buffer.concat(out).toString('latin1'));
    });
  });
}

test('signed and sent by qmail-remote, received and verified by qmail-dkverify: dkim=pass, domainkeys=pass', async () => {
  const server = await startScriptServer({});
  let wire: Buffer | undefined;
  try {
    const report = await qmailRemote(server.port);
    await server.idle();
    assert.match(report, /^r\0K/);
    wire = server.sessions[0]?.messages[0];
  } finally {
    await server.close();
  }
  assert.ok(wire, 'the message arrived');
  const result = await dkverify(asReceived(wire), dns.server, { env: { DKVERIFY: 'BCDEFGHIJK,BCDEFGHIJKLMNOPQR', TCPREMOTEIP: '192.0.2.1' } });
  assert.equal(result.status, 0, 'DomainKeys A and DKIM A: nothing rejects');
  const field = addedField(result);
  assert.match(field, /dkim=pass header\.d=example\.com header\.s=default header\.a=rsa-sha256/);
  assert.match(field, /domainkeys=pass header\.d=example\.com header\.from=alice@example\.com/);
  assert.match(field, /spf=pass/);
});
