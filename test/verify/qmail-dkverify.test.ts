// bin/qmail-dkverify end to end, run as qmail-smtpd runs it (see harness.ts), against keys,
// SPF and DMARC records served by a real dnsmasq. Each outcome is proved through DKVERIFY
// itself: with every letter but the expected ones in uppercase the message must still be
// queued, so the letters of the message are exactly those.
import { test, before, after } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeEd25519Key, makeRsaKey } from '../helpers/keys.ts';
import { signWithDkimpy, signWithMailDkim } from '../helpers/reference-signers.ts';
import { verifyWithMailDkim } from '../helpers/verifiers.ts';
import { DK_LETTERS, DKIM_LETTERS } from '../../src/verify/letters.ts';
import { addedField, asReceived, dkverify, ENVELOPE, recorder, type Run, type RunOptions } from './harness.ts';
import { crlf, mailauthSign, MESSAGE, ownSign } from './signers.ts';

const rsa = makeRsaKey(1024);
const ed = makeEd25519Key();
const rsaP = rsa.txt.replace(/^.*p=/, '');
const IP = '192.0.2.1';
let dns: DnsServer;

before(async () => {
  dns = await startDns({
    txt: [
      { name: 'default._domainkey.example.com', text: rsa.txt },
      { name: 'ed._domainkey.example.com', text: ed.txt },
      { name: 'revoked._domainkey.example.com', text: 'v=DKIM1; k=rsa; p=' },
      { name: 'testing._domainkey.example.com', text: `v=DKIM1; k=rsa; t=y; p=${rsaP}` },
      { name: 'badkey._domainkey.example.com', text: 'v=DKIM1; k=rsa; p=TUlJQmZvbw==' },
      { name: 'sha256only._domainkey.example.com', text: `v=DKIM1; k=rsa; h=sha256; p=${rsaP}` },
      { name: 'notemail._domainkey.example.com', text: `v=DKIM1; k=rsa; s=other; p=${rsaP}` },
      { name: 'edforrsa._domainkey.example.com', text: ed.txt },
      { name: 'default._domainkey.mail.example.com', text: rsa.txt },
      { name: 'default._domainkey.example.org', text: rsa.txt },
      { name: 'example.com', text: `v=spf1 ip4:${IP} -all` },
      { name: '_dmarc.example.com', text: 'v=DMARC1; p=reject' },
    ],
    a: [{ name: 'example.com', ip: IP }],
    timeout: ['slow.test'],
  });
});

after(async () => {
  await dns?.stop();
});

const all = (letters: object, except: string): string => Object.keys(letters).filter((l) => !except.includes(l)).join('');

function run(message: Buffer | string, options: RunOptions = {}): Promise<Run> {
  return dkverify(message, dns.server, { ...options, env: { TCPREMOTEIP: IP, ...options.env } });
}

/**
 * Runs with every other letter uppercase: the message is queued only if its DomainKeys letter
 * is `dk` and its DKIM letter `dkim`. Returns the added Authentication-Results, unfolded.
 */
async function expectLetters(message: Buffer, dk: string, dkim: string, options: RunOptions = {}): Promise<string> {
  const letters = `${all(DK_LETTERS, dk)},${all(DKIM_LETTERS, dkim)}`;
  const result = await run(message, { ...options, env: { ...options.env, DKVERIFY: letters } });
  if (result.status !== 0) {
    const shown = await run(message, { ...options, env: { ...options.env, DKVERIFY: '' } });
    assert.fail(`expected DomainKeys ${dk} and DKIM ${dkim}, exit ${result.status}; the header says: ${addedField(shown)}`);
  }
  assert.equal(result.stderr, '', 'nothing on fd 2');
  assert.ok(result.queued, 'the next program ran');
  assert.equal(result.queued.envelope.toString('latin1'), ENVELOPE, 'envelope passed on unchanged');
  return addedField(result);
}

// --- pass ---------------------------------------------------------------------------------

test('Mail::DKIM DomainKeys and DKIM signatures: A,A; dkim=pass, domainkeys=pass, spf=pass, dmarc=pass', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const field = await expectLetters(asReceived(signed), 'A', 'A');
  assert.match(field, /^Authentication-Results: mx\.example\.net; dkim=pass header\.d=example\.com header\.s=default header\.a=rsa-sha256 header\.b=\S{8}; /);
  assert.match(field, /; domainkeys=pass header\.d=example\.com header\.from=user@example\.com; /);
  assert.match(field, /; spf=pass \([^)]*\) smtp\.mailfrom=user@example\.com smtp\.helo=client\.example\.com; /);
  assert.match(field, /; dmarc=pass .*header\.from=example\.com/);
  assert.match(field, /; arc=none$/);
});

test('dkimpy ed25519 and RSA signatures pass', async () => {
  const once = await signWithDkimpy(MESSAGE, { domain: 'example.com', selector: 'ed', key: ed });
  const twice = await signWithDkimpy(once, { domain: 'example.com', selector: 'default', key: rsa });
  const field = await expectLetters(asReceived(twice), 'C', 'A');
  assert.match(field, /dkim=pass header\.d=example\.com header\.s=default header\.a=rsa-sha256 \S+; dkim=pass header\.d=example\.com header\.s=ed header\.a=ed25519-sha256/);
  assert.match(field, /domainkeys=none \(no DomainKey-Signature\)/);
});

test("this project's own signer (DKIM and DomainKeys nofws) passes", async () => {
  const field = await expectLetters(asReceived(ownSign(MESSAGE, rsa)), 'A', 'A');
  assert.match(field, /dkim=pass .*domainkeys=pass/);
});

test('the message goes on byte for byte below the added field', async () => {
  const message = asReceived(await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'default', key: rsa }));
  const result = await run(message, { env: { DKVERIFY: '' } });
  assert.equal(result.status, 0);
  const queued = result.queued?.message ?? Buffer.alloc(0);
  const field = /^Authentication-Results: [^\n]*\n(?:\t[^\n]*\n)*/.exec(queued.toString('latin1'))?.[0] ?? '';
  assert.ok(field.length > 0);
  assert.deepEqual(queued.subarray(Buffer.byteLength(field, 'latin1')), message);
  assert.doesNotMatch(field, /\r/, 'LF line ends, as in the queue');
});

// --- failures, one letter each ----------------------------------------------------------

test('tampered body: DomainKeys B, DKIM P; dkim=fail (body hash did not verify)', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const tampered = Buffer.from(signed.toString('latin1').replace('this is the body', 'this is another body'), 'latin1');
  const field = await expectLetters(asReceived(tampered), 'B', 'P');
  assert.match(field, /dkim=fail \(body hash did not verify\) header\.d=example\.com/);
  assert.match(field, /domainkeys=fail \(signature does not verify\)/);
  assert.match(field, /dmarc=pass/, 'SPF still aligns');
});

test('tampered signed header: DKIM D (bad signature)', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim'], { domain: 'example.com', selector: 'default', key: rsa });
  const tampered = Buffer.from(signed.toString('latin1').replace('Subject: verify me', 'Subject: verify you'), 'latin1');
  const field = await expectLetters(asReceived(tampered), 'C', 'D');
  assert.match(field, /dkim=fail \(bad signature\)/);
});

test('bad signature with a t=y key: DKIM E', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'testing', key: rsa });
  const tampered = Buffer.from(signed.toString('latin1').replace('Subject: verify me', 'Subject: changed'), 'latin1');
  const field = await expectLetters(asReceived(tampered), 'C', 'E');
  assert.match(field, /dkim=fail \(bad signature, test mode\)/);
});

test('unsigned: DomainKeys C, DKIM N; dkim=none, domainkeys=none', async () => {
  const field = await expectLetters(asReceived(MESSAGE), 'C', 'N');
  assert.match(field, /dkim=none \(message not signed\); domainkeys=none/);
});

test('revoked key (empty p=): DomainKeys J, DKIM I', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'revoked', key: rsa });
  const field = await expectLetters(asReceived(signed), 'J', 'I');
  assert.match(field, /dkim=permerror \(key revoked\)/);
  assert.match(field, /domainkeys=permerror \(key revoked\)/);
});

test('missing key (NXDOMAIN): DomainKeys D, DKIM L', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'missing', key: rsa });
  const field = await expectLetters(asReceived(signed), 'D', 'L');
  assert.match(field, /dkim=permerror \(no key for signature\)/);
  assert.match(field, /domainkeys=permerror \(no key\)/);
});

test('unusable key: DomainKeys E, DKIM M', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'badkey', key: rsa });
  await expectLetters(asReceived(signed), 'E', 'M');
});

test('DNS timeout on the key: DomainKeys F, DKIM K, temperror, never a pass', async () => {
  const slow = crlf(MESSAGE.toString('latin1').replace('user@example.com', 'user@slow.test'));
  const signed = await signWithMailDkim(slow, ['dkim', 'dk'], { domain: 'slow.test', selector: 'default', key: rsa });
  // Without TCPREMOTEIP SPF is not checked, so only the key lookups wait for their timeouts.
  const field = await expectLetters(asReceived(signed), 'F', 'K', { env: { TCPREMOTEIP: '' } });
  assert.match(field, /dkim=temperror .*domainkeys=temperror/);
});

test('the verification deadline (DKVERIFY_TIMEOUT) cuts a slow lookup short: F, K', async () => {
  const slow = crlf(MESSAGE.toString('latin1').replace('user@example.com', 'user@slow.test'));
  const signed = await signWithMailDkim(slow, ['dkim', 'dk'], { domain: 'slow.test', selector: 'default', key: rsa });
  const field = await expectLetters(asReceived(signed), 'F', 'K', { env: { DKVERIFY_TIMEOUT: '1' } });
  assert.match(field, /dkim=temperror \(verification deadline passed\)/);
  assert.match(field, /domainkeys=temperror \(verification deadline passed\)/);
});

test('two From: headers: DomainKeys G (syntax)', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const twice = crlf(signed.toString('latin1').replace('To: rcpt', 'From: other@example.org\nTo: rcpt'));
  await expectLetters(asReceived(twice), 'G', 'N');
});

test('a header section over 4 MB: DomainKeys H (no resources), and the message still goes on whole', async () => {
  const filler = Array.from({ length: 5000 }, (_, i) => `X-Filler-${i}: ${'x'.repeat(1000)}\n`).join('');
  const big = Buffer.concat([asReceived(MESSAGE).subarray(0, 0), Buffer.from(filler), asReceived(MESSAGE)]);
  await expectLetters(big, 'H', 'N');
});

test('expired signature (x= in 2001): DKIM F', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa, signTime: new Date('2001-01-01T00:00:00Z'), expires: new Date('2001-01-02T00:00:00Z') });
  const field = await expectLetters(asReceived(signed), 'C', 'F');
  assert.match(field, /dkim=neutral \(signature expired\)/);
});

test('a key record not for email (s=other): DKIM G', async () => {
  await expectLetters(asReceived(await mailauthSign(MESSAGE, { selector: 'notemail', key: rsa })), 'C', 'G');
});

test('i= outside d=: DKIM H', async () => {
  await expectLetters(asReceived(await mailauthSign(MESSAGE, { selector: 'default', key: rsa, identity: 'user@example.org' })), 'C', 'H');
});

test('d= too long to look up: DKIM J', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa });
  const long = `${'a'.repeat(70)}.example.com`;
  const edited = Buffer.from(signed.toString('latin1').replace('d=example.com', `d=${long}`), 'latin1');
  await expectLetters(asReceived(edited), 'C', 'J');
});

test('rsa-sha1 signature, key limited to h=sha256: DKIM Q', async () => {
  await expectLetters(asReceived(await mailauthSign(MESSAGE, { selector: 'sha256only', key: rsa, algorithm: 'rsa-sha1' })), 'C', 'Q');
});

test('v=2: DKIM R', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa });
  const edited = Buffer.from(signed.toString('latin1').replace('v=1;', 'v=2;'), 'latin1');
  const field = await expectLetters(asReceived(edited), 'C', 'R');
  assert.match(field, /dkim=permerror \(incompatible version\)/);
});

test('From not signed (h= without from): DKIM C', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa });
  const edited = Buffer.from(signed.toString('latin1').replace(/h=[^;]*;/, 'h=Subject:To;'), 'latin1');
  const field = await expectLetters(asReceived(edited), 'C', 'C');
  assert.match(field, /dkim=permerror \(From field not signed\)/);
});

test('an RSA signature over an ed25519 key: DKIM B', async () => {
  await expectLetters(asReceived(await mailauthSign(MESSAGE, { selector: 'edforrsa', key: rsa })), 'C', 'B');
});

test('l= longer than the body: DKIM P, as dkimpy says, no crash', async () => {
  // mailauth's signer writes the length it hashed, so the l= is raised afterwards.
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa, maxBodyLength: 100000 });
  const edited = Buffer.from(signed.toString('latin1').replace(/l=\d+;/, 'l=100000;'), 'latin1');
  assert.notDeepEqual(edited, signed);
  const field = await expectLetters(asReceived(edited), 'C', 'P');
  assert.match(field, /dkim=fail \(l= is longer than the body\)/);
});

test('l= within the body, text appended after signing: still a pass, as l= means, and marked as partial', async () => {
  const signed = await mailauthSign(MESSAGE, { selector: 'default', key: rsa, maxBodyLength: 8 });
  const appended = Buffer.concat([signed, Buffer.from('Appended later.\r\n')]);
  const field = await expectLetters(asReceived(appended), 'C', 'A');
  assert.match(field, /dkim=pass \(l=8 signs only part of the \d+-octet body\)/);
  const whole = await expectLetters(asReceived(await mailauthSign(MESSAGE, { selector: 'default', key: rsa })), 'C', 'A');
  assert.match(whole, /dkim=pass header\.d=/, 'a signature over the whole body carries no such mark');
});

test('a body of several of the loops\' pieces, white space everywhere, signed by Mail::DKIM and by dkimpy: A,A', async () => {
  // Runs of spaces and tabs, trailing white space, empty lines and dots at line starts, over
  // more than 1 MiB: mailauth's relaxed hash and its scan for bare LFs are the loops' here
  // (src/verify/mailauth-relaxed.ts, mailauth-parser.ts), sixteen bytes a step.
  const block = 'a  b\t\tc   d\n \t x \t y  \n.\n..dots\n\t\t\ne f  g\t\n\n . z\n' + `${'word '.repeat(14)}end\n`;
  const body = block.repeat(Math.ceil((1200 << 10) / block.length));
  const message = crlf(`From: User <user@example.com>\nTo: rcpt@example.net\nSubject: big\nMessage-ID: <big@example.com>\n\n${body}`);
  const opts = { domain: 'example.com', selector: 'default', key: rsa };
  const field = await expectLetters(asReceived(await signWithMailDkim(message, ['dkim', 'dk'], opts)), 'A', 'A');
  assert.match(field, /dkim=pass header\.d=example\.com/);
  await expectLetters(asReceived(await signWithDkimpy(message, opts)), 'C', 'A');
  // One byte of the body changed, past the first piece: the body hash no longer matches.
  const signed = (await signWithDkimpy(message, opts)).toString('latin1');
  const tampered = Buffer.from(signed.slice(0, signed.length - 300) + 'X' + signed.slice(signed.length - 299), 'latin1');
  assert.match(await expectLetters(asReceived(tampered), 'C', 'P'), /dkim=fail \(body hash did not verify\)/);
});

test('no line of the added field passes 998 octets, whatever the values (folded between parts)', async () => {
  const long = `${'d'.repeat(60)}.${'e'.repeat(60)}.example.com`;
  const sig = (i: number) => `DKIM-Signature: v=1; a=rsa-sha256; d=${long}; s=${'s'.repeat(60)}${i}; h=from; bh=AAAA; b=${'B'.repeat(300)}\n`;
  const message = asReceived(`${sig(1)}${sig(2)}${MESSAGE.toString('latin1').replace(/\r\n/g, '\n')}`);
  const result = await run(message, { env: { DKVERIFY: '' } });
  const queued = result.queued?.message.toString('latin1') ?? '';
  const head = queued.slice(0, queued.indexOf('\n\n'));
  const ours = head.slice(0, head.search(/\n(?![ \t])/) + 1);
  for (const line of ours.split('\n')) assert.ok(line.length <= 998, `${line.length}: ${line}`);
  assert.match(ours, /\n\theader\.d=d+\.e+\.example\.com\n\theader\.s=s+1/, 'long parts each on a line of their own');
});

test('header.from of DomainKeys is the address checked, not a quoted display name that looks like one', async () => {
  const spoof = MESSAGE.toString('latin1').replace(/^From: .*$/m, 'From: "<ceo@bank.test>" <user@example.com>');
  const signed = await signWithMailDkim(crlf(spoof.replace(/\r\n/g, '\n')), ['dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const field = await expectLetters(asReceived(signed), 'A', 'N');
  assert.match(field, /domainkeys=pass header\.d=example\.com header\.from=user@example\.com/);
  assert.doesNotMatch(field, /bank\.test/);
});

test('two author domains in From:, or two From: fields: dmarc=permerror, never none', async () => {
  for (const from of ['From: user@example.com, boss@bank.test', 'From: user@example.com\nFrom: boss@bank.test']) {
    const text = MESSAGE.toString('latin1').replace(/\r\n/g, '\n').replace(/^From: .*$/m, from);
    const result = await run(asReceived(text), { env: { DKVERIFY: '' } });
    assert.match(addedField(result), /dmarc=(permerror|fail)/, from);
  }
});

test('several signatures: A if any passes, else the topmost one decides', async () => {
  const good = await mailauthSign(MESSAGE, { selector: 'default', key: rsa });
  const bothBad = await mailauthSign(MESSAGE, { selector: 'revoked', key: rsa });
  const goodUnderBad = await mailauthSign(good, { selector: 'missing', key: rsa });
  await expectLetters(asReceived(goodUnderBad), 'C', 'A');
  const badUnderBad = await mailauthSign(bothBad, { selector: 'missing', key: rsa });
  const field = await expectLetters(asReceived(badUnderBad), 'C', 'L');
  assert.match(field, /dkim=permerror \(no key for signature\) header\.d=example\.com header\.s=missing .*dkim=permerror \(key revoked\) header\.d=example\.com header\.s=revoked/);
});

// --- hostile input ----------------------------------------------------------------------

test('hostile input: 50 signatures, invalid base64 in b=, NUL bytes, bare CR: a result, the message whole', async () => {
  let signed = MESSAGE;
  for (let i = 0; i < 50; i++) signed = Buffer.concat([Buffer.from(`DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=missing${i}; h=from; bh=AAAA; b=!!notbase64!!\r\n`), signed]);
  const withJunk = Buffer.concat([asReceived(signed), Buffer.from('NUL \0 here\rbare CR\n')]);
  const result = await run(withJunk, { env: { DKVERIFY: '' } });
  assert.equal(result.status, 0);
  assert.ok(result.queued?.message.subarray(-withJunk.length).equals(withJunk));
  // The first ten are checked (src/verify/bounds.ts), the rest counted in one entry.
  const field = addedField(result);
  assert.equal((field.match(/dkim=permerror/g) ?? []).length, 10);
  assert.match(field, /dkim=none \(40 more signatures not checked\)/);
});

test('hostile input: 10,000 header fields and a 1 MB header line', async () => {
  const fields = Array.from({ length: 10000 }, (_, i) => `X-H${i}: v\n`).join('');
  const message = Buffer.from(`${fields}X-Long: ${'y'.repeat(1 << 20)}\n${asReceived(MESSAGE).toString('latin1')}`, 'latin1');
  const result = await run(message, { env: { DKVERIFY: '' } });
  assert.equal(result.status, 0);
  assert.ok(result.queued?.message.subarray(-message.length).equals(message));
});

test('hostile input: a big message with no empty line after the head is checked and passed on whole', async () => {
  const lines = `${'z'.repeat(76)}\n`.repeat(40000);
  const message = Buffer.from(`${asReceived(MESSAGE).toString('latin1').replace('\n\n', '\n')}${lines}`, 'latin1');
  const result = await run(message, { env: { DKVERIFY: '' } });
  assert.equal(result.status, 0);
  assert.ok(result.queued?.message.subarray(-message.length).equals(message));
  assert.match(addedField(result), /dkim=none/);
});

test('hostile input: a DomainKey-Signature that is not a tag list, and a broken DKIM-Signature', async () => {
  const message = Buffer.from(`DomainKey-Signature: garbage\nDKIM-Signature: ;;;=\n${asReceived(MESSAGE).toString('latin1')}`, 'latin1');
  await expectLetters(message, 'G', 'C');
});

// --- DKVERIFY semantics ----------------------------------------------------------------

test('uppercase letter rejects (31), lowercase defers (71), absent accepts; nothing queued on 31/71', async () => {
  const message = asReceived(MESSAGE);
  const reject = await run(message, { env: { DKVERIFY: 'C,' } });
  assert.equal(reject.status, 31);
  assert.equal(reject.queued, undefined);
  const defer = await run(message, { env: { DKVERIFY: ',n' } });
  assert.equal(defer.status, 71);
  assert.equal(defer.queued, undefined);
  const both = await run(message, { env: { DKVERIFY: 'c,N' } });
  assert.equal(both.status, 31, 'a reject wins over a defer');
});

test('qmail-dk style DKVERIFY (DomainKeys letters, no comma) works', async () => {
  assert.equal((await run(asReceived(MESSAGE), { env: { DKVERIFY: 'DEGJK' } })).status, 0);
  assert.equal((await run(asReceived(MESSAGE), { env: { DKVERIFY: 'BC' } })).status, 31);
});

test('the bltweb recommendation DEGIJKfh,CGHIJMQRkl: revoked keys rejected, timeouts deferred, unsigned and bad signatures accepted', async () => {
  const env = { DKVERIFY: 'DEGIJKfh,CGHIJMQRkl' };
  assert.equal((await run(asReceived(MESSAGE), { env })).status, 0);
  const signed = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const tampered = Buffer.from(signed.toString('latin1').replace('this is the body', 'changed'), 'latin1');
  assert.equal((await run(asReceived(tampered), { env })).status, 0);
  const revoked = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'revoked', key: rsa });
  assert.equal((await run(asReceived(revoked), { env })).status, 31);
  const slow = crlf(MESSAGE.toString('latin1').replace('user@example.com', 'user@slow.test'));
  const slowSigned = await signWithMailDkim(slow, ['dkim'], { domain: 'slow.test', selector: 'default', key: rsa });
  assert.equal((await run(asReceived(slowSigned), { env: { ...env, DKVERIFY_TIMEOUT: '1' } })).status, 71);
});

test('empty DKVERIFY: verify and add the header, accept everything', async () => {
  const revoked = await signWithMailDkim(MESSAGE, ['dkim', 'dk'], { domain: 'example.com', selector: 'revoked', key: rsa });
  const result = await run(asReceived(revoked), { env: { DKVERIFY: '' } });
  assert.equal(result.status, 0);
  assert.match(addedField(result), /dkim=permerror/);
});

// The bundles run from the code cache the build trained (test/common/run-bundle.test.ts), which
// Node's compile cache does not handle; rules written for earlier releases may still set it.
test('NODE_COMPILE_CACHE, as older rules set it (docs/verify.md): the same result, silent; one it cannot write is no error', async () => {
  const signed = ownSign(MESSAGE, rsa);
  const cache = mkdtempSync(join(tmpdir(), 'dkverify-cache-'));
  try {
    const env = { DKVERIFY: '', NODE_COMPILE_CACHE: cache };
    const first = await run(asReceived(signed), { env });
    const second = await run(asReceived(signed), { env });
    for (const result of [first, second]) {
      assert.equal(result.status, 0);
      assert.equal(result.stderr, '');
      assert.match(addedField(result), /spf=pass/, 'the checks ran');
    }
    assert.equal(addedField(second), addedField(first));
    assert.ok(readdirSync(cache, { recursive: true }).length > 0, 'Node did keep what it compiled (the launcher)');
    // A path that cannot be a directory: no cache, and not a byte on fd 2 about it.
    const unwritable = await run(asReceived(signed), { env: { DKVERIFY: '', NODE_COMPILE_CACHE: '/dev/null/cache' } });
    assert.equal(unwritable.status, 0);
    assert.equal(unwritable.stderr, '');
    assert.equal(addedField(unwritable), addedField(first));
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('DKVERIFY unset or RELAYCLIENT set: no verification, message and envelope byte for byte', async () => {
  const message = asReceived(MESSAGE);
  for (const env of [{}, { DKVERIFY: 'ABCDEFGHIJK,ABCDEFGHIJKLMNOPQR', RELAYCLIENT: '' }] as Record<string, string>[]) {
    const result = await run(message, { env, queueExit: 0 });
    assert.equal(result.status, 0);
    assert.ok(result.queued?.message.equals(message));
    assert.equal(result.queued?.envelope.toString('latin1'), ENVELOPE);
  }
});

test('malformed DKVERIFY is a configuration error (81), never an accept-all', async () => {
  for (const DKVERIFY of ['A,B,C', 'Z', 'ab c', ',S', 'L,']) {
    const result = await run(asReceived(MESSAGE), { env: { DKVERIFY } });
    assert.equal(result.status, 81, DKVERIFY);
    assert.equal(result.queued, undefined);
  }
});

// --- Authentication-Results -------------------------------------------------------------

test('every Authentication-Results that came with the message is renamed, ours forged or another', async () => {
  const forged = 'Authentication-Results: MX.example.net;\n dkim=pass header.d=bank.example\n';
  const foreign = 'Authentication-Results: (comment) other.example; spf=pass\n';
  const message = Buffer.concat([asReceived(MESSAGE).subarray(0, 0), Buffer.from(forged + foreign), asReceived(MESSAGE)]);
  const result = await run(message, { env: { DKVERIFY: '' } });
  const queued = result.queued?.message.toString('latin1') ?? '';
  assert.match(queued, /\nX-Original-Authentication-Results: MX\.example\.net;\n dkim=pass header\.d=bank\.example\nX-Original-Authentication-Results: \(comment\) other\.example; spf=pass\n/);
  assert.equal((queued.match(/^Authentication-Results: mx\.example\.net;/gm) ?? []).length, 1, 'one field of ours');
});

test('DKVERIFY_AUTHSERVID names the authserv-id instead of control/me', async () => {
  const result = await run(asReceived(MESSAGE), { env: { DKVERIFY: '', DKVERIFY_AUTHSERVID: 'verify.example.net' } });
  assert.match(addedField(result), /^Authentication-Results: verify\.example\.net; /);
});

test('no TCPREMOTEIP (local injection): spf=none and dmarc=none, saying why', async () => {
  const result = await dkverify(asReceived(MESSAGE), dns.server, { env: { DKVERIFY: '' } });
  assert.match(addedField(result), /spf=none \(no client address: not received over SMTP\); dmarc=none \(no client address: not received over SMTP\)/);
});

test('DMARC relaxed alignment of DKIM: d= and the From: domain under one Organizational Domain pass, others fail', async () => {
  // The client is outside the SPF record, so DMARC can pass only through the DKIM signature.
  const client = '198.51.100.7';
  const cases = [
    { from: 'user@news.example.com', d: 'example.com', dmarc: /dmarc=pass [^;]*header\.from=news\.example\.com/ },
    { from: 'user@example.com', d: 'mail.example.com', dmarc: /dmarc=pass [^;]*header\.from=example\.com/ },
    { from: 'user@example.com', d: 'example.org', dmarc: /dmarc=fail [^;]*header\.from=example\.com/ },
  ];
  for (const { from, d, dmarc } of cases) {
    const message = crlf(MESSAGE.toString('latin1').replace(/\r\n/g, '\n').replace(/^From: .*$/m, `From: User <${from}>`));
    const signed = await mailauthSign(message, { selector: 'default', key: rsa, domain: d });
    const result = await run(asReceived(signed, client, 'helo.example.org'), { env: { DKVERIFY: '', TCPREMOTEIP: client } });
    const field = addedField(result);
    assert.match(field, new RegExp(`dkim=pass [^;]*header\\.d=${d.replaceAll('.', '\\.')}`), `${from}, d=${d}`);
    assert.match(field, /spf=fail/, `${from}, d=${d}`);
    assert.match(field, dmarc, `${from}, d=${d}: ${field}`);
  }
});

test('SPF fails for a client outside the record; the HELO from the Received line is used', async () => {
  const result = await run(asReceived(MESSAGE, '198.51.100.7', 'helo.example.org'), { env: { DKVERIFY: '', TCPREMOTEIP: '198.51.100.7' } });
  assert.match(addedField(result), /spf=fail \([^)]*\) smtp\.mailfrom=user@example\.com smtp\.helo=helo\.example\.org; dmarc=fail/);
});

// --- the qmail-queue contract -----------------------------------------------------------

test("the next program's exit status is ours, for every qmail-queue status", async () => {
  for (const status of [0, 11, 31, 51, 52, 53, 54, 55, 56, 61, 62, 63, 64, 65, 66, 71, 72, 73, 74, 75, 81, 91]) {
    for (const env of [{ DKVERIFY: '' }, {}] as Record<string, string>[]) {
      const result = await run(asReceived(MESSAGE), { env, queueExit: status });
      assert.equal(result.status, status, `next program exit ${status}, ${JSON.stringify(env)}`);
      assert.equal(result.stderr, '');
    }
  }
});

test('the next program cannot be run: 81', async () => {
  for (const env of [{ DKVERIFY: '' }, {}] as Record<string, string>[]) {
    const result = await run(asReceived(MESSAGE), { env: { ...env, DKQUEUE: '/nonexistent/qmail-queue' } });
    assert.equal(result.status, 81);
  }
});

test('the next program is what this process becomes (exec), with no Node waiting beside it', async () => {
  const passed = await run(asReceived(MESSAGE), { env: {} });
  const verified = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' } });
  assert.equal(passed.status, 0);
  assert.equal(passed.stderr, '');
  assert.deepEqual(passed.queued?.message, asReceived(MESSAGE), 'the message byte for byte');
  assert.equal(passed.queued?.loopMark, '1', 'the loop mark is set for an exec too');
  const [passParent, verifyParent] = [passed.queued?.parent, verified.queued?.parent];
  if (passParent === '' || verifyParent === '') return; // no /proc to ask
  assert.equal(passParent, 'sh', 'its parent is the shell that started qmail-dkverify');
  assert.equal(verifyParent, 'qmail-dkverify', 'its parent is the subshell of bin/qmail-dkverify that started Node');
  // Node ignores SIGPIPE and SIGXFSZ; the next program gets neither ignored, either way.
  assert.equal(passed.queued?.ignored, verified.queued?.ignored);
  assert.match(passed.queued?.ignored ?? '', /^0+$/);
});

test('the pass-through starts no Node when exec can start the next program; for one it cannot tell, Node decides', async () => {
  // Node, whenever it starts, leaves a mark.
  const preload = join(tmpdir(), `dkverify-node-mark-${process.pid}.cjs`);
  const mark = `${preload}.ran`;
  writeFileSync(preload, `require('node:fs').writeFileSync(${JSON.stringify(mark)}, '');\n`);
  const dir = mkdtempSync(join(tmpdir(), 'dkverify-pass-'));
  try {
    const env = { NODE_OPTIONS: `--require ${preload}` };
    for (const extra of [{}, { DKVERIFY: '', RELAYCLIENT: '' }] as Record<string, string>[]) {
      const result = await run(asReceived(MESSAGE), { env: { ...env, ...extra } });
      assert.equal(result.status, 0);
      assert.deepEqual(result.queued?.message, asReceived(MESSAGE));
      assert.equal(existsSync(mark), false, `no Node started, ${JSON.stringify(extra)}`);
    }
    // A script whose interpreter is a script itself: Node asks (and Linux runs it).
    const inner = join(dir, 'inner');
    writeFileSync(inner, '#!/bin/sh\nexec /bin/sh "$@"\n', { mode: 0o755 });
    const outer = join(dir, 'outer');
    writeFileSync(outer, `#!${inner}\nexec "$QUEUE"\n`, { mode: 0o755 });
    const deeper = await run(asReceived(MESSAGE), { env: { ...env, DKQUEUE: outer, QUEUE: recorder() } });
    assert.equal(deeper.status, 0, deeper.stderr);
    assert.deepEqual(deeper.queued?.message, asReceived(MESSAGE));
    assert.equal(existsSync(mark), true, 'Node was started for it');
  } finally {
    rmSync(preload, { force: true });
    rmSync(mark, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a verification loads neither node:child_process nor node:net: it starts no process and opens no socket of its own', async () => {
  // Node's list of the modules it loaded, written just before this process becomes the next program.
  const preload = join(tmpdir(), `dkverify-modules-${process.pid}.cjs`);
  const list = `${preload}.txt`;
  writeFileSync(preload, `const execve = process.execve; process.execve = (...args) => { require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')); return execve.apply(process, args); };\n`);
  try {
    const result = await run(asReceived(MESSAGE), { env: { DKVERIFY: '', NODE_OPTIONS: `--require ${preload}` } });
    assert.equal(result.status, 0, result.stderr);
    assert.match(addedField(result), /spf=pass/, 'the checks ran');
    const loaded = readFileSync(list, 'latin1').split('\n');
    assert.ok(loaded.includes('NativeModule crypto'), 'the list is the verification\'s');
    for (const name of ['NativeModule child_process', 'NativeModule net', 'NativeModule worker_threads']) assert.ok(!loaded.includes(name), name);
  } finally {
    rmSync(preload, { force: true });
    rmSync(list, { force: true });
  }
});

test('fd 2, shared with qmail-smtpd and its log, is left blocking: no stream is ever opened on it', async () => {
  // Node opens a stream on fd 2 the first time anything asks for process.stderr (its own
  // stream code does, to compare), and a stream on a pipe or socket sets O_NONBLOCK on the
  // open file description, which qmail-smtpd, tcpserver and their log writer share. The next
  // program, started while qmail-dkverify still runs, has the same fd 2 and reads its flags.
  const O_NONBLOCK = 0o4000;
  for (const env of [{ DKVERIFY: '' }, { DKVERIFY: '', TCPREMOTEIP: '' }] as Record<string, string>[]) {
    const result = await run(asReceived(MESSAGE), { env });
    const flags = result.queued?.stderrFlags ?? '';
    if (flags === '') return; // no /proc to ask
    assert.equal(Number.parseInt(flags, 8) & O_NONBLOCK, 0, `fd 2 flags ${flags}, ${JSON.stringify(env)}`);
  }
});

test('a next program that exec could not start is started as a child: 81 if it cannot run, nothing on fd 2', async () => {
  // Node aborts, with a trace on fd 2, when the execve system call fails: these must never get there.
  const dir = mkdtempSync(join(tmpdir(), 'dkverify-next-'));
  try {
    const noInterpreter = join(dir, 'no-interpreter');
    writeFileSync(noInterpreter, '#!/nonexistent/interpreter\nexit 0\n', { mode: 0o755 });
    const notExecutable = join(dir, 'not-executable');
    writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    for (const next of [noInterpreter, notExecutable, dir]) {
      for (const env of [{}, { DKVERIFY: '' }] as Record<string, string>[]) {
        const result = await run(asReceived(MESSAGE), { env: { ...env, DKQUEUE: next } });
        assert.equal(result.status, 81, `${next} ${JSON.stringify(env)}`);
        assert.equal(result.stderr, '', `${next} ${JSON.stringify(env)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without DKQUEUE the next program is $QMAILHOME/bin/qmail-queue', async () => {
  // QMAILHOME is the run's private directory, which has no qmail-queue in its bin: 81, not /var/qmail's.
  const result = await run(asReceived(MESSAGE), { env: { DKVERIFY: '', DKQUEUE: '' } });
  assert.equal(result.status, 81);
});

test('DKQUEUE naming this program is a configuration error (81), and so is a chain back to it', async () => {
  const { DKVERIFY_BIN } = await import('./harness.ts');
  const self = await run(asReceived(MESSAGE), { env: { DKVERIFY: '', DKQUEUE: DKVERIFY_BIN } });
  assert.equal(self.status, 81);
  const looped = await run(asReceived(MESSAGE), { env: { QMAILDKVERIFY_RUNNING: '1' } });
  assert.equal(looped.status, 81);
  const ok = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' } });
  assert.equal(ok.queued?.loopMark, '1', 'the next program is told it runs under qmail-dkverify');
});

test('envelope errors: no F is 91, a truncated envelope 54, and nothing is queued', async () => {
  const bad = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' }, envelope: 'Xuser@example.com\0\0' });
  assert.equal(bad.status, 91);
  assert.equal(bad.queued, undefined);
  const short = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' }, envelope: 'Fuser@example.com\0Trcpt@example.net\0' });
  assert.equal(short.status, 54);
  const junk = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' }, envelope: 'Fuser@example.com\0Xrcpt\0\0' });
  assert.equal(junk.status, 91);
});

test('no control/me and no DKVERIFY_AUTHSERVID: 55 (unable to read configuration)', async () => {
  const result = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' }, noMe: true });
  assert.equal(result.status, 55);
});

test('a null sender and several recipients pass through the envelope unchanged', async () => {
  const envelope = 'F\0Ta@example.net\0Tb@example.net\0\0';
  const result = await run(asReceived(MESSAGE), { env: { DKVERIFY: '' }, envelope });
  assert.equal(result.status, 0);
  assert.equal(result.queued?.envelope.toString('latin1'), envelope);
});

test('our DomainKeys verdict agrees with Mail::DKIM on the signed and tampered messages', async () => {
  const signed = await signWithMailDkim(MESSAGE, ['dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const tampered = Buffer.from(signed.toString('latin1').replace('this is the body', 'other'), 'latin1');
  for (const [message, expected] of [[signed, 'pass'], [tampered, 'fail'], [ownSign(MESSAGE, rsa), 'pass']] as const) {
    const perl = await verifyWithMailDkim(message, dns.server);
    const dk = perl.signatures.find((s) => s.type === 'dk');
    assert.equal(dk?.result, expected);
    const field = addedField(await run(asReceived(message), { env: { DKVERIFY: '' } }));
    assert.match(field, new RegExp(`domainkeys=${expected}`));
  }
});
