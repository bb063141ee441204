// install/uninstall with a scratch qmail home: the original is kept, the shim runs the program
// with an absolute Node, a missing Node gives a Z report (never the shell's 127, which
// qmail-rspawn would turn into a bounce), and uninstall puts the original back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const ORIGINAL = '#!/bin/sh\necho original\n';

function scratchHome(): { home: string; target: string } {
  const home = mkdtempSync(join(tmpdir(), 'qrd-install-'));
  mkdirSync(join(home, 'bin'));
  const target = join(home, 'bin', 'qmail-remote');
  writeFileSync(target, ORIGINAL, { mode: 0o711 });
  return { home, target };
}

const cli = (args: string[], home: string) =>
  spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, QMAILHOME: home }, encoding: 'utf8' });

test('install keeps the original, writes a shim that runs qmail-remote, uninstall restores it', () => {
  const { home, target } = scratchHome();
  const installed = cli(['install'], home);
  assert.equal(installed.status, 0, installed.stderr);
  assert.equal(readFileSync(`${target}.orig`, 'utf8'), ORIGINAL);
  const shim = readFileSync(target, 'utf8');
  assert.match(shim, /^#!\/bin\/sh\n/);
  assert.ok(shim.includes(`'${process.execPath}' --no-warnings`), shim);
  assert.equal(statSync(target).mode & 0o777, 0o755);

  // The shim as qmail-rspawn runs it: too few arguments is qmail's usage report, exit 0.
  const run = spawnSync(target, ['only-host'], { env: { PATH: '/usr/bin:/bin' }, input: '' });
  assert.equal(run.status, 0);
  assert.equal(run.stdout.toString('latin1'), 'DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0');
  assert.equal(run.stderr.length, 0);

  assert.equal(cli(['install'], home).status, 0, 'installing again over the shim is fine');
  assert.equal(readFileSync(`${target}.orig`, 'utf8'), ORIGINAL, 'and keeps the first original');

  const removed = cli(['uninstall'], home);
  assert.equal(removed.status, 0, removed.stderr);
  assert.equal(readFileSync(target, 'utf8'), ORIGINAL);
  assert.equal(existsSync(`${target}.orig`), false);
  assert.notEqual(cli(['uninstall'], home).status, 0, 'uninstall leaves a qmail-remote that is not ours alone');
});

test('a shim whose Node has gone reports Z and exits 0', () => {
  const { home, target } = scratchHome();
  const fakeNode = join(home, 'node');
  writeFileSync(fakeNode, '#!/bin/sh\necho v24.0.0\n', { mode: 0o755 });
  assert.equal(cli(['install', '--node', fakeNode], home).status, 0);
  writeFileSync(fakeNode, '');
  spawnSync('chmod', ['0644', fakeNode]);
  const run = spawnSync(target, ['host', 'a@b', 'c@d'], { input: '' });
  assert.equal(run.status, 0);
  assert.match(run.stdout.toString('latin1'), /^Zqmail-remote-dkim: node is missing; mail stays queued\. \(#4\.3\.0\)\n\0$/);
});

test('install refuses a Node older than 22.19', () => {
  const { home } = scratchHome();
  const oldNode = join(home, 'node20');
  writeFileSync(oldNode, '#!/bin/sh\necho v20.20.2\n', { mode: 0o755 });
  const result = cli(['install', '--node', oldNode], home);
  assert.equal(result.status, 100);
  assert.match(result.stderr, /22\.19/);
});

test('a compile cache directory others can write is refused; a private one goes into the shim', () => {
  const { home, target } = scratchHome();
  const open = join(home, 'cache-open');
  mkdirSync(open, { mode: 0o777 });
  spawnSync('chmod', ['0777', open]);
  assert.equal(cli(['install', '--cache', open], home).status, 100);
  assert.equal(readFileSync(target, 'utf8'), ORIGINAL, 'nothing was installed');
  const closed = join(home, 'cache');
  mkdirSync(closed, { mode: 0o700 });
  assert.equal(cli(['install', '--cache', closed], home).status, 0);
  assert.ok(readFileSync(target, 'utf8').includes(`NODE_COMPILE_CACHE='${closed}'; export NODE_COMPILE_CACHE`));
});
