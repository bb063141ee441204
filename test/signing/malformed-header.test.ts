// Header sections with a line that is neither a field nor a continuation. Verifiers do not
// agree where such a header ends: Mail::DKIM reads on to the empty line, dkimpy refuses the
// message, mailauth stops elsewhere, so a signature made by any one reading fails under
// another. We send these unsigned, with a note for the log, rather than a signature some
// receivers would see fail; the bytes go out exactly as normalised. A field with white space
// before its colon (obsolete RFC 822 syntax) is no such line: Mail::DKIM and mailauth read it as
// we do, and dkimpy refuses that message whoever signs it, so it is signed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { bufferSource, normalisedMessage } from '../../src/mail/message.ts';
import { signMessage, STRAY_LINE_NOTE } from '../../src/signing/sign.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/verifiers.ts';
import { signWithMailDkim } from '../helpers/reference-signers.ts';
import { expectGolden } from '../helpers/golden.ts';
import type { TestKey } from '../helpers/keys.ts';

const FIXTURES = new URL('../fixtures/malformed-header/', import.meta.url);
const GOLDEN = new URL('../golden/', import.meta.url);
const RSA_KEY = new URL('../fixtures/keys/example.com/default', import.meta.url);
const TIME = 1700000000;
const SIGNED = new Set(['space-before-colon.eml']);

const pem = readFileSync(RSA_KEY);
const keyDir = mkdtempSync(join(tmpdir(), 'qrd-malformed-'));
const spki = createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' });
const record = `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
const referenceKey = { type: 'rsa', privateKey: createPrivateKey(pem), privateKeyPem: pem.toString(), txt: record } satisfies TestKey;
let dns: DnsServer;

before(async () => {
  mkdirSync(join(keyDir, 'example.com'));
  copyFileSync(RSA_KEY, join(keyDir, 'example.com', 'default'));
  dns = await startDns({ txt: [{ name: 'default._domainkey.example.com', text: record }] });
});

after(async () => {
  await dns?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

async function verdicts(wire: Buffer): Promise<{ perl: string[]; py: string[]; pyRefused: boolean; mailauth: string[] }> {
  const perl = (await verifyWithMailDkim(wire, dns.server)).signatures.filter((s) => s.type === 'dkim').map((s) => s.result);
  const pyReport = await verifyWithDkimpy(wire, dns.server);
  const mailauth = (await dkimVerify(wire, { resolver: async () => [[record]] })).results
    .filter((r: { signingDomain?: string }) => r.signingDomain === 'example.com')
    .map((r: { status: { result: string } }) => r.status.result);
  return { perl, py: pyReport.signatures.map((s) => s.result), pyRefused: pyReport.error !== undefined, mailauth };
}

const fixtures = readdirSync(FIXTURES).filter((name) => name.endsWith('.eml')).sort();

test('the set of malformed header sections', () => {
  assert.deepEqual(fixtures, ['8bit-name.eml', 'bare-cr-in-from.eml', 'colonless-line.eml', 'leading-continuation.eml',
    'no-blank-line.eml', 'space-before-colon.eml']);
});

for (const name of fixtures) {
  test(`${name}: ${SIGNED.has(name) ? 'signed, and every verifier that reads it passes' : 'sent unsigned, with a note, bytes unchanged'}`, async () => {
    const message = readFileSync(new URL(name, FIXTURES));
    const result = signMessage(bufferSource(message), { templates: [join(keyDir, '%/default')], qmailHome: '/', time: TIME });
    assert.ok(result.ok);
    const body = normalisedMessage(bufferSource(message));
    const wire = Buffer.concat([result.value.prefix, body]);
    expectGolden(new URL(`malformed-header-${name.replace(/\.eml$/, '')}.signed`, GOLDEN), wire);

    if (SIGNED.has(name)) {
      const seen = await verdicts(wire);
      assert.deepEqual(seen.perl, ['pass'], 'Mail::DKIM');
      assert.deepEqual(seen.mailauth, ['pass'], 'mailauth');
      assert.ok(seen.pyRefused, 'dkimpy refuses this message, whoever signed it');
      return;
    }
    assert.deepEqual(result.value.signatures, []);
    assert.deepEqual(result.value.notes, [STRAY_LINE_NOTE]);
    assert.ok(wire.equals(body), 'nothing added, nothing changed');
    // Why: a signature made as Mail::DKIM reads the header fails, or cannot be read, elsewhere.
    const referenceSigned = await signWithMailDkim(message, ['dkim'], { domain: 'example.com', selector: 'default', key: referenceKey });
    const seen = await verdicts(referenceSigned);
    assert.deepEqual(seen.perl, ['pass'], 'Mail::DKIM passes its own reading');
    const others = [...seen.mailauth, ...seen.py];
    assert.ok(seen.pyRefused || others.some((r) => r !== 'pass'), `another verifier disagrees: ${JSON.stringify(seen)}`);
  });
}
