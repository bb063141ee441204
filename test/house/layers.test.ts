// The inner layers of src/ in their order, each importing only from itself and those below it:
// common ← canon ← mail ← signing ← delivery. verify stands beside signing and delivery (it may
// use common, canon and mail, never signing or delivery); keys, install and cli are the outer
// ring and may use anything. Static imports, type-only imports and import() all count, so no
// cycle between folders can come back. (ESLint keeps the packages out of the delivery path.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));
const ORDER = ['common', 'canon', 'mail', 'signing', 'delivery'];
/** What each folder may import from, besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  ...Object.fromEntries(ORDER.map((folder, i) => [folder, ORDER.slice(0, i)])),
  verify: ['common', 'canon', 'mail'],
  keys: ['common', 'canon', 'mail', 'signing'],
  install: ['common', 'canon', 'mail', 'signing', 'delivery', 'keys'],
  cli: ['common', 'canon', 'mail', 'signing', 'delivery', 'verify', 'keys', 'install'],
  types: [],
};
const IMPORT = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const folderOf = (path: string): string => relative(SRC, path).split('/')[0] ?? '';

test('every folder of src/ is in the layer table', () => {
  const folders = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
  assert.deepEqual(folders.filter((folder) => !(folder in ALLOWED)), []);
});

test('imports go only down the layers: common ← canon ← mail ← signing ← delivery; verify beside', () => {
  const wrong: string[] = [];
  for (const file of files(SRC)) {
    const from = folderOf(file);
    for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const to = folderOf(resolve(dirname(file), match[1] ?? ''));
      if (to !== from && !(ALLOWED[from] ?? []).includes(to)) wrong.push(`${relative(SRC, file)} → ${to}/ (${match[1]})`);
    }
  }
  assert.deepEqual(wrong, []);
});
