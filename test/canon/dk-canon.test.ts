// DomainKeys canonicalization, RFC 4870 §3.4, on hand-checked examples. The independent check
// is Mail::DKIM verifying our signatures (test/signing/sign-verify.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DkCanonicalizer, type DkCanonicalization } from '../../src/canon/dk.ts';
import { HeadReader } from '../../src/mail/header.ts';

function canonical(algorithm: DkCanonicalization, message: string, chunkSize = Infinity): string {
  const reader = new HeadReader();
  const data = Buffer.from(message, 'latin1');
  const out: Buffer[] = [];
  const canon = new DkCanonicalizer(algorithm, (b) => out.push(Buffer.from(b)));
  const bodyChunks: Buffer[] = [];
  let headDone = false;
  for (let i = 0; i < data.length; i += Math.min(chunkSize, data.length)) {
    const chunk = data.subarray(i, i + Math.min(chunkSize, data.length));
    if (headDone) {
      bodyChunks.push(chunk);
      continue;
    }
    const body = reader.push(chunk);
    if (body !== null) {
      headDone = true;
      bodyChunks.push(body);
    }
  }
  const head = reader.head ?? reader.end();
  for (const field of head.fields) canon.header(field);
  if (head.hasSeparator) canon.separator();
  for (const chunk of bodyChunks) canon.body(chunk);
  canon.end();
  return Buffer.concat(out).toString('latin1');
}

const cases: Array<[string, string, string, string]> = [
  // [name, message, nofws, simple]
  ['plain', 'From: a@b\r\n\r\nhi there\r\n', 'From:a@b\r\n\r\nhithere\r\n', 'From: a@b\r\n\r\nhi there\r\n'],
  ['folded header unfolded under nofws', 'Subject: a b\r\n\tc d\r\n\r\nx\r\n', 'Subject:abcd\r\n\r\nx\r\n', 'Subject: a b\r\n\tc d\r\n\r\nx\r\n'],
  ['empty body leaves no separator', 'From: a@b\r\n\r\n', 'From:a@b\r\n', 'From: a@b\r\n'],
  ['body of blank lines is empty', 'From: a@b\r\n\r\n\r\n\r\n', 'From:a@b\r\n', 'From: a@b\r\n'],
  ['whitespace-only trailing lines vanish under nofws only', 'F: x\r\n\r\na\r\n \t\r\n\r\n', 'F:x\r\n\r\na\r\n', 'F: x\r\n\r\na\r\n \t\r\n'],
  ['inner blank lines are kept', 'F: x\r\n\r\na\r\n\r\n\r\nb\r\n\r\n', 'F:x\r\n\r\na\r\n\r\n\r\nb\r\n', 'F: x\r\n\r\na\r\n\r\n\r\nb\r\n'],
  ['leading blank body lines are kept', 'F: x\r\n\r\n\r\nb\r\n', 'F:x\r\n\r\n\r\nb\r\n', 'F: x\r\n\r\n\r\nb\r\n'],
  ['headers only', 'F: x\r\nG: y\r\n', 'F:x\r\nG:y\r\n', 'F: x\r\nG: y\r\n'],
  ['8-bit kept', 'F: caf\xe9\r\n\r\n\xe9t\xe9 \r\n', 'F:caf\xe9\r\n\r\n\xe9t\xe9\r\n', 'F: caf\xe9\r\n\r\n\xe9t\xe9 \r\n'],
];

for (const [name, message, nofws, simple] of cases) {
  test(`nofws and simple: ${name}`, () => {
    assert.equal(canonical('nofws', message), nofws);
    assert.equal(canonical('simple', message), simple);
  });
  test(`the same result fed one byte at a time: ${name}`, () => {
    assert.equal(canonical('nofws', message, 1), nofws);
    assert.equal(canonical('simple', message, 1), simple);
  });
}
