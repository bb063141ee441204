import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DotStuffer } from '../../src/delivery/transparency.ts';

async function stuffed(chunks: string[]): Promise<string> {
  const stuffer = new DotStuffer();
  const out = chunks.map((c) => Buffer.from(stuffer.stuff(Buffer.from(c, 'latin1'))));
  return Buffer.concat([...out, stuffer.end()]).toString('latin1');
}

test('a dot at a line start is doubled, the message ends with CRLF . CRLF', async () => {
  assert.equal(await stuffed(['.a\r\nb\r\n..c\r\n.\r\n']), '..a\r\nb\r\n...c\r\n..\r\n.\r\n');
  assert.equal(await stuffed(['a.b\r\n']), 'a.b\r\n.\r\n');
  assert.equal(await stuffed([]), '.\r\n');
});

test('line starts split across chunks are found', async () => {
  assert.equal(await stuffed(['a\r\n', '.b\r\n']), 'a\r\n..b\r\n.\r\n');
  assert.equal(await stuffed(['a\r', '\n.b\r\n']), 'a\r\n..b\r\n.\r\n');
  assert.equal(await stuffed(['a', '.b\r\n']), 'a.b\r\n.\r\n');
});

test('byte by byte gives the same bytes', async () => {
  const text = '.x\r\n\r\n..\r\n a\r\n.\r\n';
  assert.equal(await stuffed(text.split('')), await stuffed([text]));
});

test('a last line without CRLF is ended before the dot', async () => {
  assert.equal(await stuffed(['abc']), 'abc\r\n.\r\n');
});

test('line ends are normalised in the same pass: LF and bare CR become CRLF, a CRLF split across chunks stays one', async () => {
  assert.equal(await stuffed(['a\n.b\r.c\r', '\n.d']), 'a\r\n..b\r\n..c\r\n..d\r\n.\r\n');
  assert.equal(await stuffed(['a\r']), 'a\r\n.\r\n');
});
