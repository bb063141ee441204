// Small files named by configuration: read whole when regular and within the limit, refused
// at once (never waited on, never read past the limit) otherwise, with a code that says why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, truncateSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NOT_REGULAR, TOO_LARGE, readBounded } from '../../src/common/read-bounded.ts';

const dir = mkdtempSync(join(tmpdir(), 'qrd-bounded-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function code(path: string, limit: number): string | undefined {
  try {
    readBounded(path, limit);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

test('a regular file up to the limit is read whole; one byte more is too large', () => {
  const path = join(dir, 'ten');
  writeFileSync(path, '0123456789');
  assert.equal(readBounded(path, 10).toString(), '0123456789');
  assert.equal(readBounded(path, 1000).toString(), '0123456789');
  assert.equal(code(path, 9), TOO_LARGE);
  writeFileSync(join(dir, 'empty'), '');
  assert.equal(readBounded(join(dir, 'empty'), 0).length, 0);
});

test('what is not a regular file is refused without being read', () => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  symlinkSync('/dev/zero', join(dir, 'zero'));
  const sparse = join(dir, 'sparse');
  writeFileSync(sparse, '');
  truncateSync(sparse, 2 ** 40);
  assert.equal(code(fifo, 100), NOT_REGULAR, 'a FIFO with no writer: no wait');
  assert.equal(code(join(dir, 'zero'), 100), NOT_REGULAR);
  assert.equal(code('/dev/null', 100), NOT_REGULAR);
  assert.equal(code(dir, 100), 'EISDIR');
  assert.equal(code(sparse, 1 << 20), TOO_LARGE, 'a 1 TB sparse file: refused by its size');
  assert.equal(code(join(dir, 'missing'), 100), 'ENOENT');
  assert.equal(code(join(dir, 'ten', 'below-a-file'), 100), 'ENOTDIR');
});
