// Our relaxed body canonicalizer against mailauth's RelaxedHash, the reference: every fixture,
// generated bodies full of white space and empty lines, each fed whole, in odd chunk sizes and
// byte by byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { RelaxedHash } from 'mailauth/lib/dkim/body/relaxed.js';
import { RelaxedBodyHash } from '../../src/canon/dkim-body.ts';
import { CrlfNormalizer } from '../../src/mail/message.ts';
import { generator } from '../helpers/generator.ts';

const reference = (body: Buffer): string => {
  const hash = new RelaxedHash('sha256');
  hash.update(body);
  return hash.digest('base64');
};

function ours(body: Buffer, chunkSize: number): string {
  const hash = new RelaxedBodyHash('sha256');
  for (let i = 0; i < body.length; i += chunkSize) hash.update(body.subarray(i, i + chunkSize));
  return hash.digest();
}

function normalise(text: Buffer): Buffer {
  const n = new CrlfNormalizer();
  return Buffer.concat([n.push(text), n.end()]);
}

function check(name: string, body: Buffer): void {
  const expected = reference(body);
  for (const size of [body.length || 1, 1, 2, 3, 7, 64, 4096]) assert.equal(ours(body, size), expected, `${name}, chunks of ${size}`);
}

test('known values: the empty body is the null string', () => {
  assert.equal(ours(Buffer.alloc(0), 1), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  assert.equal(ours(Buffer.from('\r\n\r\n \t \r\n'), 1), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
});

test('every fixture body', () => {
  const dir = new URL('../fixtures/', import.meta.url);
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.eml'))) {
    const message = normalise(readFileSync(new URL(name, dir)));
    const at = message.indexOf('\r\n\r\n');
    check(name, at === -1 ? Buffer.alloc(0) : message.subarray(at + 4));
  }
});

test('generated bodies of spaces, tabs, empty and blank lines', () => {
  const next = generator(42);
  const pieces = [' ', '\t', '  ', 'a', 'b.', '\r\n', '\r\n', '\r\n\r\n', ' \r\n', '\t\r\n', 'x y', '\xe9'];
  for (let round = 0; round < 300; round++) {
    let text = '';
    const length = next(40);
    for (let i = 0; i < length; i++) text += pieces[next(pieces.length)];
    if (!text.endsWith('\r\n') && text !== '') text += '\r\n';
    check(`round ${round}: ${JSON.stringify(text)}`, Buffer.from(text, 'latin1'));
  }
});
