// Dual signing (docs/qmail-remote.md §7, src/signing/sign.ts): every control/dksign line is a template, each key
// found adds a DKIM-Signature, and the DomainKey-Signature uses the first RSA key. A domain with
// an RSA and an ed25519 key gets two DKIM-Signatures and one DomainKey-Signature, in that order,
// and each verifies under an independent verifier with the keys served by a real DNS server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bufferSource, normalisedMessage } from '../../src/mail/message.ts';
import { signMessage, type Signed } from '../../src/signing/sign.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeEd25519Key, makeRsaKey } from '../helpers/keys.ts';
import { verifyWithDkimpy, verifyWithMailDkim, type VerifierReport } from '../helpers/verifiers.ts';

const TIME = 1700000000;
const rsa = makeRsaKey();
const ed25519 = makeEd25519Key();
const root = mkdtempSync(join(tmpdir(), 'qrd-dual-'));
const RSA_LINE = `${root}/%/default`;
const ED_LINE = `${root}/%/ed25519`;

const message = (from: string): Buffer =>
  Buffer.from(
    `From: Alice <alice@${from}>\nTo: bob@example.net\nSubject: two keys, three signatures\n` +
      `Date: Tue, 14 Nov 2023 22:13:20 +0000\nMessage-ID: <dual@${from}>\n\nOne message,\n\n  signed three times.\n`,
  );

let dns: DnsServer;

before(async () => {
  chmodSync(root, 0o755);
  // both.example has both keys; ed-only.example has only the ed25519 one.
  for (const [domain, file, pem] of [
    ['both.example', 'default', rsa.privateKeyPem],
    ['both.example', 'ed25519', ed25519.privateKeyPem],
    ['ed-only.example', 'ed25519', ed25519.privateKeyPem],
  ] as const) {
    mkdirSync(join(root, domain), { recursive: true });
    writeFileSync(join(root, domain, file), pem, { mode: 0o640 });
  }
  dns = await startDns({
    txt: [
      { name: 'default._domainkey.both.example', text: rsa.txt },
      { name: 'ed25519._domainkey.both.example', text: ed25519.txt },
      { name: 'ed25519._domainkey.ed-only.example', text: ed25519.txt },
    ],
  });
});

after(async () => {
  await dns?.stop();
  rmSync(root, { recursive: true, force: true });
});

function sign(input: Buffer, templates: string[]): { wire: Buffer; signed: Signed } {
  const result = signMessage(bufferSource(input), { templates, qmailHome: '/', time: TIME });
  assert.ok(result.ok, 'signing must not fail');
  return { wire: Buffer.concat([result.value.prefix, normalisedMessage(bufferSource(input))]), signed: result.value };
}

/** The names of the header fields above the original ones, top to bottom. */
function addedFields(wire: Buffer, prefix: Buffer): string[] {
  return [...wire.subarray(0, prefix.length).toString('latin1').matchAll(/^([A-Za-z-]+):/gm)].map((m) => m[1] ?? '');
}

const verdicts = (report: VerifierReport): [string, string, string, string][] =>
  report.signatures.map((s) => [s.type, s.selector, s.algorithm, s.result]);

test('RSA and ed25519 lines: two DKIM-Signatures, then one DomainKey-Signature with the RSA key', async () => {
  const { wire, signed } = sign(message('both.example'), [RSA_LINE, ED_LINE]);
  assert.deepEqual(signed.signatures.map((s) => [s.type, s.d, s.s, s.a]), [
    ['dkim', 'both.example', 'default', 'rsa-sha256'],
    ['dkim', 'both.example', 'ed25519', 'ed25519-sha256'],
    ['domainkeys', 'both.example', 'default', 'rsa-sha1'],
  ]);
  assert.deepEqual(addedFields(wire, signed.prefix), ['DKIM-Signature', 'DKIM-Signature', 'DomainKey-Signature']);

  assert.deepEqual(verdicts(await verifyWithDkimpy(wire, dns.server)), [
    ['dkim', 'default', 'rsa-sha256', 'pass'],
    ['dkim', 'ed25519', 'ed25519-sha256', 'pass'],
  ]);
  // Mail::DKIM 1.20230212 (Debian 12) has no ed25519-sha256 (Mail/DKIM/Algorithm/ holds only
  // the RSA ones) and reports that signature invalid, "unsupported algorithm"; the other two
  // must pass, so the ed25519 signature broke nothing for a verifier that cannot read it.
  const mailDkim = await verifyWithMailDkim(wire, dns.server);
  assert.deepEqual(verdicts(mailDkim), [
    ['dkim', 'default', 'rsa-sha256', 'pass'],
    ['dkim', 'ed25519', 'ed25519-sha256', 'invalid'],
    ['dk', 'default', 'rsa-sha1', 'pass'],
  ]);
  assert.match(mailDkim.signatures[1]?.detail ?? '', /unsupported algorithm/);
});

test('the ed25519 line first: DKIM signatures in dksign order, DomainKeys still with the RSA key', async () => {
  const { wire, signed } = sign(message('both.example'), [ED_LINE, RSA_LINE]);
  assert.deepEqual(signed.signatures.map((s) => [s.type, s.s]), [['dkim', 'ed25519'], ['dkim', 'default'], ['domainkeys', 'default']]);
  assert.deepEqual(verdicts(await verifyWithDkimpy(wire, dns.server)).map((v) => v[3]), ['pass', 'pass']);
  const mailDkim = verdicts(await verifyWithMailDkim(wire, dns.server));
  assert.deepEqual(mailDkim.filter((v) => v[2] !== 'ed25519-sha256').map((v) => [v[0], v[3]]), [['dkim', 'pass'], ['dk', 'pass']]);
});

test('a domain with only the ed25519 key: one DKIM-Signature and no DomainKey-Signature', async () => {
  const { wire, signed } = sign(message('ed-only.example'), [RSA_LINE, ED_LINE]);
  assert.deepEqual(addedFields(wire, signed.prefix), ['DKIM-Signature']);
  assert.ok(signed.notes.includes('no RSA key: no DomainKey-Signature'), signed.notes.join('; '));
  assert.deepEqual(verdicts(await verifyWithDkimpy(wire, dns.server)), [['dkim', 'ed25519', 'ed25519-sha256', 'pass']]);
});

test('a subdomain signs with both keys of its parent, d= the parent', async () => {
  const { wire, signed } = sign(message('mail.both.example'), [RSA_LINE, ED_LINE]);
  assert.deepEqual(signed.signatures.map((s) => [s.type, s.d]), [['dkim', 'both.example'], ['dkim', 'both.example'], ['domainkeys', 'both.example']]);
  assert.deepEqual(verdicts(await verifyWithDkimpy(wire, dns.server)).map((v) => v[3]), ['pass', 'pass']);
  assert.deepEqual(verdicts(await verifyWithMailDkim(wire, dns.server)).map((v) => [v[0], v[3]]), [['dkim', 'pass'], ['dkim', 'invalid'], ['dk', 'pass']]);
});

test('a tampered body fails every signature each verifier can check', async () => {
  const { wire } = sign(message('both.example'), [RSA_LINE, ED_LINE]);
  const tampered = Buffer.from(wire.toString('latin1').replace('signed three times', 'signed thrice times'), 'latin1');
  assert.deepEqual(verdicts(await verifyWithDkimpy(tampered, dns.server)).map((v) => v[3]), ['fail', 'fail']);
  assert.deepEqual(verdicts(await verifyWithMailDkim(tampered, dns.server)).map((v) => [v[0], v[3]]), [['dkim', 'fail'], ['dkim', 'invalid'], ['dk', 'fail']]);
});
