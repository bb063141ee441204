// src/delivery/argv.ts: the arguments as the bytes qmail-rspawn passed, not as Node decoded them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argumentBytes } from '../../src/delivery/argv.ts';
import { run } from '../helpers/run.ts';


const cmdline = (...entries: string[]) => () => Buffer.from(entries.map((e) => `${e}\0`).join(''), 'latin1');
/** What Node makes of an argument's bytes. */
const decoded = (bytes: string) => Buffer.from(bytes, 'latin1').toString('utf8');

test('the last entries of cmdline, one char per byte, after Node options and the script', () => {
  const args = ['example.net', 'caf\xe9@example.com', 'b\xff@example.net', ''];
  const argv = ['/usr/bin/node', '/bin/qmail-remote', ...args.map(decoded)];
  const kernel = cmdline('node', '--no-warnings', '/bin/qmail-remote', ...args);
  assert.deepEqual(argumentBytes(argv, kernel), args);
});

test('falls back to process.argv as UTF-8 bytes when cmdline is missing or does not match', () => {
  const argv = ['node', 'script', 'caf\u00e9@example.com'];
  const utf8 = ['caf\xc3\xa9@example.com'];
  const missing = () => {
    throw Object.assign(new Error('no /proc'), { code: 'ENOENT' });
  };
  assert.deepEqual(argumentBytes(argv, missing), utf8);
  assert.deepEqual(argumentBytes(argv, cmdline('node', 'script', 'other@example.com')), utf8, 'a rewritten cmdline');
  assert.deepEqual(argumentBytes(argv, () => Buffer.alloc(0)), utf8);
  assert.deepEqual(argumentBytes(['node', 'script'], cmdline('node', 'script')), []);
});

test('in a real process, a Latin-1 byte in an argument comes back as that byte', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'argv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'print.ts');
  writeFileSync(
    script,
    `import { argumentBytes } from ${JSON.stringify(new URL('../../src/delivery/argv.ts', import.meta.url).href)};\n` +
      `process.stdout.write(Buffer.from(JSON.stringify(argumentBytes().map((a) => Buffer.from(a, 'latin1').toString('hex')))));\n`,
  );
  // Node's spawn takes strings; a Buffer cannot be passed, so the byte goes through a shell.

  const child = await run('/bin/sh', ['-c', `exec "$0" "$1" "$(printf 'caf\\351@x')" "$(printf 'a\\303\\251')"`, process.execPath, script]);
  assert.equal(child.stderr, '');
  assert.deepEqual(JSON.parse(child.stdout), ['636166e94078', '61c3a9']);

});
