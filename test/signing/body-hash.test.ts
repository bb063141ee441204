// bh= for bodies whose last line has no line end. The normaliser completes the line with
// CRLF (RFC 6376 §3.4.4 adds it to the relaxed body anyway), so these must hash exactly as the
// same body with its CRLF, however the message is split into chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { signMessage } from '../../src/signing/sign.ts';
import type { MessageSource } from '../../src/mail/message.ts';

const KEYS = fileURLToPath(new URL('../fixtures/keys/', import.meta.url));
const HEAD = 'From: alice@example.com\nSubject: bh\n\n';

/** The message in chunks of `size` bytes: a final line can be split anywhere. */
function chunked(text: string, size: number): MessageSource {
  const data = Buffer.from(text, 'latin1');
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return { chunks: () => chunks, close: () => undefined };
}

function bodyHash(message: string, size = Infinity): string {
  const result = signMessage(chunked(message, Math.min(size, message.length || 1)), {
    templates: [`${KEYS}%/default`], qmailHome: '/', time: 1700000000,
  });
  assert.ok(result.ok && result.value.signatures.length > 0);
  const bh = /bh=([^;]+);/.exec(result.value.prefix.toString('latin1').replace(/\r\n[ \t]/g, ''))?.[1];
  assert.ok(bh);
  return bh.replace(/\s/g, '');
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'latin1').digest('base64');

const cases: Array<[string, string]> = [
  // body as in the queue file, relaxed canonical body
  ['abc', 'abc\r\n'],
  ['abc \t', 'abc\r\n'],
  ['line one\nline two', 'line one\r\nline two\r\n'],
  ['a\n\n\nb', 'a\r\n\r\n\r\nb\r\n'],
  ['text\r', 'text\r\n'],
  ['\n\n   ', ''],
  [' ', ''],
  ['.', '.\r\n'],
];

for (const [body, canonical] of cases) {
  test(`a body of ${JSON.stringify(body)} without a final line end hashes as ${JSON.stringify(canonical)}`, () => {
    const expected = sha256(canonical);
    for (const size of [Infinity, 1, 2, 3, 7]) {
      assert.equal(bodyHash(HEAD + body, size), expected, `chunks of ${size}`);
    }
    assert.equal(bodyHash(HEAD + body + '\n'), expected, 'the same as with its line end');
  });
}
