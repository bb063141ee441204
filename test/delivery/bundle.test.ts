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

test('no admin or verify package is bundled, nor the logger a delivery loads only when logging is on', () => {
  const packages = new Set(inputs.flatMap((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? []));
  assert.ok(packages.has('nodemailer'));
  for (const name of ['yargs', 'fast-glob', 'mailauth', 'smtp-server', 'winston', 'winston-transport', 'logform', 'readable-stream']) {
    assert.ok(!packages.has(name), name);
  }
});

test('mailauth stays out of the bundle: only its MTA-STS and ARC code are loaded, lazily, from node_modules', async () => {
  const bundle = readFileSync(new URL('../../dist/qmail-remote.cjs', import.meta.url), 'utf8');
  const loads = [...bundle.matchAll(/(require|import|loadLater)\("(mailauth[^"]*)"\)/g)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(loads.sort(), ['loadLater mailauth/lib/arc/index.js', 'loadLater mailauth/lib/mta-sts.js'], 'two loads on first need, nothing required at start-up');
  assert.ok(inputs.includes('src/delivery/tls/mta-sts.ts'));
  assert.ok(inputs.includes('src/signing/seal.ts'));
  const { createRequire } = await import('node:module');
  for (const module of ['mailauth/lib/mta-sts.js', 'mailauth/lib/arc/index.js']) {
    assert.ok(createRequire(new URL('../../dist/qmail-remote.cjs', import.meta.url)).resolve(module));
  }
});

test('the byte loops go in as their module bytes, not with their encoder', () => {
  assert.ok(inputs.includes('src/canon/kernels.ts'));
  for (const path of ['tools/kernels/wasm.ts', 'tools/kernels/kernels-source.ts']) assert.ok(!inputs.includes(path), path);
});

test('with logging on, the bundle finds winston in node_modules', async () => {
  const bundle = readFileSync(new URL('../../dist/qmail-remote.cjs', import.meta.url), 'utf8');
  assert.match(bundle, /loadLater\("winston"\)/);
  const { createRequire } = await import('node:module');
  assert.ok(createRequire(new URL('../../dist/qmail-remote.cjs', import.meta.url)).resolve('winston'));
});
