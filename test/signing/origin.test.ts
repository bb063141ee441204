// The entry mark and the claims read back from qmail-dkverify's field, in process: what the
// writer (src/verify/auth-results.ts) says is what the reader (src/signing/origin.ts) finds,
// and what strangers put in a field neither passes for a mark nor costs more than its bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authResultsField, type Results } from '../../src/verify/auth-results.ts';
import { claimsOf, originOf, authenticatedOnEntry, type OriginOptions } from '../../src/signing/origin.ts';
import { entryFacts, markComment, splitMark } from '../../src/mail/entry-mark.ts';
import { bufferSource } from '../../src/mail/message.ts';
import { HeadReader, type Head } from '../../src/mail/header.ts';
import { sealIfForwarded } from '../../src/signing/seal.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const NOW = 1_800_000_000;
const OPTIONS: OriginOptions = { key: () => KEY, now: NOW, maxAge: 8 * 86400 };
const BODY = 'Hello.\r\n';

const results: Results = {
  dkim: [
    { letter: 'A', result: 'pass', d: 'bank.test', s: 'sel', a: 'rsa-sha256', b: 'abcdefgh' },
    { letter: 'F', result: 'fail', comment: 'body hash did not verify', d: 'example.com', s: 'x', a: 'rsa-sha256' },
  ],
  dk: { letter: 'J', result: 'none' },
  spf: { result: 'fail', smtp: { mailfrom: 'a@example.com' } },
  dmarc: { result: 'pass', header: { from: 'bank.test' }, policy: { 'published-domain-policy': 'reject' } },
  arc: { result: 'pass' },
};

function headOf(text: string): Head {
  const reader = new HeadReader();
  reader.push(Buffer.from(text, 'latin1'));
  return reader.head ?? reader.end();
}

/** A message as qmail-dkverify leaves it: our field with its mark on top. */
function entered(from = 'alice@bank.test', t = NOW - 60, body = BODY): string {
  const rest = `From: ${from}\r\nSubject: hi\r\n\r\n${body}`;
  const facts = entryFacts(bufferSource(Buffer.from(rest)), t);
  const field = authResultsField('mx.example.net', results, '\r\n', (value) => markComment(KEY, facts, value)).toString('latin1');
  return field + rest;
}

const originOfText = (text: string, options = OPTIONS) => originOf(headOf(text), bufferSource(Buffer.from(text, 'latin1')), options);

test('what qmail-dkverify writes, qmail-remote reads: dkim passes, dmarc pass, the arc result', () => {
  const origin = originOfText(entered());
  assert.equal(origin.kind, 'outside');
  if (origin.kind !== 'outside') return;
  assert.deepEqual(origin.claims, { dkimPass: ['bank.test'], dmarcPass: ['bank.test'], arc: 'pass' });
  assert.equal(origin.facts.sd, 'bank.test');
  assert.match(origin.results, /^mx\.example\.net;\r\n\tdkim=pass/);
  assert.doesNotMatch(origin.results, /entry v=1/);
  assert.ok(authenticatedOnEntry(origin.claims, 'mail.bank.test'), 'a pass for a parent domain counts');
  assert.ok(!authenticatedOnEntry(origin.claims, 'example.com'), 'a pass for another domain does not');
  assert.ok(!authenticatedOnEntry(origin.claims, 'evilbank.test'), 'nor one that only ends the same way');
});

test('claims: quoted values and comments with ; and = in them do not split a result', () => {
  const claims = claimsOf('id; dkim=pass (a comment; dkim=pass header.d=evil.test) header.d="bank.test"; dmarc=fail header.from=x.test; arc=fail (x=pass; y)');
  assert.deepEqual(claims, { dkimPass: ['bank.test'], dmarcPass: [], arc: 'fail' });
});

test('a mark is not believed when stale, from the future, forged, moved to another body, or without the key', () => {
  assert.equal(originOfText(entered('alice@bank.test', NOW - 9 * 86400)).kind, 'local', 'older than the queue lifetime and a day');
  assert.equal(originOfText(entered('alice@bank.test', NOW + 7200)).kind, 'local', 'from the future');
  const genuine = entered();
  assert.equal(originOfText(genuine.replace('dkim=fail', 'dkim=pass')).kind, 'local', 'a result changed');
  assert.equal(originOfText(genuine.replace('Hello.', 'Pay me.')).kind, 'local', 'another body');
  assert.equal(originOfText(genuine, { ...OPTIONS, key: () => Buffer.from('another key, just as long as it') }).kind, 'local', 'another key');
  const noKey = originOfText(genuine, { ...OPTIONS, key: () => null });
  assert.deepEqual(noKey, { kind: 'local', note: 'an entry mark, but no control/entrykey to check it with: local mail' });
  // Header fields added after entry (Received:, Delivered-To:) and the From: rewritten leave it good.
  const added = `Delivered-To: bob@example.com\r\n${genuine.replace('From: alice@bank.test', 'From: list@example.com')}`;
  const origin = originOfText(added);
  assert.equal(origin.kind, 'outside');
  assert.equal(origin.kind === 'outside' && origin.facts.sd, 'bank.test', 'the domain as it entered');
});

test('hostile fields: a huge field and thousands of marked fields are read within bounds', () => {
  const huge = `Authentication-Results: x; ${'('.repeat(500_000)}(entry v=1 t=1 sd=a bh=${'A'.repeat(44)} mac=${'B'.repeat(44)})\r\n`;
  assert.equal(splitMark(huge.slice(huge.indexOf(':') + 1))?.facts.t, 1, 'only the end is searched');
  const mark = `(entry v=1 t=${NOW} sd=a bh=${'A'.repeat(44)} mac=${'B'.repeat(44)})`;
  const many = `${`Authentication-Results: x; none ${mark}\r\n`.repeat(20_000)}From: a@b.test\r\n\r\nbody\r\n`;
  const origin = originOfText(many);
  assert.equal(origin.kind, 'local');
  assert.match(origin.kind === 'local' ? (origin.note ?? '') : '', /does not verify/);
});

test('a forward whose header mailauth\'s parsers are quadratic in is marked unsealable, and sealing says so', async () => {
  const folded = `X-Long: a\r\n${' b\r\n'.repeat(1500)}`;
  const text = entered().replace('Subject: hi\r\n', `Subject: hi\r\n${folded}`);
  // The mark was made over this body; the extra field only changes the head.
  const origin = originOfText(text);
  assert.equal(origin.kind, 'outside');
  assert.match(origin.kind === 'outside' ? (origin.unsealable ?? '') : '', /more than 1000 lines/);
  const sealed = await sealIfForwarded({ prefix: Buffer.alloc(0), signatures: [], notes: [], origin }, bufferSource(Buffer.from(text, 'latin1')), {
    templates: ['/nonexistent/%/default'], me: 'mx.example.com', qmailHome: '/', time: NOW,
  });
  assert.ok(sealed.ok);
  assert.deepEqual(sealed.value.notes, ['no ARC seal: a header field of more than 1000 lines']);
});
