// Signing takes the body through one WebAssembly loop per chunk (src/canon/body.ts); where
// WebAssembly is off (node --jitless) the JavaScript canonicalizers do it. Both must give the
// same signature fields byte for byte, for every fixture and however the message arrives in
// chunks: the head may end anywhere in a chunk, a CR may end the chunk the head ends in.
// Both runs are of the build in dist/ (`npm test` builds it first): Node strips TypeScript
// with WebAssembly, so TypeScript does not run under --jitless.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SIGN = new URL('../../dist/signing/sign.js', import.meta.url);
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const KEYS = fileURLToPath(new URL('../fixtures/keys/', import.meta.url));
const SIZES = [1, 2, 3, 17, 64, 1 << 20];

// Every fixture, and variants with bare CR and with CRLF line ends, at every chunk size.
const SCRIPT = `
import { readFileSync, readdirSync } from 'node:fs';
import { signMessage } from ${JSON.stringify(SIGN.href)};
const chunked = (message, size) => ({
  *chunks() { for (let at = 0; at < message.length; at += size) yield message.subarray(at, at + size); },
  close() {},
});
const out = [];
for (const name of readdirSync(${JSON.stringify(FIXTURES)}).filter((n) => n.endsWith('.eml')).sort()) {
  const lf = readFileSync(${JSON.stringify(FIXTURES)} + name);
  const text = lf.toString('latin1');
  for (const message of [lf, Buffer.from(text.replace(/\\n/g, '\\r'), 'latin1'), Buffer.from(text.replace(/\\n/g, '\\r\\n'), 'latin1')]) {
    for (const size of ${JSON.stringify(SIZES)}) {
      const result = signMessage(chunked(message, size), { templates: [${JSON.stringify(KEYS)} + '%/default'], qmailHome: '/', time: 1700000000 });
      out.push(result.ok ? result.value.prefix.toString('latin1') : 'failed: ' + result.error.code);
    }
  }
}
process.stdout.write(JSON.stringify({ webAssembly: typeof WebAssembly !== 'undefined', out }));
`;

function run(flags: string[]): { webAssembly: boolean; out: string[] } {
  const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', SCRIPT], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as { webAssembly: boolean; out: string[] };
}

test('the WebAssembly pass and the JavaScript canonicalizers sign every fixture alike, in chunks of any size', () => {
  assert.ok(existsSync(SIGN), 'dist/ is missing: run `npm run build` first');
  const wasm = run([]);
  const javascript = run(['--jitless']);
  assert.equal(wasm.webAssembly, true);
  assert.equal(javascript.webAssembly, false);
  assert.equal(wasm.out.length, javascript.out.length);
  assert.ok(wasm.out.filter((fields) => fields.includes('DomainKey-Signature:')).length > 100, 'most cases are signed with both');
  for (let i = 0; i < wasm.out.length; i++) assert.equal(wasm.out[i], javascript.out[i], `case ${i}`);
  // Every chunking of one message gives the same fields as the first.
  for (let i = 0; i < wasm.out.length; i += SIZES.length) {
    for (let j = 1; j < SIZES.length; j++) assert.equal(wasm.out[i + j], wasm.out[i], `case ${i} in chunks of ${SIZES[j]}`);
  }
});
