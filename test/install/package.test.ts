// docs/install.md, done as it says: Node 24 from the npm registry's `node` package, the
// program packed with `npm pack` and installed from the tarball with `npm install -g` (no build
// step, no devDependencies), a key made with the installed dknewkey, the shim installed into a
// qmail home that holds a stand-in qmail-remote, a delivery through that shim exactly as
// qmail-rspawn makes one (an empty environment but PATH=/usr/bin:/bin, fd 0 the message file,
// fds 1 and 2 one pipe), an upgrade to a newer tarball, and the rollback.
//
// Everything goes into temporary directories: `--prefix` stands for /usr/local, QMAILHOME for
// /var/qmail, a directory of keys for /etc/domainkeys. Each documented command is run here as
// written, with those paths put in, or a comment says why it cannot be. Packages come from
// npm's cache when it has them (--prefer-offline); the registry is asked otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync, closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync,
  symlinkSync, writeFileSync,
} from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type Run } from '../helpers/run.ts';
import { registryEnv } from '../helpers/registry-env.ts';
import { startScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { verifyWithDkimpy } from '../helpers/verifiers.ts';
import { addedField, asReceived, dkverify } from '../verify/harness.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What a checkout holds that the package is made from; tests and benchmarks stay behind. */
const CHECKOUT = ['package.json', 'package-lock.json', 'LICENSE', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'bin', 'src', 'scripts', 'control', 'docs'];
const MESSAGE = 'From: Alice <alice@example.com>\nTo: bob@example.net\nSubject: through the installed shim\n' +
  'Date: Tue, 14 Nov 2023 22:13:20 +0000\nMessage-ID: <package-test@example.com>\n\nHello.\n';
const ORIGINAL = '#!/bin/sh\n# stands in for qmail\'s qmail-remote\nexit 111\n';
const NPM_QUIET = ['--prefer-offline', '--no-audit', '--no-fund'];

const work = mkdtempSync(join(tmpdir(), 'qrd-package-'));
after(() => rmSync(work, { recursive: true, force: true }));
const checkout = join(work, 'checkout');
const nodePrefix = join(work, 'node-prefix');
const prefix = join(work, 'prefix');
const home = join(work, 'qmail');
const keys = join(work, 'domainkeys');
const target = join(home, 'bin', 'qmail-remote');
// `install` looks up qmailr and qmaild in a passwd file: here one that does not exist (no
// users), never this host's, whose accounts would decide what the tests see.
const NO_HOST_ACCOUNTS = ['--passwd', join(work, 'no-passwd')];
const pkg = join(prefix, 'lib', 'node_modules', 'qmail-remote-dkim');
let dns: DnsServer;
/** What the scripted server received from the installed qmail-remote. */
let delivered: Buffer | undefined;
after(() => dns?.stop());

/** The npm of this host, found before PATH is changed. */
const npmCommand = findInPath('npm', process.env.PATH ?? '');
/** After step 1: the Node the documented way installs first, then what an administrator's PATH has. */
let adminPath = '';

function findInPath(name: string, path: string): string {
  for (const dir of path.split(delimiter)) if (dir && existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`no ${name} in PATH`);
}

/**
 * An administrator's shell: their PATH, HOME (npm's cache), what reaches the registry from this
 * host (CA, proxy and npm settings: registry-env.ts), and nothing of the npm running these tests.
 */
function adminEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...registryEnv(), PATH: adminPath || (process.env.PATH ?? ''), HOME: process.env.HOME ?? '/root', ...extra };
}

async function sh(command: string, args: string[], options: { cwd?: string; env?: Record<string, string>; stdin?: number } = {}): Promise<Run> {
  const result = await run(command, args, { env: adminEnv(options.env), cwd: options.cwd ?? work, ...(options.stdin !== undefined ? { stdin: options.stdin } : {}) });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

const npm = (args: string[], cwd = work) => sh(npmCommand, [...args, ...NPM_QUIET], { cwd });

before(async () => {
  // `git clone … && cd qmail-remote-dkim && npm ci`: the checkout is copied from this one, and
  // its node_modules is this one's (installing them again would fetch the same packages).
  // Searchable by anyone, as the way to /etc/domainkeys is: qmailr must reach the keys.
  chmodSync(work, 0o755);
  writeFileSync(join(work, 'some.eml'), MESSAGE);
  mkdirSync(checkout);
  for (const name of CHECKOUT) cpSync(join(ROOT, name), join(checkout, name), { recursive: true });
  rmSync(join(checkout, 'dist'), { recursive: true, force: true });
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'));
  mkdirSync(join(home, 'bin'), { recursive: true });
  writeFileSync(target, ORIGINAL, { mode: 0o755 });
  mkdirSync(join(home, 'control'));
  writeFileSync(join(home, 'control', 'me'), 'mail.example.com\n');
});

test('Node 24 from the npm registry: `npm install -g node@24`', async () => {
  // `apt-get install npm`: this host's npm stands in for Debian's; the test installs no
  // system packages.
  await npm(['install', '-g', '--prefix', nodePrefix, 'node@24']);
  // /usr/local/bin comes before /usr/bin in an administrator's PATH: the new node is found first.
  adminPath = [join(nodePrefix, 'bin'), join(prefix, 'bin'), process.env.PATH ?? ''].join(delimiter);
  assert.equal(findInPath('node', adminPath), join(nodePrefix, 'bin', 'node'));
  const version = await sh('sh', ['-c', 'hash -r && node --version']);
  const [major = 0, minor = 0] = version.stdout.slice(1).split('.').map(Number);
  assert.ok(major > 22 || (major === 22 && minor >= 19), version.stdout);
});

test('`npm pack` builds and packs; `npm install -g` of the tarball needs no build and no devDependencies', async () => {
  const packed = await npm(['pack'], checkout);
  const tarball = join(checkout, packed.stdout.trim().split('\n').pop() ?? '');
  assert.match(tarball, /qmail-remote-dkim-\d+\.\d+\.\d+\.tgz$/);
  await npm(['install', '-g', '--prefix', prefix, tarball]);

  for (const name of ['qmail-remote-dkim', 'dknewkey']) assert.equal(findInPath(name, adminPath), join(prefix, 'bin', name));
  // The code caches the build trained (bin/run-bundle.cjs) ship beside their bundles.
  const caches = ['qmail-remote', 'qmail-dkverify-check', 'qmail-dkverify-mailauth'].map((name) => `dist/${name}.cjs.v8cache`);
  for (const file of ['dist/qmail-remote.cjs', ...caches, 'dist/cli/main.js', 'bin/qmail-remote', 'bin/run-bundle.cjs', 'LICENSE', 'README.md', 'control/dksign', 'docs/install.md']) {
    assert.ok(existsSync(join(pkg, file)), `${file} is in the package`);
  }
  for (const file of ['src', 'test', 'bench', 'tsconfig.json']) assert.equal(existsSync(join(pkg, file)), false, `${file} stays out`);
  const installed = readdirSync(join(pkg, 'node_modules'));
  for (const dev of ['typescript', 'esbuild', 'eslint', 'node']) assert.ok(!installed.includes(dev), `no ${dev} installed`);
  // `man qmail-remote-dkim` finds the pages npm linked under the prefix's share/man.
  for (const page of ['qmail-remote-dkim.8', 'dknewkey.8']) {
    assert.equal(readFileSync(join(prefix, 'share', 'man', 'man8', page), 'utf8'), readFileSync(join(ROOT, 'docs', 'man', page), 'utf8'));
  }
  const help = await sh('qmail-remote-dkim', ['--help']);
  assert.match(help.stdout, /qmail-remote-dkim install/);
});

test('a key from the installed dknewkey, dksign, and the audit', async () => {
  // `mkdir -p /etc/domainkeys/example.com && cd /etc/domainkeys/example.com`
  mkdirSync(join(keys, 'example.com'), { recursive: true, mode: 0o755 });
  const dir = join(keys, 'example.com');
  // `dknewkey default > default.pub`; as root it gives the key to group qmail, found here in a
  // group file of the test's own (this host may have no qmail group), so `chown root:qmail
  // default && chmod 0640 default` has already been done, as the check below shows.
  const groupFile = join(work, 'group');
  writeFileSync(groupFile, 'root:x:0:\nqmail:x:4242:\n');
  const passwdFile = join(work, 'passwd');
  writeFileSync(passwdFile, 'root:x:0:0:root:/root:/bin/sh\nqmailr:x:4243:4242::/var/qmail:/bin/false\n');
  const made = await sh('dknewkey', ['default', '--group', groupFile], { cwd: dir });
  writeFileSync(join(dir, 'default.pub'), made.stdout);
  const st = statSync(join(dir, 'default'));
  assert.equal(st.mode & 0o777, 0o640);
  if (process.getuid?.() === 0) assert.equal(st.gid, 4242);
  // `echo '/etc/domainkeys/%/default' > /var/qmail/control/dksign`
  writeFileSync(join(home, 'control', 'dksign'), `${keys}/%/default\n`);
  // The record published (`default._domainkey.example.com`), then
  // `qmail-remote-dkim keys --dns 127.0.0.1` asks that server.
  const txt = [...made.stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  dns = await startDns({ txt: [{ name: 'default._domainkey.example.com', text: txt }] });
  const audit = await sh('qmail-remote-dkim', ['keys', '--dns', dns.server, '--passwd', passwdFile, '--group', groupFile], { env: { QMAILHOME: home } });
  assert.match(audit.stdout, /ok: default\._domainkey\.example\.com publishes this key\n1 key, 0 problems\n$/);
  // `qmail-remote-dkim sign --explain < some.eml > /dev/null`
  const fd = openSync(join(work, 'some.eml'), 'r');
  try {
    const explained = await sh('qmail-remote-dkim', ['sign', '--explain'], { env: { QMAILHOME: home }, stdin: fd });
    assert.match(explained.stderr, /example\.com/);
  } finally {
    closeSync(fd);
  }
});

test('`qmail-remote-dkim install`, never without a qmail-remote; a delivery as qmail-rspawn makes one', async () => {
  const original = readFileSync(target);
  // `qmail-remote-dkim install` (QMAILHOME stands for /var/qmail).
  const installed = await watchingTarget(() => sh('qmail-remote-dkim', ['install', ...NO_HOST_ACCOUNTS], { env: { QMAILHOME: home } }));
  assert.deepEqual(readFileSync(`${target}.orig`), original);
  const shim = readFileSync(target, 'utf8');
  // The Node that ran install (the npm-installed one, by its real path) and this installation.
  assert.ok(shim.includes(`exec '${join(nodePrefix, 'lib', 'node_modules', 'node', 'bin', 'node')}' --no-warnings '${join(pkg, 'bin', 'qmail-remote')}' "$@"`), shim);
  assert.match(installed.stderr, /kept the original as .*qmail-remote\.orig\nwrote /);

  // `env -i PATH=/usr/bin:/bin /var/qmail/bin/qmail-remote example.net alice@example.com bob@example.net < some.eml 2>&1`
  // (`| tr '\0' '\n'` only makes the report readable on a terminal).
  const server = await startScriptServer({ replies: { '.': '250 2.0.0 Ok: queued as 7' } });
  try {
    writeFileSync(join(home, 'control', 'smtproutes'), `:127.0.0.1:${server.port}\n`);
    const report = await asQmailRspawn(['example.net', 'alice@example.com', 'bob@example.net']);
    assert.equal(report, 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: queued as 7\n\0');
    await server.idle();
    const message = server.sessions[0]?.messages[0];
    assert.ok(message);
    delivered = message;
    const verdict = await verifyWithDkimpy(message, dns.server);
    assert.deepEqual(verdict.signatures.map((s) => [s.type, s.result]), [['dkim', 'pass']], 'signed with the key dknewkey made');
  } finally {
    await server.close();
  }
});

test('the installed qmail-dkverify, as qmail-smtpd runs it, passes what the installed qmail-remote sent', async () => {
  assert.ok(delivered, 'the delivery test ran first');
  const run = await dkverify(asReceived(delivered), dns.server, { bin: join(pkg, 'bin', 'qmail-dkverify'), env: { DKVERIFY: 'DEGIJKfh,CGHIJMQRkl' } });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '');
  const field = addedField(run);
  assert.match(field, /\bdkim=pass header\.d=example\.com header\.s=default\b/);
  assert.match(field, /\bdomainkeys=pass\b/);
});

test('upgrade: a newer tarball over the old one, `install` again changes nothing, mail still goes', async () => {
  const shimBefore = readFileSync(target);
  // A newer release: the same checkout with the next version number, packed as before (its
  // dist/ is built already).
  const manifest = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { version: string };
  const next = manifest.version.replace(/\d+$/, (patch) => String(Number(patch) + 1));
  writeFileSync(join(checkout, 'package.json'), JSON.stringify({ ...manifest, version: next }, null, 2));
  const packed = await npm(['pack', '--ignore-scripts'], checkout);
  // `npm install -g ./qmail-remote-dkim-<new version>.tgz`, then `qmail-remote-dkim install`.
  await watchingTarget(() => npm(['install', '-g', '--prefix', prefix, join(checkout, packed.stdout.trim().split('\n').pop() ?? '')]));
  assert.equal((JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version, next);
  const again = await watchingTarget(() => sh('qmail-remote-dkim', ['install', ...NO_HOST_ACCOUNTS], { env: { QMAILHOME: home } }));
  assert.match(again.stderr, /is the shim already; nothing changed/);
  assert.deepEqual(readFileSync(target), shimBefore);
  assert.equal(readFileSync(`${target}.orig`, 'utf8'), ORIGINAL);

  const server = await startScriptServer({});
  try {
    writeFileSync(join(home, 'control', 'smtproutes'), `:127.0.0.1:${server.port}\n`);
    assert.match(await asQmailRspawn(['example.net', 'alice@example.com', 'bob@example.net']), /^r\0K127\.0\.0\.1 accepted message\./);
  } finally {
    await server.close();
  }
});

test('the $QMAILREMOTE alternative: `install --to` writes a shim of its own and leaves qmail alone', async () => {
  // `qmail-remote-dkim install --to /usr/local/bin/qmail-remote-dkim-shim`. Adding
  // QMAILREMOTE to /var/qmail/rc and restarting qmail needs a running qmail: not here.
  const own = join(work, 'qmail-remote-dkim-shim');
  const before = readFileSync(target);
  await sh('qmail-remote-dkim', ['install', '--to', own], { env: { QMAILHOME: home } });
  assert.match(readFileSync(own, 'utf8'), /qmail-remote-dkim shim/);
  assert.deepEqual(readFileSync(target), before);
  assert.equal(existsSync(`${own}.orig`), false);
});

test('a compile cache: `install --cache DIR` with a private directory', async () => {
  // `mkdir /var/qmail/dkim-cache && chown qmailr:qmail /var/qmail/dkim-cache`: this host may
  // have no qmailr, so the directory stays root's; what install checks is that only its owner
  // can write to it.
  const cache = join(home, 'dkim-cache');
  mkdirSync(cache, { mode: 0o700 });
  await sh('qmail-remote-dkim', ['install', '--cache', cache, ...NO_HOST_ACCOUNTS], { env: { QMAILHOME: home } });
  assert.ok(readFileSync(target, 'utf8').includes(`NODE_COMPILE_CACHE='${cache}'; export NODE_COMPILE_CACHE`));
  const server = await startScriptServer({});
  try {
    writeFileSync(join(home, 'control', 'smtproutes'), `:127.0.0.1:${server.port}\n`);
    assert.match(await asQmailRspawn(['example.net', 'alice@example.com', 'bob@example.net']), /^r\0K/);
  } finally {
    await server.close();
  }
});

test('rollback: `qmail-remote-dkim uninstall` restores the original byte for byte; `npm uninstall -g`', async () => {
  // `mv /var/qmail/bin/qmail-remote.orig /var/qmail/bin/qmail-remote`, the rollback by hand, is
  // the rename uninstall makes.
  await watchingTarget(() => sh('qmail-remote-dkim', ['uninstall'], { env: { QMAILHOME: home } }));
  assert.equal(readFileSync(target, 'utf8'), ORIGINAL);
  assert.equal(statSync(target).mode & 0o777, 0o755);
  assert.equal(existsSync(`${target}.orig`), false);
  await npm(['uninstall', '-g', '--prefix', prefix, 'qmail-remote-dkim']);
  assert.equal(existsSync(join(prefix, 'bin', 'qmail-remote-dkim')), false);
});

test('from a checkout: `npm run build && npm install -g .` links it', async () => {
  // `npm ci` in the checkout was done above (the copy shares this one's node_modules).
  const linked = join(work, 'prefix-linked');
  await sh(npmCommand, ['run', 'build'], { cwd: checkout });
  await npm(['install', '-g', '--prefix', linked, '.'], checkout);
  const help = await sh(join(linked, 'bin', 'qmail-remote-dkim'), ['--help']);
  assert.match(help.stdout, /qmail-remote-dkim install/);
  assert.ok(existsSync(join(linked, 'bin', 'dknewkey')));
});

/** Runs the shim as qmail-rspawn does: empty environment but PATH, fd 0 the message file, fd 2 = fd 1. */
async function asQmailRspawn(args: string[]): Promise<string> {
  const fd = openSync(join(work, 'some.eml'), 'r');
  try {
    // One pipe for both: the shell makes fd 2 a copy of fd 1, then becomes `env -i …`.
    const viaShell = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', 'env', '-i', 'PATH=/usr/bin:/bin', target, ...args], { stdio: [fd, 'pipe', 'pipe'], env: {} });
    const chunks: Buffer[] = [];
    viaShell.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
    const [status] = await new Promise<[number | null]>((resolve) => viaShell.on('close', (code) => resolve([code])));
    assert.equal(status, 0, 'qmail-remote exits 0');
    return Buffer.concat(chunks).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs `step` while another process checks, as fast as it can, that bin/qmail-remote exists:
 * qmail-rspawn may exec it at any moment. Fails if it was ever missing.
 */
async function watchingTarget<T>(step: () => Promise<T>): Promise<T> {
  const stop = join(work, 'stop-watching');
  rmSync(stop, { force: true });
  const watcher = spawn('sh', ['-c', 'n=0; while [ ! -e "$2" ]; do [ -e "$1" ] || { echo missing; exit 1; }; n=$((n+1)); done; echo "checked $n"', 'sh', target, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
  let said = '';
  watcher.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
  const ended = new Promise<void>((resolve) => watcher.on('close', () => resolve()));
  try {
    return await step();
  } finally {
    writeFileSync(stop, '');
    await ended;
    rmSync(stop, { force: true });
    assert.match(said, /^checked [1-9]\d*\n$/, 'bin/qmail-remote was there whenever qmail-rspawn could have looked');
  }
}
