// The stand-in for tldts in the verify bundle (src/verify/mailauth-tldts.ts) is safe only while
// what it feeds is read by nobody: mailauth's files ask tldts for the registrable domain in
// getAlignment alone, the bundled files call getAlignment only for the DKIM verifier's
// `status.aligned` mark, and neither DMARC nor qmail-dkverify reads that mark. These tests read
// the sources that hold each of those facts, so an upgrade of mailauth that changes one fails
// here; test/verify/qmail-dkverify.test.ts shows DMARC's relaxed alignment at work end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as standIn from '../../src/verify/mailauth-tldts.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const inputs: Record<string, string[]> = JSON.parse(readFileSync(join(ROOT, 'dist', 'qmail-dkverify.inputs.json'), 'utf8'));
const bundled = (inputs['qmail-dkverify-mailauth.cjs'] ?? []).filter((path) => path.startsWith('node_modules/'));
const source = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const TOOLS = 'node_modules/mailauth/lib/tools.js';

/** The text of `const name = (...) => {` up to the first line that closes it at the margin. */
function arrowFunction(text: string, name: string): string {
  const start = text.indexOf(`const ${name} = `);
  assert.ok(start >= 0, `${name} not found`);
  const end = text.indexOf('\n};\n', start);
  assert.ok(end > start, `${name} has no end`);
  return text.slice(start, end + 3);
}

test('the stand-in finds no registrable domain, and gives nothing else', () => {
  assert.deepEqual(Object.keys(standIn), ['getDomain']);
  assert.equal(standIn.getDomain(), null);
});

test('mailauth\'s bundled files ask tldts for getDomain in getAlignment, and for nothing anywhere else', () => {
  // (mailauth's package.json, bundled for its version, names tldts as a dependency)
  for (const path of bundled.filter((p) => p !== TOOLS && p.endsWith('.js'))) assert.doesNotMatch(source(path), /\btldts\b/, path);
  const tools = source(TOOLS);
  const uses = [...tools.matchAll(/\btldts\b(\.\w+)?/g)].map((m) => m[0]);
  assert.deepEqual(uses, ['tldts', 'tldts', 'tldts.getDomain', 'tldts.getDomain'], 'required once, then getDomain twice');
  assert.match(tools, /const tldts = require\('tldts'\);/);
  assert.equal([...arrowFunction(tools, 'getAlignment').matchAll(/tldts\.getDomain\(/g)].length, 2, 'both calls in getAlignment');
});

test('of the bundled files only the DKIM verifier calls getAlignment, and only for the status.aligned mark', () => {
  const callers = bundled.filter((path) => path !== TOOLS && /\bgetAlignment\(/.test(source(path)));
  assert.deepEqual(callers, ['node_modules/mailauth/lib/dkim/dkim-verifier.js']);
  const calls = [...source(callers[0] ?? '').matchAll(/^.*\bgetAlignment\(.*$/gm)].map((m) => m[0].trim());
  assert.equal(calls.length, 1);
  assert.match(calls[0] ?? '', /^status\.aligned = getAlignment\(/);
  const tools = source(TOOLS);
  assert.equal([...tools.matchAll(/\bgetAlignment\(/g)].length, 0, 'tools.js defines it and does not call it');
});

test('mailauth\'s DMARC does not read an aligned mark, and our sources read none', () => {
  for (const path of bundled.filter((p) => p.startsWith('node_modules/mailauth/lib/dmarc/'))) {
    // What it reads as `aligned` is its own: the lists findAligned() returns, named spf and dkim.
    for (const [line = '', owner] of source(path).matchAll(/^.*?(\w+|\))\.aligned\b.*$/gm)) {
      assert.ok(owner === 'spf' || owner === 'dkim' || /\(await findAligned\([^()]*\)\)\.aligned/.test(line), `${path}: ${line.trim()}`);
    }
  }
  const ours = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? ours(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
    );
  // (code only: the comments that explain the mark name it)
  for (const path of ours('src')) assert.doesNotMatch(source(path).replace(/\/\/.*$/gm, ''), /\.aligned\b|\baligned:(?!\s*_)/, path);
});
