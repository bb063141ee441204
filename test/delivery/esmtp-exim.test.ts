// bin/qmail-remote against a real Exim (test/helpers/exim.ts). MAIL FROM's ESMTP parameters, as
// well as against the scripted servers of esmtp-parameters.test.ts: Exim reads our SIZE=,
// BODY=8BITMIME and SMTPUTF8 as it reads any client's, refuses a message over its limit at MAIL
// from SIZE= alone, and receives the message whole. And what we sign, as an Exim MX verifies it
// on receipt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dkimResults, eximMissing, startEximServer } from '../helpers/exim.ts';
import { makeEd25519Key, makeRsaKey } from '../helpers/keys.ts';
import { Homes, qmailRemote, SIMPLE } from '../helpers/qmail-remote-rig.ts';

const LATIN1 = fileURLToPath(new URL('../fixtures/latin1-8bit.eml', import.meta.url));
const LONG = fileURLToPath(new URL('../fixtures/long-lines.eml', import.meta.url));
const homes = new Homes('qrd-esmtp-exim-');
const skip = eximMissing ?? false;

async function deliver(options: { message: string; recip?: string; sizeLimit?: string }) {
  const exim = await startEximServer(options.sizeLimit ? { sizeLimit: options.sizeLimit } : {});
  try {
    const run = await qmailRemote({
      home: homes.home({ smtproutes: `:127.0.0.1:${exim.port}\n` }),
      args: ['example.net', 'alice@example.com', options.recip ?? 'bob@example.net'],
      message: options.message,
    });
    assert.equal(run.stderr, '');
    return { report: run.stdout, log: exim.mainlog(), bodies: exim.bodies() };
  } finally {
    await exim.close();
  }
}

test('a real Exim takes SIZE= and BODY=8BITMIME: the 8-bit message is received whole, as 8BITMIME', { skip }, async () => {
  const { report, log, bodies } = await deliver({ message: LATIN1 });
  assert.match(report, /^r\0K127\.0\.0\.1 accepted message\.\nRemote host said: 250 OK id=/);
  assert.match(log, new RegExp(`MAIL-PARAMS size=${statSync(LATIN1).size} smtputf8=no`));
  assert.match(log, / <= alice@example\.com .* P=esmtp .*M8S=8/);
  const text = readFileSync(LATIN1);
  assert.deepEqual(bodies, [text.subarray(text.indexOf('\n\n') + 2)], 'the body, 8-bit bytes and all');
});

test('a 7-bit message to a real Exim: SIZE= only, no BODY=', { skip }, async () => {
  const { report, log } = await deliver({ message: SIMPLE });
  assert.match(report, /^r\0K/);
  assert.match(log, new RegExp(`MAIL-PARAMS size=${statSync(SIMPLE).size} `));
  assert.match(log, / <= alice@example\.com .*M8S=0/);
});

test('a real Exim refuses at MAIL a message our SIZE= says is over its limit: D, nothing received', { skip }, async () => {
  const { report, log } = await deliver({ message: LONG, sizeLimit: '2K' });
  assert.match(report, /^DConnected to 127\.0\.0\.1 but sender was rejected\.\nRemote host said: 552 Message size exceeds maximum permitted\n\0$/);
  assert.doesNotMatch(log, / <= /);
});

test('an 8-bit address to a real Exim goes with SMTPUTF8 and arrives as an SMTPUTF8 message', { skip }, async () => {
  const { report, log } = await deliver({ message: SIMPLE, recip: 'bjørn@example.net' });
  assert.match(report, /^r\0K/);
  assert.match(log, /MAIL-PARAMS size=\d+ smtputf8=yes/);
  assert.match(log, / <= alice@example\.com .* P=utf8esmtp .*for "?bjørn"?@example\.net/);
});

test('signed by qmail-remote, verified by Exim as it receives the message: the RSA and the ed25519 DKIM signature pass', { skip }, async () => {
  const rsa = makeRsaKey();
  const ed25519 = makeEd25519Key();
  const keys = homes.path('keys');
  mkdirSync(join(keys, 'example.com'), { recursive: true });
  writeFileSync(join(keys, 'example.com', 'rsa'), rsa.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(keys, 'example.com', 'ed'), ed25519.privateKeyPem, { mode: 0o600 });
  const exim = await startEximServer({
    dkim: { txt: [{ name: 'rsa._domainkey.example.com', text: rsa.txt }, { name: 'ed._domainkey.example.com', text: ed25519.txt }] },
  });
  try {
    const run = await qmailRemote({
      home: homes.home({ smtproutes: `:127.0.0.1:${exim.port}\n`, dksign: `${keys}/%/rsa\n${keys}/%/ed\n` }),
      args: ['example.net', 'alice@example.com', 'bob@example.net'],
      message: SIMPLE,
    });
    assert.match(run.stdout, /^r\0K/);
    const results = dkimResults(exim.mainlog()).map((s) => [s.domain, s.selector, s.algorithm, s.status, s.reason]);
    assert.deepEqual(results.sort(), [['example.com', 'ed', 'ed25519-sha256', 'pass', ''], ['example.com', 'rsa', 'rsa-sha256', 'pass', '']]);
  } finally {
    await exim.close();
  }
});
