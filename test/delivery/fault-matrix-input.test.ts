// The fault matrix, input side: the real bin/qmail-remote with hostile files (FIFO with no
// writer, /dev/zero, a directory, a sparse 8 GB file, one byte over the limit) as each control
// file, key and log target; a hostile fd 0 and environment; the report pipe wired as
// qmail-rspawn wires it (fd 1 = fd 2, 4 KB, non-blocking, a reader that pauses); and many
// deliveries at once. Every run goes through test/helpers/report-pipe.py, so the bytes read are
// everything the process wrote to fd 1 and fd 2 together: asserting them whole proves the
// report is complete and that nothing else (a warning, V8's out-of-memory text) reached fd 2.
// A run that has not ended long after it should have is killed and counted as a hang (status
// 99): the assertions are on outcomes, never on durations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import {
  mkdtempSync, mkdirSync, writeFileSync, copyFileSync, readFileSync, symlinkSync, truncateSync, existsSync, chmodSync, rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Homes } from '../helpers/qmail-remote-rig.ts';
import { startScriptServer, type ScriptServer, type Script } from '../helpers/script-server.ts';
import { MAX_CONTROL_BYTES } from '../../src/common/control.ts';
import { MAX_KEY_BYTES } from '../../src/signing/keys.ts';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const REPORT_PIPE = fileURLToPath(new URL('../helpers/report-pipe.py', import.meta.url));
const RSA_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));
const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const STRAY = fileURLToPath(new URL('../fixtures/malformed-header/bare-cr-in-from.eml', import.meta.url));
const CRASH_ON_CONNECT = fileURLToPath(new URL('../helpers/crash-on-connect.cjs', import.meta.url));
const PYTHON = '/usr/bin/python3';
const IP = '127.0.0.1';
const HUNG = 99;
// Far beyond any healthy run, even on a loaded machine: only a hang gets near it.
const BOUND_S = 60;

const work = mkdtempSync(join(tmpdir(), 'qrd-matrix-'));
const keyRoot = join(work, 'keys');
let server: ScriptServer;

const K = `r\0K${IP} accepted message.\nRemote host said: 250 queued\n\0`;
const Z_CONTROL = 'ZUnable to read control files. (#4.3.0)\n\0';
const Z_KEY = 'ZUnable to read DKIM/DomainKeys private key. (#4.3.0)\n\0';
const Z_MESSAGE = 'ZUnable to read message. (#4.3.0)\n\0';

before(async () => {
  mkdirSync(join(keyRoot, 'example.com'), { recursive: true });
  copyFileSync(RSA_KEY, join(keyRoot, 'example.com', 'default'));
  server = await startScriptServer({});
});

after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Outcome {
  /** Every byte written to fd 1 and fd 2, which are one pipe. */
  readonly report: string;
  readonly status: number | null;
}

interface PipeOptions {
  readonly stdin?: string;
  readonly env?: Record<string, string>;
  readonly pause?: number;
  readonly size?: number;
  /** Before the command: strace and its options. */
  readonly prefix?: readonly string[];
  /** Node's own options, before bin/qmail-remote. */
  readonly nodeArgs?: readonly string[];
  /** Seconds after which a run that has not ended counts as hung; BOUND_S unless given. */
  readonly bound?: number;
}

/** Runs bin/qmail-remote behind the report pipe and collects what came out of it. */
function runPiped(args: readonly string[], options: PipeOptions = {}): Promise<Outcome> {
  const pipeArgs = [
    REPORT_PIPE, '--stdin', options.stdin ?? `file:${SIMPLE}`, '--pause', String(options.pause ?? 0.2),
    '--size', String(options.size ?? 4096), '--bound', String(options.bound ?? BOUND_S), '--',
    ...(options.prefix ?? []), process.execPath, ...(options.nodeArgs ?? []), QMAIL_REMOTE, ...args,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, pipeArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', ...options.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // A safety net for the helper itself; its own bound ends a hung qmail-remote long before.
    const killer = setTimeout(() => child.kill('SIGKILL'), ((options.bound ?? BOUND_S) + 30) * 1000);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(killer);
      const helperErr = Buffer.concat(err).toString();
      if (helperErr !== '') reject(new Error(`report-pipe.py: ${helperErr}`));
      else resolve({ report: Buffer.concat(out).toString('latin1'), status });
    });
  });
}

const homes = new Homes('qrd-matrix-input-homes-');
/** The control directory of a new qmail home routed to the scripted server; `files` overrides or adds files. */
function control(files: Record<string, string> = {}, port = server.port): string {
  return join(homes.home({ dksign: `${keyRoot}/%/default\n`, smtproutes: `:127.0.0.1:${port}\n`, timeoutremote: '10\n', ...files }, { me: 'mail.example.com\n' }), 'control');
}

const ARGS = ['example.net', 'alice@example.com', 'bob@example.net'];

function deliver(controlDir: string, options: PipeOptions = {}): Promise<Outcome> {
  return runPiped(ARGS, { ...options, env: { CONTROLDIR: controlDir, ...options.env } });
}

function expectOutcome(outcome: Outcome, report: string): void {
  assert.notEqual(outcome.status, HUNG, `hung; wrote ${JSON.stringify(outcome.report.slice(0, 200))}`);
  assert.equal(outcome.report, report, 'the report, whole, and nothing else on fd 1 or fd 2');
  assert.equal(outcome.status, 0);
}

// ---- hostile files -------------------------------------------------------------------------

type Maker = (path: string) => void;
const hostileFiles = (limit: number): Record<string, Maker> => ({
  'a FIFO with no writer': (path) => execFileSync('mkfifo', [path]),
  '/dev/zero': (path) => symlinkSync('/dev/zero', path),
  'a directory': (path) => mkdirSync(path),
  'a sparse 8 GB file': (path) => {
    writeFileSync(path, '');
    truncateSync(path, 8 * 2 ** 30);
  },
  'one byte over the limit': (path) => writeFileSync(path, 'mail.example.com\n'.padEnd(limit + 1, '#')),
});

const CONTROL_FILES = ['me', 'helohost', 'smtproutes', 'timeoutconnect', 'timeoutremote', 'dksign'];

for (const name of CONTROL_FILES) {
  for (const [kind, make] of Object.entries(hostileFiles(MAX_CONTROL_BYTES))) {
    test(`control/${name} is ${kind}: qmail's "Unable to read control files", no connection`, async () => {
      const dir = control();
      execFileSync('rm', ['-f', join(dir, name)]);
      make(join(dir, name));
      const sessions = server.sessions.length;
      expectOutcome(await deliver(dir), Z_CONTROL);
      assert.equal(server.sessions.length, sessions);
    });
  }
}

test('a control file exactly at the limit is read', async () => {
  const dir = control({ me: 'mail.example.com\n'.padEnd(MAX_CONTROL_BYTES, '#') });
  expectOutcome(await deliver(dir), K);
});

for (const [kind, make] of Object.entries(hostileFiles(MAX_KEY_BYTES))) {
  test(`the key is ${kind}: Z READ_KEY before any connection`, async () => {
    const root = homes.path('keys');
    mkdirSync(join(root, 'example.com'), { recursive: true });
    make(join(root, 'example.com', 'default'));
    const sessions = server.sessions.length;
    expectOutcome(await deliver(control({ dksign: `${root}/%/default\n` })), Z_KEY);
    assert.equal(server.sessions.length, sessions);
  });
}

test('a key named relative to QMAILHOME that is a FIFO: Z READ_KEY', async () => {
  const home = join(work, 'home');
  mkdirSync(join(home, 'dk', 'example.com'), { recursive: true });
  execFileSync('mkfifo', [join(home, 'dk', 'example.com', 'default')]);
  expectOutcome(await deliver(control({ dksign: 'dk/%/default\n' }), { env: { QMAILHOME: home } }), Z_KEY);
});

// The log never changes the report: a target that cannot take the line drops it.
const hostileLogs: Record<string, () => string> = {
  ...Object.fromEntries(Object.entries(hostileFiles(0)).filter(([kind]) => kind !== 'one byte over the limit').map(([kind, make]) => [kind, () => {
    const path = homes.path('log');
    make(path);
    return path;
  }])),
  '/dev/null': () => '/dev/null',
  'a read-only file': () => {
    const path = homes.path('log');
    writeFileSync(path, '');
    chmodSync(path, 0o444);
    return path;
  },
};

for (const [kind, target] of Object.entries(hostileLogs)) {
  test(`QMAILREMOTE_LOG is ${kind}: delivered, reported, and the process ends`, async () => {
    const path = target();
    expectOutcome(await deliver(control(), { env: { QMAILREMOTE_LOG: path } }), K);
  });
  test(`control/dklog names ${kind}: delivered, reported, and the process ends`, async () => {
    const path = target();
    expectOutcome(await deliver(control({ dklog: `${path}\n` })), K);
  });
}

for (const [kind, make] of Object.entries(hostileFiles(MAX_CONTROL_BYTES))) {
  test(`control/dklog itself is ${kind}: delivered without a log`, async () => {
    const dir = control();
    make(join(dir, 'dklog'));
    expectOutcome(await deliver(dir), K);
  });
}

test('a log file in a missing directory: delivered, no directory created, no log', async () => {
  const missing = join(work, 'no-such-dir', 'deeper');
  expectOutcome(await deliver(control(), { env: { QMAILREMOTE_LOG: join(missing, 'delivery.log') } }), K);
  assert.equal(existsSync(join(work, 'no-such-dir')), false);
});

test('a log file that is there gets its line; a stray header line is delivered unsigned with a note', async () => {
  const log = join(work, 'good.log');
  expectOutcome(await deliver(control(), { env: { QMAILREMOTE_LOG: log } }), K);
  expectOutcome(await deliver(control(), { env: { QMAILREMOTE_LOG: log }, stdin: `file:${STRAY}` }), K);
  const lines = readFileSync(log, 'latin1').trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0] ?? '', /sig=\[dkim d=example\.com/);
  assert.match(lines[1] ?? '', /unsigned note=\[a header line is neither a field nor a continuation/);
  const stray = server.sessions.at(-1)?.messages[0]?.toString('latin1') ?? '';
  assert.doesNotMatch(stray, /Signature:/);
});

// ---- fd 0 ----------------------------------------------------------------------------------

const hostileInput: Record<string, () => string> = {
  closed: () => 'closed',
  'a directory': () => `dir:${work}`,
  'open for writing only': () => {
    const path = homes.path('wo.eml');
    copyFileSync(SIMPLE, path);
    return `write:${path}`;
  },
  '/dev/zero': () => 'file:/dev/zero',
  '/dev/null': () => 'file:/dev/null',
};

for (const [kind, stdin] of Object.entries(hostileInput)) {
  test(`fd 0 ${kind}: "Unable to read message", no connection`, async () => {
    const sessions = server.sessions.length;
    expectOutcome(await deliver(control(), { stdin: stdin() }), Z_MESSAGE);
    assert.equal(server.sessions.length, sessions);
  });
}

// ---- environment ---------------------------------------------------------------------------

test('CONTROLDIR missing, a FIFO, or a file: "Unable to read control files"', async () => {
  const fifo = join(work, 'control-fifo');
  execFileSync('mkfifo', [fifo]);
  for (const dir of [join(work, 'nowhere'), fifo, SIMPLE]) {
    expectOutcome(await runPiped(ARGS, { env: { CONTROLDIR: dir } }), Z_CONTROL);
  }
});

test('a relative CONTROLDIR is under QMAILHOME; an empty environment otherwise changes nothing', async () => {
  const dir = control();
  const home = dirname(dir);
  expectOutcome(await runPiped(ARGS, { env: { QMAILHOME: dirname(home), CONTROLDIR: dir.slice(dirname(home).length + 1) } }), K);
  expectOutcome(await runPiped(ARGS, { env: { CONTROLDIR: dir, HOME: '/nonexistent', TMPDIR: '/nonexistent', LANG: 'xx_XX.bogus', TZ: ':/dev/zero' } }), K);
});

test('a message on a pipe with TMPDIR unusable: "Unable to read message"', async () => {
  const dir = control();
  const fifo = join(work, 'message-fifo');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('/bin/sh', ['-c', `cat "$1" > "$2"`, 'sh', SIMPLE, fifo], { stdio: 'ignore' });
  const written = new Promise((resolve) => writer.on('close', resolve));
  expectOutcome(await runPiped(ARGS, { stdin: `file:${fifo}`, env: { CONTROLDIR: dir, TMPDIR: join(work, 'no-tmp') } }), Z_MESSAGE);
  await written;
});

// ---- the report pipe -----------------------------------------------------------------------

test('1,000 recipients and 5000-byte replies through a 4 KB non-blocking pipe whose reader pauses', async () => {
  const text = (code: string): string => `${code} ${'x'.repeat(4996)}`;
  const rcpt = Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? '250 ok' : text(i % 3 === 1 ? '550' : '451')));
  const big = await startScriptServer({ replies: { RCPT: rcpt, '.': text('250') } } satisfies Script);
  try {
    const recips = Array.from({ length: 1000 }, (_, i) => `user${i}@example.net`);
    const outcome = await runPiped(['example.net', 'alice@example.com', ...recips],
      { env: { CONTROLDIR: control({}, big.port) }, pause: 2, size: 4096 });
    const said = (reply: string): string => `Remote host said: ${reply}\n`;
    const expected = rcpt.map((reply) => reply.startsWith('250') ? 'r\0'
      : `${reply.startsWith('5') ? 'h' : 's'}${IP} does not like recipient.\n${said(reply)}\0`).join('') +
      `K${IP} accepted message.\n${said(text('250'))}\0`;
    assert.ok(expected.length > 3_000_000);
    expectOutcome(outcome, expected);
  } finally {
    await big.close();
  }
});

for (const how of ['throw', 'reject']) {
  test(`an unexpected ${how === 'throw' ? 'exception' : 'rejection'} mid-delivery: Z, whole, the process ends at once, the cause logged`, async () => {
    const log = join(work, `crash-${how}.log`);
    const outcome = await deliver(control(), { env: { CRASH: how, QMAILREMOTE_LOG: log }, nodeArgs: ['--require', CRASH_ON_CONNECT], pause: 1 });
    expectOutcome(outcome, 'Zqmail-remote-dkim hit an internal error; will try again. (#4.3.0)\n\0');
    const line = readFileSync(log, 'latin1');
    assert.match(line, /host=example\.net .*note=\[crash: injected fault\] result=Z /);
    assert.equal(line.split('\n').length, 2, 'one line');
  });
}

// ---- paths outside the key root ------------------------------------------------------------

test('hostile From: domains open no path outside the key root', async (t) => {
  if (!existsSync('/usr/bin/strace')) {
    t.skip('strace is not installed');
    return;
  }
  // Keys where a domain that escaped the template would find them.
  for (const escape of [join(work, 'canary'), join(work, 'dir.example.com')]) {
    mkdirSync(escape, { recursive: true });
    copyFileSync(RSA_KEY, join(escape, 'default'));
  }
  const domains = ['../canary', 'sub/dir.example.com', '..', 'example.com/../../canary', '%2e%2e', '[127.0.0.1]', '*'];
  for (const domain of domains) {
    const message = homes.path('hostile.eml');
    writeFileSync(message, `From: mallory@${domain}\nTo: bob@example.net\nSubject: escape\n\nHi\n`);
    const trace = homes.path('trace');
    const outcome = await deliver(control({ dksign: `${keyRoot}/%/default\n` }),
      { stdin: `file:${message}`, prefix: ['/usr/bin/strace', '-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', trace] });
    expectOutcome(outcome, K);
    const opened = [...readFileSync(trace, 'latin1').matchAll(/open(?:at2?)?\((?:AT_FDCWD, )?"([^"]*)"/g)].map((m) => m[1] ?? '');
    const underWork = opened.filter((path) => path.startsWith(work) && !path.startsWith(join(work, 'control')) && path !== message);
    for (const path of underWork) assert.ok(path.startsWith(`${keyRoot}/`), `${JSON.stringify(domain)} opened ${path}`);
    assert.ok(!opened.some((path) => path.includes('canary') || path.includes('dir.example.com')), JSON.stringify(domain));
  }
  // The same trace of an ordinary sender shows its key being opened: the check above can fail.
  const trace = homes.path('trace');
  expectOutcome(await deliver(control(), { prefix: ['/usr/bin/strace', '-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', trace] }), K);
  assert.match(readFileSync(trace, 'latin1'), new RegExp(`open(at2?)?\\((AT_FDCWD, )?"${keyRoot}/example\\.com/default"`));
});

// ---- many at once --------------------------------------------------------------------------

const CONCURRENT = 60;

test(`${CONCURRENT} deliveries at once against one server, each through its own small pipe: every report whole`, async () => {
  const shared = await startScriptServer({ replies: { '.': '250 queued' } });
  try {
    // Two cores starting this many processes, with the server in this one: the SMTP timeouts
    // are set far beyond any wait that load alone could cause.
    const dir = control({ timeoutremote: '100\n', timeoutconnect: '100\n' }, shared.port);
    const runs = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) =>
      runPiped(['example.net', 'alice@example.com', `rcpt${i}@example.net`], { env: { CONTROLDIR: dir }, pause: 0.1, bound: 110 })));
    for (const outcome of runs) expectOutcome(outcome, K);
    await shared.idle();
    assert.equal(shared.sessions.length, CONCURRENT);
    const rcpts = shared.sessions.flatMap((s) => s.commands.filter((c) => c.startsWith('RCPT'))).sort();
    assert.deepEqual(rcpts, Array.from({ length: CONCURRENT }, (_, i) => `RCPT TO:<rcpt${i}@example.net>`).sort());
  } finally {
    await shared.close();
  }
});
