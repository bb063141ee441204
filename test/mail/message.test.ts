import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeFileSync, mkdtempSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrlfNormalizer, bufferSource, normalisedMessage, openMessage } from '../../src/mail/message.ts';

const norm = (...chunks: string[]): string => {
  const n = new CrlfNormalizer();
  return chunks.map((c) => n.push(Buffer.from(c, 'latin1')).toString('latin1')).join('') + n.end().toString('latin1');
};

test('LF, CRLF and bare CR all become CRLF', () => {
  assert.equal(norm('a\nb\r\nc\rd\n'), 'a\r\nb\r\nc\r\nd\r\n');
  assert.equal(norm('\r\r\n\n'), '\r\n\r\n\r\n');
});

test('a CRLF split across chunks stays one line end', () => {
  assert.equal(norm('a\r', '\nb\n'), 'a\r\nb\r\n');
  assert.equal(norm('a\r', 'b\n'), 'a\r\nb\r\n');
  assert.equal(norm('a\r', '', '\n'), 'a\r\n');
});

test('a partial final line is completed, an empty message stays empty', () => {
  assert.equal(norm('a\nb'), 'a\r\nb\r\n');
  assert.equal(norm(''), '');
  assert.equal(norm('x\r'), 'x\r\n');
});

test('8-bit bytes and NUL pass untouched', () => {
  const bytes = Buffer.from([0xc3, 0xa9, 0x00, 0xff, 0x0a]);
  assert.deepEqual(normalisedMessage(bufferSource(bytes)), Buffer.from([0xc3, 0xa9, 0x00, 0xff, 0x0d, 0x0a]));
});

test('normalising byte by byte gives the same bytes as at once', () => {
  const text = 'H: v\r\n\r\nline\rnext\n\r\n.dot\r\r\nend';
  const whole = norm(text);
  assert.equal(norm(...text.split('')), whole);
});

test('a regular file is read again from the start on every pass', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'msg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'm');
  writeFileSync(path, 'a\nb\n');
  const fd = openSync(path, 'r');
  const source = await openMessage(fd);
  const first = Buffer.concat([...source.chunks()]).toString();
  const second = Buffer.concat([...source.chunks()]).toString();
  assert.equal(first, 'a\nb\n');
  assert.equal(second, first);
  source.close();
  closeSync(fd);
});
