import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeadReader, fieldValue, type Head } from '../../src/mail/header.ts';

function read(text: string, chunkSize = Infinity): { head: Head; body: string } {
  const reader = new HeadReader();
  const data = Buffer.from(text, 'latin1');
  let body: string | null = null;
  for (let i = 0; i < data.length; i += Math.min(chunkSize, data.length)) {
    const rest = reader.push(data.subarray(i, i + Math.min(chunkSize, data.length)));
    if (rest !== null) body = (body ?? '') + rest.toString('latin1');
  }
  const head = reader.head ?? reader.end();
  return { head, body: body ?? '' };
}

test('fields, folding and the separator', () => {
  const { head, body } = read('A: 1\r\nB: 2\r\n\tmore\r\n\r\nbody\r\n');
  assert.deepEqual(head.fields.map((f) => f.name), ['A', 'B']);
  assert.equal(head.fields[1]?.raw.toString(), 'B: 2\r\n\tmore\r\n');
  assert.equal(fieldValue(head.fields[1]!).toString(), ' 2\tmore');
  assert.equal(head.hasSeparator, true);
  assert.equal(head.strayLine, false);
  assert.equal(body, 'body\r\n');
});

test('the same head when fed one byte at a time', () => {
  const text = 'From: a@b\r\nSubject: x\r\n y\r\n\r\n\r\nbody\r\n';
  const whole = read(text);
  const bytewise = read(text, 1);
  assert.deepEqual(bytewise.head.fields.map((f) => f.raw.toString()), whole.head.fields.map((f) => f.raw.toString()));
  assert.equal(bytewise.body, whole.body);
  assert.equal(whole.body, '\r\nbody\r\n');
});

test('a message of headers only has no separator and no body', () => {
  const { head, body } = read('From: a@b\r\nSubject: x\r\n');
  assert.equal(head.hasSeparator, false);
  assert.equal(head.strayLine, false, 'the message simply ended');
  assert.equal(head.fields.length, 2);
  assert.equal(body, '');
});

test('a line that is not a field starts the body without a separator', () => {
  const { head, body } = read('From: a@b\r\nthis is text\r\nmore\r\n');
  assert.equal(head.hasSeparator, false);
  assert.equal(head.strayLine, true, 'flagged: verifiers read such a line differently');
  assert.deepEqual(head.fields.map((f) => f.key), ['from']);
  assert.equal(body, 'this is text\r\nmore\r\n');
});

test('duplicate names, odd spacing and 8-bit bytes are kept as they are', () => {
  const { head } = read('Subject: one\r\nSUBJECT : two\r\nX-8: caf\xe9\r\n\r\n');
  assert.deepEqual(head.fields.map((f) => f.key), ['subject', 'subject', 'x-8']);
  assert.equal(head.fields[2]?.raw.toString('latin1'), 'X-8: caf\xe9\r\n');
});

test('a stray line is flagged however the chunks fall, and a folded field is not one', () => {
  for (const text of [' leading fold\r\nFrom: a@b\r\n\r\n', 'From: a@b\r\nX-Caf\xe9: 1\r\n\r\n', 'From: a@b\r\n(c)\r\nTo: c@d\r\n\r\n']) {
    assert.equal(read(text).head.strayLine, true, JSON.stringify(text));
    assert.equal(read(text, 1).head.strayLine, true, JSON.stringify(text));
  }
  assert.equal(read('From: a@b\r\n (c)\r\n\r\nbody\r\n', 3).head.strayLine, false);
});
