// bin/run-bundle.cjs runs the bundles from the code caches the build trained
// (scripts/train-code-cache.mjs). What these tests hold: every bundle a message runs through
// has a cache that this Node uses; a cache is never used for bytes other than its own, however
// alike; and a cache that is missing, cut short, spoilt or garbage costs a compile and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TRAINED = ['qmail-remote.cjs', 'qmail-dkverify-check.cjs', 'qmail-dkverify-mailauth.cjs'];
const USAGE = 'DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0';

/**
 * Asks a Node started as the launchers start it (no flags: V8 takes a cache only from a Node
 * with the flags it was made under) to compile `file` as they do; whether it used the cache,
 * and which of Node's built-ins that loaded.
 */
function compileIn(root: string, file: string): { usedCache: boolean; builtins: string[] } {
  const script = `const { usedCache } = require(${JSON.stringify(join(root, 'bin', 'run-bundle.cjs'))}).compile(${JSON.stringify(join(root, 'dist', file))});
    process.stdout.write(JSON.stringify({ usedCache, builtins: process.moduleLoadList.filter((name) => name.startsWith('NativeModule ')) }));`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as { usedCache: boolean; builtins: string[] };
}

/** bin/ and qmail-remote's bundle with its cache, copied to a directory of the test's own. */
function copyOfQmailRemote(): string {
  const root = mkdtempSync(join(tmpdir(), 'run-bundle-'));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'dist'));
  for (const file of ['qmail-remote', 'run-bundle.cjs', 'node-version.cjs', 'package.json']) copyFileSync(join(ROOT, 'bin', file), join(root, 'bin', file));
  for (const file of ['qmail-remote.cjs', 'qmail-remote.cjs.v8cache']) copyFileSync(join(ROOT, 'dist', file), join(root, 'dist', file));
  return root;
}

/** What bin/qmail-remote of `root` reports when started without arguments. */
function usageReport(root: string): string {
  // A qmail home of the test's own: not even a log setting of the host's is read.
  const run = spawnSync(process.execPath, [join(root, 'bin', 'qmail-remote')], { encoding: 'latin1', env: { PATH: '/usr/bin:/bin', QMAILHOME: root } });
  assert.equal(run.status, 0);
  return run.stdout + run.stderr;
}

test('every bundle a message runs through compiles from the cache the build trained for it', () => {
  for (const file of TRAINED) assert.equal(compileIn(ROOT, file).usedCache, true, file);
});

test("qmail-dkverify's pass-through entry has no cache, and compiling it loads no hashing", () => {
  const entry = compileIn(ROOT, 'qmail-dkverify.cjs');
  assert.equal(entry.usedCache, false);
  assert.ok(!entry.builtins.includes('NativeModule crypto'), 'node:crypto is loaded only to check a cache');
  assert.ok(compileIn(ROOT, 'qmail-remote.cjs').builtins.includes('NativeModule crypto'), 'the check does load it where there is a cache');
});

test('a bundle edited in place, even at the same length, runs its own bytes, not the code cached for the old ones', (t) => {
  const root = copyOfQmailRemote();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.equal(compileIn(root, 'qmail-remote.cjs').usedCache, true, 'the copy runs from its cache');
  assert.equal(usageReport(root), USAGE);
  // The report's text is a constant of the bundle's outermost function, which the cache holds:
  // V8 compares only the length of the source, so without the check it would still say
  // "improperly".
  const bundle = join(root, 'dist', 'qmail-remote.cjs');
  const edited = readFileSync(bundle, 'latin1').replace('invoked improperly', 'invoked IMPROPERLY');
  writeFileSync(bundle, edited, 'latin1');
  assert.equal(compileIn(root, 'qmail-remote.cjs').usedCache, false);
  assert.equal(usageReport(root), USAGE.replace('improperly', 'IMPROPERLY'));
});

test('a cache that is missing, cut short or garbage costs a compile, and the program runs as it should', (t) => {
  const root = copyOfQmailRemote();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cacheFile = join(root, 'dist', 'qmail-remote.cjs.v8cache');
  const trained = readFileSync(cacheFile);
  const headerLength = trained.indexOf('\n', trained.indexOf('\n', trained.indexOf('\n') + 1) + 1) + 1;
  // V8's own header kept, bytes after it spoilt: V8 release builds would take it, and a damaged
  // body can stop V8 with a fatal error and a trace on fd 2.
  const spoilt = Buffer.from(trained);
  for (let at = headerLength + 100; at < headerLength + 164; at++) spoilt.writeUInt8((spoilt.readUInt8(at) ^ 0xff), at);
  const variants: [string, Buffer | null][] = [
    ['missing', null],
    ['cut short', trained.subarray(0, headerLength + (trained.length - headerLength) / 2)],
    ['garbage after its header', Buffer.concat([trained.subarray(0, headerLength), Buffer.alloc(trained.length - headerLength, 0x5a)])],
    ['empty', Buffer.alloc(0)],
    ["spoilt past V8's header", spoilt],
  ];
  for (const [what, bytes] of variants) {
    rmSync(cacheFile, { force: true });
    if (bytes) writeFileSync(cacheFile, bytes);
    assert.equal(compileIn(root, 'qmail-remote.cjs').usedCache, false, what);
    assert.equal(usageReport(root), USAGE, what);
  }
});
