// bin/qmail-dkverify runs three bundles: dist/qmail-dkverify.cjs, the entry, which every
// message reads; dist/qmail-dkverify-check.cjs, the checks, which only a verification reads, in
// the worker thread that the entry stops at the deadline; and dist/qmail-dkverify-mailauth.cjs,
// mailauth and its dependencies, which the checks require. None holds the delivery path or the
// admin commands, and the parts of mailauth a verification never calls are loaded on first use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DIST = new URL('../../dist/', import.meta.url);
const inputs: Record<string, string[]> = JSON.parse(readFileSync(new URL('qmail-dkverify.inputs.json', DIST), 'utf8'));
const main = inputs['qmail-dkverify.cjs'] ?? [];
const check = inputs['qmail-dkverify-check.cjs'] ?? [];
const mailauth = inputs['qmail-dkverify-mailauth.cjs'] ?? [];
const packagesOf = (paths: string[]): Set<string> =>
  new Set(paths.flatMap((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? []));

test('the entry bundle holds the verify path but not the checks; the check bundle holds them; neither a package', () => {
  const sources = main.filter((path) => path.startsWith('src/'));
  assert.ok(sources.includes('src/verify/qmail-dkverify.ts'));
  assert.ok(!sources.includes('src/verify/check.ts'));
  assert.ok(!sources.includes('src/verify/mailauth-checks.ts'));
  const checks = check.filter((path) => path.startsWith('src/'));
  assert.ok(checks.includes('src/verify/check.ts'));
  assert.ok(checks.includes('src/verify/mailauth-checks.ts'));
  const outside = [...sources, ...checks].filter((path) => !/^src\/(verify|mail|canon|common)\//.test(path));
  assert.deepEqual(outside, []);
  assert.deepEqual([...packagesOf(main), ...packagesOf(check)], []);
});

test('mailauth is in its own bundle, without its signer entry, BIMI, joi, or the admin and delivery packages', () => {
  assert.ok(mailauth.includes('node_modules/mailauth/lib/dkim/verify.js'));
  assert.deepEqual(mailauth.filter((path) => path.startsWith('src/')), ['src/verify/mailauth-joi.ts'], 'of ours only the stand-in for joi');
  for (const path of ['node_modules/mailauth/lib/mailauth.js', 'node_modules/mailauth/lib/bimi/index.js', 'node_modules/mailauth/lib/dkim/sign.js']) {
    assert.ok(!mailauth.includes(path), path);
  }
  const packages = packagesOf(mailauth);
  for (const name of ['joi', 'yargs', 'fast-glob', 'winston', 'smtp-server', 'undici', '@postalsys/vmc', 'fast-xml-parser', 'commander']) {
    assert.ok(!packages.has(name), name);
  }
});

test('the checks require the mailauth bundle, not import(): no ES loader scan of its exports', () => {
  const bundle = readFileSync(new URL('qmail-dkverify-check.cjs', DIST), 'utf8');
  assert.match(bundle, /require\("\.\/qmail-dkverify-mailauth\.cjs"\)/);
  assert.doesNotMatch(bundle, /import\("/);
});

test('what a verification never calls stays out of the file and is loaded on first use', () => {
  const lazy = ['tldts', 'iconv-lite', 'encoding-japanese'];
  for (const name of ['node:https', ...lazy]) assert.ok(mailauth.includes(`lazy:${name}`), name);
  const packages = packagesOf(mailauth);
  for (const name of lazy) assert.ok(!packages.has(name), name);
});

test('loading every mailauth part loads none of them; they resolve from where mailauth is', () => {
  const script = `
    const parts = require(${JSON.stringify(fileURLToPath(new URL('qmail-dkverify-mailauth.cjs', DIST)))});
    for (const name of ['dkimVerify', 'spf', 'arc', 'evaluateDmarc']) if (typeof parts[name] !== 'function') throw new Error(name);
    const loaded = () => [...Object.keys(require.cache).flatMap((path) => /node_modules\\/(tldts|iconv-lite|encoding-japanese)\\//.exec(path)?.[1] ?? []),
      ...process.moduleLoadList.filter((name) => name === 'NativeModule https')];
    const before = [...new Set(loaded())];
    require('node:module').createRequire(require.resolve('mailauth/package.json'))('tldts');
    console.log(JSON.stringify({ before, after: [...new Set(loaded())] }));`;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: fileURLToPath(DIST), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { before: [], after: ['tldts'] });
});
