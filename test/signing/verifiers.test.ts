// Proves the independent-verifier harness itself, with signatures made by
// code other than ours (Mail::DKIM, dkimpy) and keys served by a real DNS
// server: good signatures pass, altered messages fail, and the verdict
// depends on the key published in DNS.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeEd25519Key, makeRsaKey } from '../helpers/keys.ts';
import { signWithDkimpy, signWithMailDkim } from '../helpers/reference-signers.ts';
import { verifyWithDkimpy, verifyWithMailDkim, type VerifierReport } from '../helpers/verifiers.ts';

const DOMAIN = 'example.com';
const rsa = makeRsaKey();
const ed25519 = makeEd25519Key();
let dns: DnsServer;

before(async () => {
  dns = await startDns({
    txt: [
      { name: `default._domainkey.${DOMAIN}`, text: rsa.txt },
      { name: `ed._domainkey.${DOMAIN}`, text: ed25519.txt },
    ],
  });
});
after(() => dns.stop());

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));

// [type, result] per signature, top to bottom: enough to compare, and the
// detail text stays out of assertions that must hold across versions.
const verdicts = (report: VerifierReport): [string, string][] => report.signatures.map((s) => [s.type, s.result]);

// A copy with the case of the first letter after `from` flipped: one byte
// changed that no canonicalization can undo.
function flipLetterAfter(message: Buffer, from: number): Buffer {
  const copy = Buffer.from(message);
  for (let i = from; i < copy.length; i++) {
    const byte = copy[i] ?? 0;
    if ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7a) {
      copy[i] = byte ^ 0x20;
      return copy;
    }
  }
  throw new Error('no letter to change');
}

function bodyStart(message: Buffer): number {
  const separator = message.indexOf('\r\n\r\n');
  assert.ok(separator >= 0, 'signed message has a body');
  return separator + 4;
}

function subjectStart(message: Buffer): number {
  const at = message.indexOf('\r\nSubject:');
  assert.ok(at >= 0, 'signed message has a Subject');
  return at + '\r\nSubject:'.length;
}

test('an unsigned message has no signatures to report', async () => {
  const message = Buffer.from(fixture('simple.eml').toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
  assert.deepEqual((await verifyWithMailDkim(message, dns.server)).signatures, []);
  assert.deepEqual((await verifyWithDkimpy(message, dns.server)).signatures, []);
});

for (const name of ['simple.eml', 'trailing-whitespace.eml']) {
  describe(`Mail::DKIM signatures on ${name}`, () => {
    let signed: Buffer;
    before(async () => {
      signed = await signWithMailDkim(fixture(name), ['dkim', 'dk'], { domain: DOMAIN, selector: 'default', key: rsa });
    });

    test('both verifiers pass DKIM, Mail::DKIM passes DomainKeys', async () => {
      const perl = await verifyWithMailDkim(signed, dns.server);
      assert.deepEqual(verdicts(perl), [['dkim', 'pass'], ['dk', 'pass']]);
      for (const s of perl.signatures) {
        assert.equal(s.domain, DOMAIN);
        assert.equal(s.selector, 'default');
      }
      assert.deepEqual(perl.signatures.map((s) => s.algorithm), ['rsa-sha256', 'rsa-sha1']);
      const python = await verifyWithDkimpy(signed, dns.server);
      assert.deepEqual(verdicts(python), [['dkim', 'pass']]);
      assert.equal(python.signatures[0]?.domain, DOMAIN);
      assert.equal(python.signatures[0]?.algorithm, 'rsa-sha256');
    });

    for (const [what, where] of [['a body byte', bodyStart], ['the Subject', subjectStart]] as const) {
      test(`changing ${what} fails under both verifiers`, async () => {
        const tampered = flipLetterAfter(signed, where(signed));
        assert.notDeepEqual(tampered, signed);
        assert.deepEqual(verdicts(await verifyWithMailDkim(tampered, dns.server)), [['dkim', 'fail'], ['dk', 'fail']]);
        assert.deepEqual(verdicts(await verifyWithDkimpy(tampered, dns.server)), [['dkim', 'fail']]);
      });
    }
  });
}

describe('the verdict depends on the key in DNS', () => {
  test('a signature by a key other than the published one fails', async () => {
    const signed = await signWithMailDkim(fixture('simple.eml'), ['dkim', 'dk'], {
      domain: DOMAIN,
      selector: 'default',
      key: makeRsaKey(),
    });
    assert.deepEqual(verdicts(await verifyWithMailDkim(signed, dns.server)), [['dkim', 'fail'], ['dk', 'fail']]);
    assert.deepEqual(verdicts(await verifyWithDkimpy(signed, dns.server)), [['dkim', 'fail']]);
  });

  test('a selector with no key record is not a pass', async () => {
    const signed = await signWithMailDkim(fixture('simple.eml'), ['dkim', 'dk'], {
      domain: DOMAIN,
      selector: 'unpublished',
      key: rsa,
    });
    assert.deepEqual(verdicts(await verifyWithMailDkim(signed, dns.server)), [['dkim', 'invalid'], ['dk', 'invalid']]);
    assert.deepEqual(verdicts(await verifyWithDkimpy(signed, dns.server)), [['dkim', 'invalid']]);
  });
});

describe('ed25519-sha256 (RFC 8463), signed by dkimpy', () => {
  let signed: Buffer;
  before(async () => {
    signed = await signWithDkimpy(fixture('trailing-whitespace.eml'), { domain: DOMAIN, selector: 'ed', key: ed25519 });
  });

  test('dkimpy passes it with the raw-key record from test/helpers/keys.ts', async () => {
    const report = await verifyWithDkimpy(signed, dns.server);
    assert.deepEqual(verdicts(report), [['dkim', 'pass']]);
    assert.equal(report.signatures[0]?.algorithm, 'ed25519-sha256');
  });

  test('dkimpy fails it when a body byte changes', async () => {
    const tampered = flipLetterAfter(signed, bodyStart(signed));
    assert.deepEqual(verdicts(await verifyWithDkimpy(tampered, dns.server)), [['dkim', 'fail']]);
  });
});

test('both verifiers pass an rsa-sha256 signature made by dkimpy', async () => {
  const signed = await signWithDkimpy(fixture('simple.eml'), { domain: DOMAIN, selector: 'default', key: rsa });
  assert.deepEqual(verdicts(await verifyWithMailDkim(signed, dns.server)), [['dkim', 'pass']]);
  assert.deepEqual(verdicts(await verifyWithDkimpy(signed, dns.server)), [['dkim', 'pass']]);
});
