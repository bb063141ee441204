// install/uninstall with a scratch qmail home: the original is kept, the shim runs the program
// with an absolute Node, a missing Node or one too old gives a Z report (never the shell's 127,
// which qmail-rspawn would turn into a bounce), uninstall puts the original back, and every
// refusal is one line that leaves every file as it was.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const PROGRAM = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const ORIGINAL = '#!/bin/sh\necho original\n';

const cleanups: string[] = [];
after(() => {
  for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
});
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qrd-install-'));
  cleanups.push(dir);
  return dir;
}

function scratchHome(): { home: string; target: string } {
  const home = scratch();
  mkdirSync(join(home, 'bin'));
  const target = join(home, 'bin', 'qmail-remote');
  writeFileSync(target, ORIGINAL, { mode: 0o711 });
  return { home, target };
}

/**
 * `install` reads users from a passwd file: never this host's, whose qmailr (or lack of one)
 * would decide what a test sees. Without --passwd, a file of the scratch home that no test
 * writes: no users.
 */
const accountsOf = (args: string[], home: string): string[] =>
  args[0] === 'install' && !args.includes('--passwd') ? [...args, '--passwd', join(home, 'no-passwd')] : args;
const cli = (args: string[], home: string) =>
  spawnSync(process.execPath, [CLI, ...accountsOf(args, home)], { env: { ...process.env, QMAILHOME: home }, encoding: 'utf8' });

test('install keeps the original, writes a shim that runs qmail-remote, uninstall restores it', () => {
  const { home, target } = scratchHome();
  const installed = cli(['install'], home);
  assert.equal(installed.status, 0, installed.stderr);
  assert.equal(readFileSync(`${target}.orig`, 'utf8'), ORIGINAL);
  const shim = readFileSync(target, 'utf8');
  assert.match(shim, /^#!\/bin\/sh\n/);
  assert.ok(shim.includes(`exec '${process.execPath}' --no-warnings '${PROGRAM}' "$@"`), shim);
  assert.equal(statSync(target).mode & 0o777, 0o755);
  // qmail passes no QMAILHOME: the shim carries the home it was installed into.
  assert.ok(shim.includes(`[ -n "$QMAILHOME" ] || QMAILHOME='${home}'; export QMAILHOME\n`), shim);

  // The shim as qmail-rspawn runs it: too few arguments is qmail's usage report, exit 0.
  const run = spawnSync(target, ['only-host'], { env: { PATH: '/usr/bin:/bin' }, input: '' });
  assert.equal(run.status, 0);
  assert.equal(run.stdout.toString('latin1'), 'DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0');
  assert.equal(run.stderr.length, 0);

  const again = cli(['install'], home);
  assert.equal(again.status, 0, 'installing again over the shim is fine');
  assert.match(again.stderr, /is the shim already; nothing changed/);
  assert.equal(readFileSync(target, 'utf8'), shim);
  assert.equal(readFileSync(`${target}.orig`, 'utf8'), ORIGINAL, 'and keeps the first original');
  assert.equal(statSync(`${target}.orig`).mode & 0o777, 0o711, 'the original is the same file, mode and all');

  const removed = cli(['uninstall'], home);
  assert.equal(removed.status, 0, removed.stderr);
  assert.equal(readFileSync(target, 'utf8'), ORIGINAL);
  assert.equal(existsSync(`${target}.orig`), false);
  assert.notEqual(cli(['uninstall'], home).status, 0, 'uninstall leaves a qmail-remote that is not ours alone');
});

test('install makes the MTA-STS cache $QMAILHOME/mta-sts, mode 0700, owned by qmailr from the passwd file', () => {
  const { home } = scratchHome();
  const passwd = join(home, 'passwd');
  writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nqmailr:x:4242:4343::/var/qmail:/bin/false\n');
  const installed = cli(['install', '--passwd', passwd], home);
  assert.equal(installed.status, 0, installed.stderr);
  const dir = statSync(join(home, 'mta-sts'));
  assert.ok(dir.isDirectory());
  assert.equal(dir.mode & 0o777, 0o700);
  if (process.getuid?.() === 0) assert.deepEqual([dir.uid, dir.gid], [4242, 4343]);
  assert.match(installed.stderr, /mta-sts \(mode 0700, owner qmailr\)/);

  const { home: other } = scratchHome();
  mkdirSync(join(other, 'mta-sts'), { mode: 0o777 });
  chmodSync(join(other, 'mta-sts'), 0o777);
  const noUser = cli(['install', '--passwd', join(other, 'no-such-passwd')], other);
  assert.equal(noUser.status, 0, noUser.stderr);
  assert.equal(statSync(join(other, 'mta-sts')).mode & 0o777, 0o700, 'an existing directory is closed up');
  assert.match(noUser.stderr, /no user qmailr: chown it/);
});

test('install makes control/entrykey: 64 hex digits, mode 0440, owner qmaild, group qmailr\'s; an existing key is kept', () => {
  const { home } = scratchHome();
  mkdirSync(join(home, 'control'));
  const passwd = join(home, 'passwd');
  writeFileSync(passwd, 'qmaild:x:4241:4300::/var/qmail:/bin/false\nqmailr:x:4242:4343::/var/qmail:/bin/false\nvpopmail:x:89:89::/home/vpopmail:/bin/false\n');
  const installed = cli(['install', '--passwd', passwd], home);
  assert.equal(installed.status, 0, installed.stderr);
  const path = join(home, 'control', 'entrykey');
  const key = readFileSync(path, 'latin1');
  assert.match(key, /^[0-9a-f]{64}\n$/);
  assert.equal(statSync(path).mode & 0o777, 0o440);
  if (process.getuid?.() === 0) assert.deepEqual([statSync(path).uid, statSync(path).gid], [4241, 4343]);
  assert.match(installed.stderr, /made .*entrykey \(mode 0440, owner qmaild, group of qmailr\)/);

  const again = cli(['install', '--passwd', passwd, '--smtpd-user', 'vpopmail'], home);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(readFileSync(path, 'latin1'), key, 'kept: marks on queued mail stay good');
  if (process.getuid?.() === 0) assert.equal(statSync(path).uid, 89);
  assert.match(again.stderr, /kept .*owner vpopmail/);

  const { home: bare } = scratchHome();
  mkdirSync(join(bare, 'control'));
  const noUsers = cli(['install', '--passwd', join(bare, 'no-such-passwd')], bare);
  assert.equal(noUsers.status, 0, noUsers.stderr);
  assert.match(noUsers.stderr, /no user qmaild and qmailr: make it readable by the users qmail-smtpd and qmail-remote run as/);
});

test('install makes queue/lock/tcpto6 beside qmail\'s tcpto (2048 zeros, 0644, qmailr), only in a qmail home with queue/lock', () => {
  const { home } = scratchHome();
  mkdirSync(join(home, 'queue', 'lock'), { recursive: true });
  const passwd = join(home, 'passwd');
  writeFileSync(passwd, 'qmailr:x:4242:4343::/var/qmail:/bin/false\n');
  const installed = cli(['install', '--passwd', passwd], home);
  assert.equal(installed.status, 0, installed.stderr);
  const path = join(home, 'queue', 'lock', 'tcpto6');
  assert.deepEqual(readFileSync(path), Buffer.alloc(2048));
  assert.equal(statSync(path).mode & 0o777, 0o644);
  if (process.getuid?.() === 0) assert.deepEqual([statSync(path).uid, statSync(path).gid], [4242, 4343]);
  const { home: bare } = scratchHome();
  assert.equal(cli(['install'], bare).status, 0);
  assert.equal(existsSync(join(bare, 'queue')), false, 'no queue/lock: nothing made');
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
  // Named relative to where install runs, written absolute: the shim runs from anywhere.
  const relative = spawnSync(process.execPath, [CLI, ...accountsOf(['install', '--cache', 'cache'], home)], { cwd: home, env: { ...process.env, QMAILHOME: home }, encoding: 'utf8' });
  assert.equal(relative.status, 0, relative.stderr);
  assert.ok(readFileSync(target, 'utf8').includes(`NODE_COMPILE_CACHE='${closed}'; export NODE_COMPILE_CACHE`));
});

/** Every file under the qmail home with its mode and bytes: "left as it was" is this, unchanged. */
function snapshot(home: string): string[] {
  return readdirSync(home, { recursive: true, encoding: 'utf8' }).sort().map((name) => {
    const path = join(home, name);
    const st = statSync(path);
    return `${name} ${(st.mode & 0o7777).toString(8)} ${st.isFile() ? readFileSync(path, 'latin1') : '(dir)'}`;
  });
}

/** A refusal: non-zero, nothing on stdout, one line on stderr, saying `what`. */
function assertRefused(result: ReturnType<typeof cli>, what: RegExp): void {
  assert.notEqual(result.status, 0);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^qmail-remote-dkim install: [^\n]+\n$/);
  assert.match(result.stderr, what);
}

test('a qmail home without bin/qmail-remote: refused, nothing written', () => {
  const home = scratch();
  mkdirSync(join(home, 'bin'));
  assertRefused(cli(['install'], home), /bin\/qmail-remote does not exist: set QMAILHOME/);
  assert.deepEqual(snapshot(home), ['bin 755 (dir)']);
});

test('an existing qmail-remote.orig that differs: refused, both kept; the same bytes: taken as the original', () => {
  const { home, target } = scratchHome();
  writeFileSync(`${target}.orig`, '#!/bin/sh\necho an older original\n');
  const before = snapshot(home);
  assertRefused(cli(['install'], home), /qmail-remote\.orig exists and differs from .*: move one of them away/);
  assert.deepEqual(snapshot(home), before);

  writeFileSync(`${target}.orig`, ORIGINAL);
  assert.equal(cli(['install'], home).status, 0);
  assert.ok(readFileSync(target, 'utf8').includes('qmail-remote-dkim shim'));
  assert.equal(cli(['uninstall'], home).status, 0);
  assert.equal(readFileSync(target, 'utf8'), ORIGINAL);
});

test('as a user who cannot write to bin/: refused with what to do, nothing changed', (t) => {
  const { home } = scratchHome();
  chmodSync(join(home, 'bin'), 0o555);
  const before = snapshot(home);
  // Root writes anywhere: drop every capability (setpriv) so that the mode applies to it too.
  const asRoot = process.getuid?.() === 0;
  const env = { ...process.env, QMAILHOME: home };
  const result = asRoot
    ? spawnSync('setpriv', ['--bounding-set', '-all', '--inh-caps', '-all', '--', process.execPath, CLI, ...accountsOf(['install'], home)], { env, encoding: 'utf8' })
    : cli(['install'], home);
  if (asRoot && (result.error || result.stderr.startsWith('setpriv:'))) return t.skip(`cannot drop root's capabilities here: ${result.stderr}`);
  assertRefused(result, /cannot write in .*\/bin \(EACCES\): run this as root/);
  assert.deepEqual(snapshot(home), before);
});

test('on a read-only file system: refused with what to do, nothing changed', (t) => {
  const { home } = scratchHome();
  const before = snapshot(home);
  // A read-only bind mount of the scratch home, in a mount namespace of its own: the host's
  // mounts are not touched. Needs the right to make one (root in most containers).
  const script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"';
  const probe = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', home, 'true']);
  if (probe.status !== 0) return t.skip('cannot make a read-only mount here');
  const result = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', home, process.execPath, CLI, ...accountsOf(['install'], home)], {
    env: { ...process.env, QMAILHOME: home }, encoding: 'utf8',
  });
  assertRefused(result, /is on a read-only file system: remount it read-write/);
  assert.deepEqual(snapshot(home), before);
});

test('a shim whose Node is older than 22.19 (replaced after install) reports Z, and qmail-remote itself too', () => {
  const { home, target } = scratchHome();
  // A Node that says 24 when install asks, then runs as 22.18: the real one with its version
  // changed before any program code runs.
  const preload = join(home, 'old-node.cjs');
  writeFileSync(preload, "Object.defineProperty(process.versions, 'node', { value: '22.18.0' });\nObject.defineProperty(process, 'version', { value: 'v22.18.0' });\n");
  const node = join(home, 'node');
  writeFileSync(node, `#!/bin/sh\n[ "$1" = --version ] && { echo v24.0.0; exit 0; }\nexec '${process.execPath}' --require '${preload}' "$@"\n`, { mode: 0o755 });
  assert.equal(cli(['install', '--node', node], home).status, 0);
  const run = spawnSync(target, ['example.net', 'a@example.com', 'b@example.net'], { env: { PATH: '/usr/bin:/bin' }, input: 'Subject: x\n\nx\n' });
  assert.equal(run.status, 0);
  assert.equal(run.stdout.toString('latin1'), 'Zqmail-remote-dkim: Node v22.18.0 is too old, 22.19 or newer is required; mail stays queued. (#4.3.0)\n\0');
  assert.equal(run.stderr.length, 0);

  // 22.19 itself is new enough: the program runs (and reports its usage error for one argument).
  writeFileSync(preload, "Object.defineProperty(process.versions, 'node', { value: '22.19.0' });\n");
  const ok = spawnSync(target, ['only-host'], { env: { PATH: '/usr/bin:/bin' }, input: '' });
  assert.equal(ok.stdout.toString('latin1'), 'DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0');
});

test('the admin commands on a Node older than 22.19 say what to do, exit 111', () => {
  const dir = scratch();
  const preload = join(dir, 'old-node.cjs');
  writeFileSync(preload, "Object.defineProperty(process.versions, 'node', { value: '18.19.0' });\nObject.defineProperty(process, 'version', { value: 'v18.19.0' });\n");
  for (const name of ['qmail-remote-dkim', 'dknewkey']) {
    const bin = fileURLToPath(new URL(`../../bin/${name}`, import.meta.url));
    const result = spawnSync(process.execPath, ['--require', preload, bin, '--help'], { cwd: dir, encoding: 'utf8' });
    assert.equal(result.status, 111, name);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, `${name}: Node v18.19.0 is too old, 22.19 or newer is required; put a newer node first in PATH (see docs/install.md)\n`);
  }
});

test('the Node required is package.json\'s engines', async () => {
  const { MIN_NODE } = await import('../../src/install/shim.ts');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
  assert.equal(pkg.engines.node, `>=${MIN_NODE.join('.')}.0`);
});

test('qmail-dkverify on a Node older than 22.19 exits 81 (a temporary 451), silently', () => {
  const dir = scratch();
  const preload = join(dir, 'old-node.cjs');
  writeFileSync(preload, "Object.defineProperty(process.versions, 'node', { value: '22.18.0' });\n");
  // The check is the launcher's, which bin/qmail-dkverify runs with the node in PATH.
  const bin = fileURLToPath(new URL('../../bin/qmail-dkverify.cjs', import.meta.url));
  const result = spawnSync(process.execPath, ['--require', preload, bin], { cwd: dir, input: 'Subject: x\n\nx\n', encoding: 'utf8' });
  assert.equal(result.status, 81);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr, '');
});

// The code cache (bin/run-bundle.cjs) fits only the Node that built the package: install says
// when the Node it names cannot use it, and says nothing when it can.
test('install notes a Node that cannot use the code the package was compiled with, and only then', async () => {
  const { codeCacheNote } = await import('../../src/install/code-cache.ts');
  const root = fileURLToPath(new URL('../../', import.meta.url));
  assert.equal(codeCacheNote(process.execPath, root), null, 'the Node that built the package uses it');
  const copy = scratch();
  mkdirSync(join(copy, 'bin'));
  mkdirSync(join(copy, 'dist'));
  for (const file of ['run-bundle.cjs', 'package.json']) writeFileSync(join(copy, 'bin', file), readFileSync(join(root, 'bin', file)));
  writeFileSync(join(copy, 'dist', 'qmail-remote.cjs'), readFileSync(join(root, 'dist', 'qmail-remote.cjs')));
  // A cache another Node made: V8 refuses it, as it refuses this one's made for other bytes.
  writeFileSync(join(copy, 'dist', 'qmail-remote.cjs.v8cache'), readFileSync(join(root, 'dist', 'qmail-remote.cjs.v8cache')).subarray(0, 200));
  assert.match(codeCacheNote(process.execPath, copy) ?? '', /cannot use the code this package was compiled with/);

  const { home } = scratchHome();
  const installed = cli(['install'], home);
  assert.equal(installed.status, 0, installed.stderr);
  assert.doesNotMatch(installed.stderr, /cannot use the code/);
});
