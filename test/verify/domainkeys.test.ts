// Our DomainKeys verifier against Perl's Mail::DKIM, the reference the issue names: on every
// message signed here (by Mail::DKIM and by our signer, nofws and simple) and on copies
// changed in ways each canonicalization does or does not tolerate, both must say pass, or
// both must not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HeadReader, type Head } from '../../src/mail/header.ts';
import { bufferSource, normalisedMessage } from '../../src/mail/message.ts';
import { DomainKeysCheck, verifyDomainKeys, type DkResult } from '../../src/verify/domainkeys.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeRsaKey } from '../helpers/keys.ts';
import { signWithMailDkim } from '../helpers/reference-signers.ts';
import { verifyWithMailDkim } from '../helpers/verifiers.ts';
import { crlf, MESSAGE, ownSign } from './signers.ts';

const rsa = makeRsaKey(1024);
const rsaP = rsa.txt.replace(/^.*p=/, '');
let dns: DnsServer;

before(async () => {
  dns = await startDns({
    txt: [
      { name: 'default._domainkey.example.com', text: `k=rsa; p=${rsaP}` },
      { name: 'user._domainkey.example.com', text: `k=rsa; g=us*r; p=${rsaP}` },
      { name: 'other._domainkey.example.com', text: `k=rsa; g=postmaster; p=${rsaP}` },
    ],
  });
});

after(async () => {
  await dns?.stop();
});

async function ours(message: Buffer): Promise<DkResult> {
  const normal = normalisedMessage(bufferSource(message));
  const reader = new HeadReader();
  const body = reader.push(normal);
  const head = (reader.head ?? reader.end()) as Head;
  const check = new DomainKeysCheck(head);
  check.body(body ?? Buffer.alloc(0));
  if (check.done) return check.done;
  try {
    return check.finish({ records: await dns.resolver().resolveTxt(check.keyName) });
  } catch {
    return check.finish({ error: 'nokey' });
  }
}

async function theirs(message: Buffer): Promise<string> {
  const report = await verifyWithMailDkim(message, dns.server);
  return report.signatures.find((signature) => signature.type === 'dk')?.result ?? 'none';
}

const edit = (message: Buffer, from: string | RegExp, to: string): Buffer => {
  const edited = Buffer.from(message.toString('latin1').replace(from, to), 'latin1');
  assert.notDeepEqual(edited, message, `the edit ${String(from)} applies`);
  return edited;
};

const EDITS: [string, (m: Buffer) => Buffer][] = [
  ['as signed', (m) => m],
  ['white space inside a body line', (m) => edit(m, '  this is the body', 'this  is the  body')],
  ['a header refolded', (m) => edit(m, 'Subject: verify me', 'Subject: verify\r\n  me')],
  ['body text changed', (m) => edit(m, 'this is the body', 'this is a body')],
  ['empty lines appended', (m) => Buffer.concat([m, Buffer.from('\r\n\r\n\r\n')])],
  ['a field added on top', (m) => Buffer.concat([Buffer.from('X-Top: 1\r\n'), m])],
  ['From changed to another domain', (m) => edit(m, 'user@example.com', 'user@example.org')],
  ['From changed within the domain', (m) => edit(m, 'user@example.com', 'someone@example.com')],
];

for (const [signer, sign] of [
  ['Mail::DKIM (nofws)', (m: Buffer) => signWithMailDkim(m, ['dk'], { domain: 'example.com', selector: 'default', key: rsa })],
  ['our signer, nofws', async (m: Buffer) => ownSign(m, rsa, 'example.com', 'nofws')],
  ['our signer, simple', async (m: Buffer) => ownSign(m, rsa, 'example.com', 'simple')],
] as const) {
  test(`DomainKeys: ${signer}: our verdict and Mail::DKIM's agree on every edit`, async () => {
    const signed = await sign(MESSAGE);
    const verdicts: string[] = [];
    for (const [name, change] of EDITS) {
      const message = change(signed);
      const mine = await ours(message);
      const perl = await theirs(message);
      assert.equal(mine.result === 'pass', perl === 'pass', `${name}: ours ${mine.result} (${mine.comment}), Mail::DKIM ${perl}`);
      verdicts.push(`${name}: ${mine.result}`);
    }
    // The verdicts themselves, so a verifier that always agreed by failing would not pass.
    assert.equal(verdicts[0], 'as signed: pass');
    assert.equal(verdicts[3], 'body text changed: fail');
  });
}

test('DomainKeys g= granularity: a matching local part passes, another fails, as Mail::DKIM says', async () => {
  for (const [selector, expected] of [['user', 'pass'], ['other', 'fail']] as const) {
    const signed = await signWithMailDkim(MESSAGE, ['dk'], { domain: 'example.com', selector, key: rsa });
    assert.equal((await ours(signed)).result, expected, selector);
    assert.equal(await theirs(signed) === 'pass', expected === 'pass', `Mail::DKIM on ${selector}`);
  }
});

test('DomainKeys identity: Sender: wins over From:; one added above the signature does not count; one outside d= is G', async () => {
  const withSender = crlf(MESSAGE.toString('latin1').replace('To: rcpt', 'Sender: list@example.com\nTo: rcpt'));
  const signed = await signWithMailDkim(withSender, ['dk'], { domain: 'example.com', selector: 'default', key: rsa });
  const result = await ours(signed);
  assert.equal(result.result, 'pass');
  assert.deepEqual(result.identity, { header: 'sender', address: 'list@example.com' });
  const foreignSender = Buffer.concat([Buffer.from('Sender: list@example.org\r\n'), await signWithMailDkim(MESSAGE, ['dk'], { domain: 'example.com', selector: 'default', key: rsa })]);
  const above = await ours(foreignSender);
  assert.equal(above.result, 'pass');
  assert.deepEqual(above.identity, { header: 'from', address: 'user@example.com' });
  assert.equal(await theirs(foreignSender), 'pass');
  const foreignBelow = await signWithMailDkim(
    crlf(MESSAGE.toString('latin1').replace('To: rcpt', 'Sender: list@example.org\nTo: rcpt')), ['dk'],
    { domain: 'example.com', selector: 'default', key: rsa });
  const below = await ours(foreignBelow);
  // libdomainkeys' dk_end(): a sending domain that is not d= nor below it is DK_STAT_SYNTAX.
  assert.equal(below.letter, 'G', 'a signed Sender: outside d=');
  assert.notEqual(await theirs(foreignBelow), 'pass');
});

test("the demo's check still answers pass / fail (why) / none", () => {
  const signed = ownSign(MESSAGE, rsa);
  const record = `k=rsa; p=${rsaP}`;
  assert.equal(verifyDomainKeys(signed, record), 'pass');
  assert.match(verifyDomainKeys(edit(signed, 'this is the body', 'x'), record), /^fail \(signature does not verify\)$/);
  assert.equal(verifyDomainKeys(MESSAGE, record), 'none');
});
