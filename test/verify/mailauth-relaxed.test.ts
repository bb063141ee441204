// The stand-in for mailauth's RelaxedHash in the verify bundle (src/verify/mailauth-relaxed.ts)
// against mailauth's own class: the same hash and the same counts, for bodies normalised to
// CRLF as qmail-dkverify hands them over, in chunks cut anywhere, with and without an l= limit,
// with a MIME boundary to find; the same where WebAssembly is off; and the uses mailauth's
// files make of the class, read from their sources, so that an upgrade asking more fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RelaxedHash as MailauthRelaxedHash } from 'mailauth/lib/dkim/body/relaxed.js';
import { RelaxedHash } from '../../src/verify/mailauth-relaxed.ts';
import { generator } from '../helpers/generator.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Hasher {
  setContentType(contentType: { value: string; params: { boundary?: string } }): void;
  update(chunk: Buffer | null, final?: boolean): void;
  digest(encoding: 'base64'): string;
  getMimeStructureStart(): number;
  byteLength: number;
  canonicalizedLength: number;
  bodyHashedBytes: number;
}

/** What mailauth's verifier reads of a hasher, after feeding it `chunks`. */
function outcome(hasher: Hasher, chunks: readonly Buffer[], boundary?: string): Record<string, unknown> {
  if (boundary !== undefined) hasher.setContentType({ value: 'multipart/mixed', params: { boundary } });
  for (const chunk of chunks) hasher.update(Buffer.from(chunk));
  const hash = hasher.digest('base64');
  return {
    hash,
    mimeStructureStart: hasher.getMimeStructureStart(),
    byteLength: hasher.byteLength,
    canonicalizedLength: hasher.canonicalizedLength,
    bodyHashedBytes: hasher.bodyHashedBytes,
  };
}

// Normalised text: every line end a CRLF. White space runs, trailing white space, empty lines
// (at the end too), control bytes and 8-bit bytes, and a boundary line now and then.
const PIECES = [' ', '\t', '  \t ', 'a', 'b.', '.', '\r\n', '\r\n', '\r\n\r\n', ' \r\n', '\t\r\n', 'x y', '\xe9', '\0', '\x0b',
  'abcdefghijklm', 'nopq rstuvwxyz0123456789', '\r\n--b1\r\n', '--b1 \r\n'];

function body(next: (n: number) => number, pieces: number): Buffer {
  let text = '';
  for (let i = 0; i < pieces; i++) text += PIECES[next(PIECES.length)];
  return Buffer.from(text, 'latin1');
}

function cutAt(raw: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < raw.length; at += size) chunks.push(raw.subarray(at, at + size));
  return chunks;
}

test('the same hash and counts as mailauth\'s RelaxedHash, in any chunks, with and without l=', () => {
  const next = generator(23);
  for (let round = 0; round < 300; round++) {
    const raw = body(next, next(60));
    const limit = [undefined, '', false, 0, 1, next(raw.length + 3), raw.length, raw.length * 2][round % 8] as number | string | false | undefined;
    const algorithm = round % 3 === 0 ? 'sha1' : 'rsa-sha256';
    const boundary = round % 4 === 0 ? 'b1' : undefined;
    const expected = outcome(new MailauthRelaxedHash(algorithm, limit), [raw], boundary);
    for (const size of [raw.length || 1, 1, 2, 3, 7, 17, 64]) {
      const got = outcome(new RelaxedHash(algorithm, limit), cutAt(raw, size), boundary);
      assert.deepEqual(got, expected, `round ${round}, chunks of ${size}, l=${String(limit)}: ${JSON.stringify(raw.toString('latin1'))}`);
    }
  }
});

test('a body larger than one piece of the loop', () => {
  const next = generator(29);
  const raw = Buffer.concat(Array.from({ length: 20000 }, () => body(next, 20)));
  for (const limit of [undefined, 100_000, raw.length - 5]) {
    const expected = outcome(new MailauthRelaxedHash('sha256', limit), cutAt(raw, 65536));
    assert.deepEqual(outcome(new RelaxedHash('sha256', limit), cutAt(raw, 65536)), expected);
    assert.deepEqual(outcome(new RelaxedHash('sha256', limit), cutAt(raw, 9973)), expected);
  }
});

test('hashers that share the loop, fed in turn as mailauth\'s verifier feeds them, each get their own hash', () => {
  const next = generator(31);
  const raw = Buffer.concat(Array.from({ length: 3000 }, () => body(next, 20)));
  const ours = [new RelaxedHash('sha256'), new RelaxedHash('sha1', 5000), new RelaxedHash('sha256', 77)];
  const theirs = [new MailauthRelaxedHash('sha256'), new MailauthRelaxedHash('sha1', 5000), new MailauthRelaxedHash('sha256', 77)];
  for (const chunk of cutAt(raw, 40000)) for (const hasher of [...ours, ...theirs]) hasher.update(Buffer.from(chunk));
  assert.deepEqual(ours.map((h) => h.digest('base64')), theirs.map((h) => h.digest('base64')));
});

// Of the build in dist/ (`npm test` builds it first): Node strips TypeScript with WebAssembly.
test('where WebAssembly is off, mailauth\'s own class answers', () => {
  const script = `
    import { RelaxedHash } from ${JSON.stringify(join(ROOT, 'dist/verify/mailauth-relaxed.js'))};
    import { RelaxedHash as Theirs } from 'mailauth/lib/dkim/body/relaxed.js';
    const raw = Buffer.from('a  b \\r\\n\\t x\\r\\n\\r\\n', 'latin1');
    const run = (h) => { h.update(raw); const hash = h.digest('base64'); return [hash, h.byteLength, h.canonicalizedLength, h.bodyHashedBytes]; };
    process.stdout.write(JSON.stringify([typeof WebAssembly, run(new RelaxedHash('sha256', 5)), run(new Theirs('sha256', 5))]));`;
  const child = spawnSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const [wasm, ours, theirs] = JSON.parse(child.stdout) as [string, unknown, unknown];
  assert.equal(wasm, 'undefined', 'no WebAssembly under --jitless');
  assert.deepEqual(ours, theirs);
});

test('mailauth makes a RelaxedHash only through lib/dkim/body/index.js, with (algorithm, l=), and reads no more of it than the stand-in has', () => {
  const source = (path: string): string => readFileSync(join(ROOT, 'node_modules/mailauth', path), 'utf8');
  const index = source('lib/dkim/body/index.js');
  assert.match(index, /const \{ RelaxedHash \} = require\('\.\/relaxed'\);/);
  assert.match(index, /return new RelaxedHash\(\.\.\.options\);/);
  assert.match(index, /const dkimBody = \(canonicalization, \.\.\.options\) =>/);
  const verifier = source('lib/dkim/dkim-verifier.js');
  // Every call of dkimBody passes (canonicalization, algorithm, l=).
  const calls = [...verifier.matchAll(/dkimBody\(([^()]*)\)/g)].map((m) => (m[1] ?? '').split(',').length);
  assert.ok(calls.length > 0 && calls.every((n) => n === 3), String(calls));
  // What it reads and calls on a hasher.
  const read = new Set([...verifier.matchAll(/bodyHasher\?\.(\w+)|bodyHashes\.get\(\w+\)\.(\w+)|(?:hasher|bodyHash)\.(\w+)\(/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? ''));
  assert.deepEqual([...read].sort(), ['byteLength', 'bodyHashedBytes', 'canonicalizedLength', 'digest', 'getMimeStructureStart', 'hash', 'mimeStructureStart', 'setContentType', 'update'].sort());
  const stand = new RelaxedHash('sha256') as unknown as Record<string, unknown>;
  for (const name of read) assert.ok(name === 'hash' || name === 'mimeStructureStart' || name in stand, name);
});

test('the verify bundle gives mailauth the stand-in, and mailauth\'s class only to the stand-in', () => {
  const inputs = JSON.parse(readFileSync(join(ROOT, 'dist', 'qmail-dkverify.inputs.json'), 'utf8')) as Record<string, string[]>;
  const bundled = inputs['qmail-dkverify-mailauth.cjs'] ?? [];
  assert.ok(bundled.includes('src/verify/mailauth-relaxed.ts'));
  const text = readFileSync(join(ROOT, 'dist', 'qmail-dkverify-mailauth.cjs'), 'utf8');
  // esbuild names each module's scope after its path: mailauth's body index requires ours.
  const index = text.slice(text.indexOf('// node_modules/mailauth/lib/dkim/body/index.js'));
  assert.match(index.slice(0, 600), /\{ RelaxedHash: \w+ \} = \(init_mailauth_relaxed\(\), __toCommonJS\(mailauth_relaxed_exports\)\)/);
});
