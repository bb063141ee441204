// bin/qmail-dkverify runs three bundles: dist/qmail-dkverify.cjs, the entry, which every
// message reads (the pass-through needs nothing more); dist/qmail-dkverify-check.cjs, the
// verifying path and its checks, which only a verification reads; and
// dist/qmail-dkverify-mailauth.cjs, mailauth and its dependencies, which the checks require. None holds the delivery path or the
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

test('the entry bundle holds the pass-through but not the verifying path; the check bundle holds that; neither a package', () => {
  const sources = main.filter((path) => path.startsWith('src/'));
  assert.ok(sources.includes('src/verify/qmail-dkverify.ts'));
  for (const path of ['src/verify/verify-queue.ts', 'src/verify/check.ts', 'src/verify/mailauth-checks.ts']) assert.ok(!sources.includes(path), path);
  const checks = check.filter((path) => path.startsWith('src/'));
  for (const path of ['src/verify/verify-queue.ts', 'src/verify/check.ts', 'src/verify/mailauth-checks.ts', 'src/verify/hand-over.ts']) assert.ok(checks.includes(path), path);
  const outside = [...sources, ...checks].filter((path) => !/^src\/(verify|mail|canon|common)\//.test(path));
  assert.deepEqual(outside, []);
  assert.deepEqual([...packagesOf(main), ...packagesOf(check)], []);
});

test('mailauth is in its own bundle, without its signer entry, BIMI, joi, or the admin and delivery packages', () => {
  assert.ok(mailauth.includes('node_modules/mailauth/lib/dkim/verify.js'));
  // The stand-ins for mailauth's RelaxedHash and MessageParser bring the loops they run on.
  const standIns = ['src/canon/body.ts', 'src/canon/kernels.ts', 'src/verify/mailauth-joi.ts', 'src/verify/mailauth-kernel.ts', 'src/verify/mailauth-net.ts',
    'src/verify/mailauth-parser.ts', 'src/verify/mailauth-relaxed.ts', 'src/verify/mailauth-tldts.ts'];
  assert.deepEqual(mailauth.filter((path) => path.startsWith('src/')).sort(), standIns, 'of ours only the stand-ins for joi, node:net, tldts, RelaxedHash and MessageParser');
  for (const path of ['node_modules/mailauth/lib/mailauth.js', 'node_modules/mailauth/lib/bimi/index.js', 'node_modules/mailauth/lib/dkim/sign.js']) {
    assert.ok(!mailauth.includes(path), path);
  }
  const packages = packagesOf(mailauth);
  for (const name of ['joi', 'yargs', 'fast-glob', 'winston', 'smtp-server', 'undici', '@postalsys/vmc', 'fast-xml-parser', 'commander']) {
    assert.ok(!packages.has(name), name);
  }
});

test('each bundle requires the next, not import(): no ES loader scan of its exports', () => {
  const entry = readFileSync(new URL('qmail-dkverify.cjs', DIST), 'utf8');
  assert.match(entry, /require\("\.\/qmail-dkverify-check\.cjs"\)/);
  const checks = readFileSync(new URL('qmail-dkverify-check.cjs', DIST), 'utf8');
  assert.match(checks, /require\("\.\/qmail-dkverify-mailauth\.cjs"\)/);
  for (const bundle of [entry, checks]) assert.doesNotMatch(bundle, /import\("/);
});

test('a verification starts no worker thread: the deadline is a watchdog process (bin/qmail-dkverify)', () => {
  for (const file of ['qmail-dkverify.cjs', 'qmail-dkverify-check.cjs', 'qmail-dkverify-mailauth.cjs']) {
    assert.doesNotMatch(readFileSync(new URL(file, DIST), 'utf8'), /worker_threads/, file);
  }
});

test('what a verification never calls stays out of the file and is loaded on first use; tldts is not there at all', () => {
  const lazy = ['iconv-lite', 'encoding-japanese'];
  for (const name of ['node:https', 'libmime/lib/mimetypes.js', ...lazy]) assert.ok(mailauth.includes(`lazy:${name}`), name);
  assert.ok(!mailauth.includes('node_modules/libmime/lib/mimetypes.js'), 'libmime\'s table of file types');
  const packages = packagesOf(mailauth);
  for (const name of [...lazy, 'tldts']) assert.ok(!packages.has(name), name);
  assert.ok(!mailauth.includes('lazy:tldts'));
  assert.ok(mailauth.includes('src/verify/mailauth-tldts.ts'), 'the stand-in for tldts');
});

test('loading every mailauth part loads none of them; they resolve from where mailauth is', () => {
  const script = `
    const parts = require(${JSON.stringify(fileURLToPath(new URL('qmail-dkverify-mailauth.cjs', DIST)))});
    for (const name of ['dkimVerify', 'spf', 'arc', 'evaluateDmarc']) if (typeof parts[name] !== 'function') throw new Error(name);
    const loaded = () => [...Object.keys(require.cache).flatMap((path) => /node_modules\\/(tldts|iconv-lite|encoding-japanese|libmime\\/lib\\/mimetypes)\\b/.exec(path)?.[1] ?? []),
      ...process.moduleLoadList.filter((name) => name === 'NativeModule https')];
    const before = [...new Set(loaded())];
    require('node:module').createRequire(require.resolve('mailauth/package.json'))('tldts');
    require('node:module').createRequire(require.resolve('libmime', { paths: [require.resolve('mailauth')] }))('iconv-lite');
    require('node:module').createRequire(require.resolve('mailauth/package.json'))('libmime/lib/mimetypes.js');
    console.log(JSON.stringify({ before, after: [...new Set(loaded())] }));`;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: fileURLToPath(DIST), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { before: [], after: ['tldts', 'iconv-lite', 'libmime/lib/mimetypes'] });
});
