// The stand-in for joi in the verify bundle (src/verify/mailauth-joi.ts) gives joi's answers:
// every input here goes to both, the installed joi being the one mailauth depends on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as standIn from '../../src/verify/mailauth-joi.ts';
import { allStrings } from '../helpers/all-strings.ts';

// joi as mailauth resolves it.
const mailauthRequire = createRequire(createRequire(import.meta.url).resolve('mailauth/package.json'));
const Joi = mailauthRequire('joi') as {
  string(): { base64(o: object): { validate(v: unknown): { error?: unknown } }; domain(o: object): { validate(v: unknown): { error?: unknown } } };
};

const agree = (joiSchema: { validate(v: unknown): { error?: unknown } }, ours: { validate(v: unknown): { error?: unknown } }, inputs: Iterable<unknown>): number => {
  let n = 0;
  for (const input of inputs) {
    assert.equal(ours.validate(input).error === undefined, joiSchema.validate(input).error === undefined, JSON.stringify(input));
    n += 1;
  }
  return n;
};

test('base64 without required padding: joi\'s answer for every short string over digits, padding and what is not base64', () => {
  const n = agree(Joi.string().base64({ paddingRequired: false }), standIn.string().base64({ paddingRequired: false }), allStrings('A+/=- \n', 6));
  assert.ok(n > 100_000, `${n} strings`);
});

test('base64: joi\'s answer for real keys, and for keys cut, padded, split and spoilt', () => {
  const joi = Joi.string().base64({ paddingRequired: false });
  const ours = standIn.string().base64({ paddingRequired: false });
  const inputs: unknown[] = [undefined, null, 42, {}, [], '', ' ', '\t'];
  for (let i = 0; i < 300; i += 1) {
    const key = randomBytes(i % 300).toString('base64');
    inputs.push(key, key.replace(/=+$/, ''), `${key}=`, `${key}==`, key.slice(1), ` ${key}`, `${key} `, `${key}\n`, key.replace(/.{16}/, '$& '), key.replace(/\+/g, '-'));
  }
  agree(joi, ours, inputs);
});

test('domain without Unicode or a TLD list: joi\'s answer for names good and bad', () => {
  const joi = Joi.string().domain({ allowUnicode: false, tlds: false });
  const ours = standIn.string().domain({ allowUnicode: false, tlds: false });
  const names = [
    'example.com', 'EXAMPLE.COM', 'example.com.', 'a.b', 'a', 'localhost', '', ' ', 'example..com', '.example.com', '-a.com', 'a-.com',
    'a_b.example.com', '_dmarc.example.com', 'xn--bcher-kva.example', 'bücher.example', '192.0.2.1', '[192.0.2.1]', 'a.123', 'a.b1',
    'ex ample.com', 'example.com\n', 'user@example.com', 'example.com:25', `${'a'.repeat(63)}.com`, `${'a'.repeat(64)}.com`,
    `${'abcdefghi.'.repeat(25)}com`, `${'abcdefghi.'.repeat(26)}com`, undefined, null, 7,
  ];
  const generated = [...allStrings('a-._1', 5)].map((s) => `${s}.test`);
  agree(joi, ours, [...names, ...generated]);
});

test('anything else mailauth might ask of joi throws when asked, so an upgrade that asks more fails here', () => {
  assert.throws(() => standIn.string().base64({ paddingRequired: true }), /does not give/);
  assert.throws(() => standIn.string().domain({ allowUnicode: true, tlds: false }), /does not give/);
  assert.equal((standIn as Record<string, unknown>).object, undefined);
});

test('of the mailauth files in the verify bundle, those two checks are all that use joi', () => {
  const inputs: Record<string, string[]> = JSON.parse(readFileSync(new URL('../../dist/qmail-dkverify.inputs.json', import.meta.url), 'utf8'));
  const files = (inputs['qmail-dkverify-mailauth.cjs'] ?? []).filter((path) => path.startsWith('node_modules/mailauth/'));
  assert.ok(files.length > 20, 'the bundle lists its inputs');
  const uses: string[] = [];
  for (const file of files) {
    const text = readFileSync(fileURLToPath(new URL(`../../${file}`, import.meta.url)), 'utf8');
    if (/require\(['"]joi['"]\)/.test(text)) uses.push(`${file}: requires joi`);
    for (const match of text.matchAll(/\bJoi\.[\w.]+\([^)]*\)(?:\.\w+\([^)]*\))*/g)) uses.push(`${file}: ${match[0]}`);
  }
  assert.deepEqual(uses.sort(), [
    'node_modules/mailauth/lib/spf/index.js: Joi.string().domain({ allowUnicode: false, tlds: false })',
    'node_modules/mailauth/lib/spf/index.js: requires joi',
    'node_modules/mailauth/lib/tools.js: Joi.string().base64({ paddingRequired: false })',
    'node_modules/mailauth/lib/tools.js: requires joi',
  ]);
});
