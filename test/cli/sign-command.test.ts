// `qmail-remote-dkim sign`: what qmail-remote would send, on stdout; why, on stderr with
// --explain; exit 0 (signed or unsigned on purpose), 111 (unusable key), 100 (usage).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const SIMPLE = readFileSync(new URL('../fixtures/simple.eml', import.meta.url));
const RSA_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));

const setups: string[] = [];
after(() => {
  for (const dir of setups) rmSync(dir, { recursive: true, force: true });
});

function setup(key: Buffer | 'copy' | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-sign-'));
  setups.push(dir);
  mkdirSync(join(dir, 'control'));
  mkdirSync(join(dir, 'keys', 'example.com'), { recursive: true });
  writeFileSync(join(dir, 'control', 'dksign'), `${dir}/keys/%/default\n`);
  if (key === 'copy') copyFileSync(RSA_KEY, join(dir, 'keys', 'example.com', 'default'));
  else if (key) writeFileSync(join(dir, 'keys', 'example.com', 'default'), key);
  return join(dir, 'control');
}

const sign = (args: string[], input = SIMPLE) => spawnSync(process.execPath, [CLI, 'sign', ...args], { input });

test('signed: both signature fields on top of the CRLF message, and --explain says why', () => {
  const control = setup('copy');
  const run = sign(['--control', control, '--explain', '--time', '1700000000']);
  assert.equal(run.status, 0);
  const out = run.stdout.toString('latin1');
  assert.match(out, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;\r\n\ts=default; t=1700000000;/);
  assert.match(out, /\r\nDomainKey-Signature: a=rsa-sha1; q=dns; c=nofws; s=default; d=example\.com;/);
  assert.ok(out.endsWith(SIMPLE.toString('latin1').replace(/\n/g, '\r\n')));
  const explained = run.stderr.toString();
  assert.match(explained, /signing domain from header: example\.com/);
  assert.match(explained, /dkim: d=example\.com s=default a=rsa-sha256 key=.*\/keys\/example\.com\/default/);
  assert.match(explained, /domainkeys: d=example\.com s=default a=rsa-sha1/);
});

test('no key: the message unsigned, exit 0, and the reason', () => {
  const run = sign(['--control', setup(null), '--explain']);
  assert.equal(run.status, 0);
  assert.equal(run.stdout.toString('latin1'), SIMPLE.toString('latin1').replace(/\n/g, '\r\n'));
  assert.match(run.stderr.toString(), /note: no key for example\.com or its parent domains/);
  assert.match(run.stderr.toString(), /not signed/);
});

test('a key that cannot be used: exit 111, nothing on stdout, no key material on stderr', () => {
  const run = sign(['--control', setup(Buffer.from('-----BEGIN RSA PRIVATE KEY-----\nMIIgarbage\n-----END RSA PRIVATE KEY-----\n'))]);
  assert.equal(run.status, 111);
  assert.equal(run.stdout.length, 0);
  assert.match(run.stderr.toString(), /not a PEM private key/);
  assert.doesNotMatch(run.stderr.toString(), /MIIgarbage/);
});

test('usage errors exit 100 and sign nothing', () => {
  const mistyped = sign(['--control', setup('copy'), '--no-such-option']);
  assert.equal(mistyped.status, 100);
  assert.equal(mistyped.stdout.length, 0);
  assert.equal(spawnSync(process.execPath, [CLI], { input: '' }).status, 100);
});
