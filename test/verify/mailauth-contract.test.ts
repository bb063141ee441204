// What src/verify/dkim-results.ts reads of mailauth's free text: every comment and warning code
// the mapping switches on must still be written somewhere in the installed mailauth, and must
// still give its letter. A mailauth upgrade that renames one fails here, not in the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BODY_HASH_FAILED, INVALID_KEY, MAILAUTH_WARNINGS, NEUTRAL_COMMENTS, mapDkimResult } from '../../src/verify/dkim-results.ts';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('mailauth/package.json'));
const pinned = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).dependencies.mailauth as string;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.js') ? [readFileSync(path, 'utf8')] : [];
  });
}
const lib = sources(join(root, 'lib')).join('\n');
const written = (text: string): boolean => lib.includes(`'${text}'`) || lib.includes(`"${text}"`) || lib.includes(`\`${text}\``);

test('mailauth is pinned to exactly the installed version', () => {
  assert.match(pinned, /^\d+\.\d+\.\d+$/, 'an exact version, not a range');
  assert.equal(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version, pinned);
});

test('every comment the mapping reads is still one mailauth writes, and gives its letter', () => {
  for (const [comment, [letter, result]] of Object.entries(NEUTRAL_COMMENTS)) {
    assert.ok(written(comment), `mailauth no longer says "${comment}"`);
    const mapped = mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result: 'neutral', comment } });
    assert.deepEqual([mapped.letter, mapped.result], [letter, result], comment);
  }
  assert.ok(written(INVALID_KEY));
  assert.equal(mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result: 'neutral', comment: INVALID_KEY }, rr: 'v=DKIM1; p=' }).letter, 'I');
  assert.equal(mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result: 'neutral', comment: INVALID_KEY }, rr: 'v=DKIM1; p=MIIB' }).letter, 'M');
  assert.equal(mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result: 'fail', comment: BODY_HASH_FAILED } }).letter, 'P');
});

test('every warning code the mapping reads is still one mailauth adds, and gives its letter', () => {
  for (const code of Object.values(MAILAUTH_WARNINGS)) assert.ok(written(code), `mailauth no longer warns "${code}"`);
  const warned = (code: string) => mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result: 'pass', warnings: [code] } }).letter;
  assert.equal(warned(MAILAUTH_WARNINGS.version), 'R');
  assert.equal(warned(MAILAUTH_WARNINGS.identity), 'H');
});

test('the results mailauth gives map to their letters: pass, fail, temperror, policy', () => {
  const letter = (result: string, extra: object = {}) => mapDkimResult({ signingDomain: 'example.com', selector: 's', status: { result, ...extra } }).letter;
  assert.equal(letter('pass'), 'A');
  assert.equal(letter('fail'), 'D');
  assert.equal(letter('fail', { testing: true }), 'E');
  assert.equal(letter('temperror'), 'K');
  assert.equal(letter('policy'), 'M');
  assert.equal(letter('none'), 'N');
});
