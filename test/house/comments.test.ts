// Comments point only at what a reader of this repository can open: every repository path a
// comment names exists, and no comment cites a document that is not in the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FOLDERS = ['src', 'bin', 'scripts', 'bench', 'test', 'tools'];
const SOURCE = /\.(ts|mjs|cjs|js)$/;
// A path into the repository: one of its top folders, then at least one more segment; not the
// tail of a longer path ($QMAILHOME/bin/qmail-queue). control/ is left out: in comments it
// names qmail's control files, of which the folder here holds only samples.
const PATH = /(?<![\w/$.}~-])(?:src|test|docs|bin|scripts|bench|tools)\/[A-Za-z0-9_.\-/]*[A-Za-z0-9_]/g;

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' || name === 'fixtures' || name === 'golden' ? [] : files(path);
    return SOURCE.test(name) || dir.endsWith('/bin') ? [path] : [];
  });
}

/** The comment text of a source file: what follows // or sits in a block comment, roughly. */
function comments(text: string): string[] {
  return text.split('\n').flatMap((line) => {
    const slashes = line.indexOf('//');
    if (slashes !== -1 && !line.slice(0, slashes).includes("'") && !line.slice(0, slashes).includes('`')) return [line.slice(slashes + 2)];
    const star = /^\s*(?:\/\*\*?|\*)\s?(.*)$/.exec(line);
    return star ? [star[1] ?? ''] : [];
  });
}

/** Output git keeps out of the repository (bench/results/, dist/) is named but not there. */
function ignored(path: string): boolean {
  return [path, `${path}/`].some((name) => spawnSync('git', ['check-ignore', '-q', '--no-index', name], { cwd: ROOT }).status === 0);
}

const sources = FOLDERS.flatMap((folder) => files(join(ROOT, folder)));

test('every repository path named in a comment exists', () => {
  const missing: string[] = [];
  for (const file of sources) {
    for (const comment of comments(readFileSync(file, 'utf8'))) {
      for (const path of comment.match(PATH) ?? []) {
        if (path.includes('*') || /^(?:test|src)\/$/.test(path)) continue;
        if (!existsSync(join(ROOT, path)) && !ignored(path)) missing.push(`${relative(ROOT, file)}: ${path}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

test('no comment cites a document outside the repository (the old spec, the seeds)', () => {
  const cited: string[] = [];
  for (const file of sources) {
    for (const comment of comments(readFileSync(file, 'utf8'))) {
      if (/\bspec §|\bseed \d/.test(comment)) cited.push(`${relative(ROOT, file)}: ${comment.trim()}`);
    }
  }
  assert.deepEqual(cited, []);
});
