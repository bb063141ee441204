// The stand-in for mailauth's MessageParser in the verify bundle (src/verify/mailauth-parser.ts):
// its scan for bare LFs gives mailauth's bytes for any input, chunk after chunk, and lets a
// chunk normalised to CRLF through as it is, whatever its size; where WebAssembly is off
// mailauth's scan does all of it; and mailauth's sources still use the scan as the stand-in
// expects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageParser as MailauthMessageParser } from 'mailauth/lib/dkim/message-parser.js';
import { LOOP_FROM_BYTES, MessageParser } from '../../src/verify/mailauth-parser.ts';
import { PIECE } from '../../src/canon/kernels.ts';
import { generator } from '../helpers/generator.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Each chunk's parts joined, and the byte the parser keeps for the next chunk. */
function scan(parser: MailauthMessageParser, chunks: readonly Buffer[]): Array<[string, number | undefined]> {
  return chunks.map((chunk) => [Buffer.concat([...parser.ensureLinebreaks(chunk)]).toString('latin1'), parser.lastByte]);
}

const PIECES = ['\r\n', '\r\n', '\r\n', '\n', '\r', 'a', 'bc d', '\r\r\n', '\n\n', '\t', '\0', '.'];

test('the same bytes as mailauth\'s scan, chunk after chunk, bare LFs and CRs, CRLFs split between chunks', () => {
  const next = generator(41);
  for (let round = 0; round < 400; round++) {
    let text = '';
    for (let i = next(50); i > 0; i--) text += PIECES[round % 3 === 0 ? next(3) : next(PIECES.length)];
    // Every other round long enough for chunks the loop looks at, short ones between them.
    const raw = Buffer.from(round % 2 === 0 || text === '' ? text : text.repeat(Math.ceil((3 * LOOP_FROM_BYTES) / text.length)), 'latin1');
    const chunks: Buffer[] = [];
    for (let at = 0; at < raw.length; ) {
      const size = chunks.length % 2 === 0 ? LOOP_FROM_BYTES + next(LOOP_FROM_BYTES) : 1 + next(20);
      chunks.push(raw.subarray(at, at + size));
      at += size;
    }
    assert.deepEqual(scan(new MessageParser(), chunks), scan(new MailauthMessageParser(), chunks), JSON.stringify(text));
  }
});

test('a chunk normalised to CRLF goes on as it is, in one part, larger than a piece of the loop too', () => {
  const line = Buffer.from('x'.repeat(75) + '\r\n');
  const lines = Buffer.concat(Array<Buffer>(Math.ceil(LOOP_FROM_BYTES / line.length)).fill(line));
  // A CRLF across the loop's piece boundary: the CR last in one piece, the LF first in the next.
  const big = Buffer.concat([Buffer.alloc(PIECE - 1, 'y'), Buffer.from('\r\n'), ...Array<Buffer>(5000).fill(line)]);
  // mailauth's scan would give the same, so it is made to refuse here: it must not be asked.
  const scanOfMailauth = Object.getOwnPropertyDescriptor(MailauthMessageParser.prototype, 'ensureLinebreaks');
  Object.defineProperty(MailauthMessageParser.prototype, 'ensureLinebreaks', {
    configurable: true,
    value: function* refuse(): Generator<Buffer> {
      yield* [];
      throw new Error('mailauth\'s scan was asked');
    },
  });
  try {
    for (const chunk of [lines, big]) {
      const parts = [...new MessageParser().ensureLinebreaks(chunk)];
      assert.equal(parts.length, 1);
      assert.equal(parts[0], chunk, 'the very buffer');
    }
  } finally {
    Object.defineProperty(MailauthMessageParser.prototype, 'ensureLinebreaks', scanOfMailauth as PropertyDescriptor);
  }
  const parser = new MessageParser();
  assert.deepEqual(scan(parser, [big, Buffer.from('\nz\n')]), scan(new MailauthMessageParser(), [big, Buffer.from('\nz\n')]));
});

test('a chunk shorter than the loop looks at (a header section) goes through mailauth\'s scan', () => {
  let asked = 0;
  const scanOfMailauth = Object.getOwnPropertyDescriptor(MailauthMessageParser.prototype, 'ensureLinebreaks') as PropertyDescriptor;
  Object.defineProperty(MailauthMessageParser.prototype, 'ensureLinebreaks', {
    configurable: true,
    value: function* counted(this: MailauthMessageParser, input: Buffer): Generator<Buffer> {
      asked += 1;
      yield* (scanOfMailauth.value as (input: Buffer) => Generator<Buffer>).call(this, input);
    },
  });
  try {
    const header = Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\n');
    assert.deepEqual([...new MessageParser().ensureLinebreaks(header)], [header]);
    assert.equal(asked, 1);
  } finally {
    Object.defineProperty(MailauthMessageParser.prototype, 'ensureLinebreaks', scanOfMailauth);
  }
});

// Of the build in dist/ (`npm test` builds it first): Node strips TypeScript with WebAssembly.
test('where WebAssembly is off, mailauth\'s scan does the work', () => {
  const script = `
    import { MessageParser } from ${JSON.stringify(join(ROOT, 'dist/verify/mailauth-parser.js'))};
    const parser = new MessageParser();
    const parts = [...parser.ensureLinebreaks(Buffer.from('a\\r\\nb\\nc\\r'))].map((part) => part.toString('latin1'));
    process.stdout.write(JSON.stringify([typeof WebAssembly, parts.join(''), parser.lastByte]));`;
  const child = spawnSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout), ['undefined', 'a\r\nb\r\nc\r', 13]);
});

test('mailauth\'s DKIM verifier extends the parser it requires, which scans every chunk it is written', () => {
  const source = (path: string): string => readFileSync(join(ROOT, 'node_modules/mailauth', path), 'utf8');
  const verifier = source('lib/dkim/dkim-verifier.js');
  assert.match(verifier, /const \{ MessageParser \} = require\('\.\/message-parser'\);/);
  assert.match(verifier, /class DkimVerifier extends MessageParser \{/);
  assert.doesNotMatch(verifier, /ensureLinebreaks|lastByte/, 'the verifier leaves the scan to the parser');
  const parser = source('lib/dkim/message-parser.js');
  assert.match(parser, /for \(let partialChunk of this\.ensureLinebreaks\(chunk\)\) \{/);
  // The rule the stand-in's check rests on: a CR goes before an LF that no CR precedes, and
  // nothing else changes.
  assert.match(parser, /if \(c === 0x0a && this\.lastByte !== 0x0d\) \{/);
  assert.match(parser, /this\.lastByte = c;/);
});

test('the verify bundle gives the DKIM verifier the stand-in', () => {
  const text = readFileSync(join(ROOT, 'dist', 'qmail-dkverify-mailauth.cjs'), 'utf8');
  const verifier = text.slice(text.indexOf('// node_modules/mailauth/lib/dkim/dkim-verifier.js'));
  assert.match(verifier.slice(0, 2000), /\{ MessageParser: \w+ \} = \(init_mailauth_parser\(\), __toCommonJS\(mailauth_parser_exports\)\)/);
});
