// The bundle qmail-send runs once per delivery holds the delivery path and what it signs with,
// and nothing of the admin commands, the key administration or the verify side: they cost
// start-up time on every message, and ESLint's boundary (.eslintrc.json) is only as good as
// what actually ends up in the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const inputs: string[] = JSON.parse(readFileSync(new URL('../../dist/qmail-remote.inputs.json', import.meta.url), 'utf8'));

test('only delivery, signing, mail, canon and common sources are bundled', () => {
  const sources = inputs.filter((path) => path.startsWith('src/'));
  assert.ok(sources.includes('src/delivery/qmail-remote.ts'));
  const outside = sources.filter((path) => !/^src\/(delivery|signing|mail|canon|common)\//.test(path));
  assert.deepEqual(outside, []);
});

test('no admin or verify package is bundled', () => {
  const packages = new Set(inputs.flatMap((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? []));
  assert.ok(packages.has('nodemailer'));
  for (const name of ['yargs', 'fast-glob', 'mailauth', 'smtp-server']) assert.ok(!packages.has(name), name);
});
