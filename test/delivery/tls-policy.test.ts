// Which TLS an address must have (src/delivery/tls/policy.ts) and the tlshosts/ file names it
// may read (src/delivery/tls/trust.ts): one case per rule.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirementFor, type PolicyContext } from '../../src/delivery/tls/policy.ts';
import { tlshostsCertificates, tlshostsName } from '../../src/delivery/tls/trust.ts';
import type { StsLookup } from '../../src/delivery/tls/mta-sts.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

const controls: string[] = [];
after(() => {
  for (const dir of controls) rmSync(dir, { recursive: true, force: true });
});

function control(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-tlshosts-'));
  controls.push(dir);
  mkdirSync(join(dir, 'tlshosts'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'tlshosts', name), text);
  return dir;
}

const sts = (mode: 'enforce' | 'testing'): StsLookup => ({
  policy: { id: '1', mode, mx: ['mx.example.test', '*.mx.example.test'], expires: Date.now() + 1e6, maxAge: 86400 },
  source: 'cached',
});

const ctx = (over: Partial<PolicyContext>): PolicyContext => ({ controlDir: control(), relayed: false, port: 25, auth: false, sts: null, ...over });

test('no rule: opportunistic, as before', () => {
  assert.deepEqual(requirementFor('mx.example.test', ctx({})), { ok: true, value: { kind: 'opportunistic', policy: 'none', name: 'mx.example.test' } });
});

test('tlshosts/<host>.pem: verified against that file only, host lowercased', () => {
  const dir = control({ 'mx.example.test.pem': PEM });
  const got = requirementFor('MX.Example.Test.', ctx({ controlDir: dir }));
  assert.deepEqual(got, { ok: true, value: { kind: 'verified', policy: 'tlshosts', name: 'mx.example.test', ca: PEM } });
  const ip = requirementFor('[192.0.2.5]', ctx({ controlDir: control({ '192.0.2.5.pem': PEM }), relayed: true }));
  assert.deepEqual(ip.ok && ip.value, { kind: 'verified', policy: 'tlshosts', name: '192.0.2.5', ca: PEM });
});

test('a tlshosts/ file that holds no certificate or cannot be read defers (READ_CONTROL)', () => {
  const got = requirementFor('mx.example.test', ctx({ controlDir: control({ 'mx.example.test.pem': 'not a certificate' }) }));
  assert.equal(!got.ok && got.error.code, 'READ_CONTROL');
  const dir = control();
  mkdirSync(join(dir, 'tlshosts', 'mx.example.test.pem'));
  const isDir = requirementFor('mx.example.test', ctx({ controlDir: dir }));
  assert.equal(!isDir.ok && isDir.error.letter, 'Z');
});

test('a smarthost with credentials, or on port 465, is verified against the system store', () => {
  for (const over of [{ auth: true }, { port: 465 }]) {
    const got = requirementFor('relay.example.test', ctx({ relayed: true, ...over }));
    assert.deepEqual(got.ok && got.value, { kind: 'verified', policy: 'smarthost', name: 'relay.example.test', ca: 'system' });
  }
});

test('MTA-STS enforce: listed MX verified, unlisted excluded; testing: opportunistic; relays out of policy', () => {
  assert.deepEqual(requirementFor('a.mx.example.test', ctx({ sts: sts('enforce') })),
    { ok: true, value: { kind: 'verified', policy: 'sts-enforce', name: 'a.mx.example.test', ca: 'system' } });
  const unlisted = requirementFor('evil.example.test', ctx({ sts: sts('enforce') }));
  assert.ok(unlisted.ok && 'excluded' in unlisted.value);
  assert.deepEqual(requirementFor('evil.example.test', ctx({ sts: sts('testing') })),
    { ok: true, value: { kind: 'opportunistic', policy: 'sts-testing', name: 'evil.example.test' } });
  assert.deepEqual(requirementFor('relay.test', ctx({ sts: sts('enforce'), relayed: true })),
    { ok: true, value: { kind: 'opportunistic', policy: 'none', name: 'relay.test' } });
});

test('a name that cannot be a file name never reaches the file system', () => {
  for (const bad of ['../passwd', 'a/b', '.hidden', 'a..b', 'x\0y', '', 'a b', `${'a'.repeat(64)}.test`, '[::1/8]']) {
    assert.equal(tlshostsName(bad), null, JSON.stringify(bad));
  }
  assert.equal(tlshostsName('[IPv6:2001:DB8::1]'), '2001:db8::1');
  assert.equal(tlshostsName('Mail_1.Example.COM.'), 'mail_1.example.com');
  const dir = control({ 'passwd.pem': PEM });
  assert.deepEqual(tlshostsCertificates(join(dir, 'tlshosts', 'x'), '../passwd'), { ok: true, value: null });
});
