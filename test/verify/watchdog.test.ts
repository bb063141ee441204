// The deadline a verification is kept to from outside (bin/qmail-dkverify and
// src/verify/watchdog.ts), in real processes: the script as shipped, started as qmail-smtpd
// starts it, runs a stand-in for qmail-dkverify.cjs beside it that arms the watchdog and then
// does what each test needs. A Node process whose only thread is busy and never looks at a timer
// is killed; one that disarms in time lives on; the status of what runs is the script's; a
// watchdog that cannot run kills instead of leaving a verification without a deadline; nothing
// is left running. The busy loops end by themselves after a minute, so a broken watchdog fails
// these tests instead of hanging them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PATH_WITH_THIS_NODE } from './harness.ts';

const SCRIPT = fileURLToPath(new URL('../../bin/qmail-dkverify', import.meta.url));
const WATCHDOG = fileURLToPath(new URL('../../src/verify/watchdog.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'watchdog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// The script as shipped, beside the stand-in it runs in qmail-dkverify.cjs's place.
const bin = join(dir, 'bin');
mkdirSync(bin);
const script = join(bin, 'qmail-dkverify');
copyFileSync(SCRIPT, script);
writeFileSync(join(bin, 'qmail-dkverify.cjs'), `'use strict';
const { armWatchdog, watchdogFd } = require(${JSON.stringify(WATCHDOG)});
const fs = require('node:fs');
const mark = (what) => fs.writeFileSync(process.env.MARKS + '/' + what, String(process.pid));
const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
const { FAKE, MS } = process.env;
if (FAKE === 'args') { fs.writeFileSync(process.env.MARKS + '/args', process.argv.slice(2).join(' ')); process.exit(0); }
const watchdog = armWatchdog(watchdogFd(process.argv.find((arg) => arg.startsWith('--watchdog-fd='))?.slice(14)), Number(MS));
mark('armed');
if (FAKE === 'busy') { setTimeout(() => mark('timer'), 0); busy(60_000); mark('survived'); }
if (FAKE === 'disarm') { watchdog.disarm(); busy(Number(MS) + 1200); mark('survived'); }
if (FAKE === 'exit') process.exitCode = Number(process.env.STATUS);
if (FAKE === 'kill') process.kill(process.pid, 'SIGKILL');
if (FAKE === 'exec') { watchdog.disarm(); process.execve(process.env.NEXT, [process.env.NEXT], process.env); }
`);

interface Ended {
  readonly status: number | null;
  readonly stderr: string;
  /** What the stand-in marked: 'armed', 'timer', 'survived', its arguments... */
  readonly marks: readonly string[];
}

let runs = 0;

/** Runs the script as qmail-smtpd would, DKVERIFY set, with `env` for the stand-in. */
function run(env: Record<string, string>, path = script): Promise<Ended> {
  const marks = join(dir, `marks${runs++}`);
  mkdirSync(marks);
  const child = spawn(path, [], {
    // QMAILHOME: a directory without a qmail-queue, never the host's.
    env: { PATH: PATH_WITH_THIS_NODE, QMAILHOME: dir, DKVERIFY: '', MARKS: marks, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr, marks: readdirSync(marks).sort() })));
}

test('a Node process busy past the deadline, its timers unseen, is killed: 81', async () => {
  const ended = await run({ FAKE: 'busy', MS: '300' });
  assert.deepEqual(ended, { status: 81, stderr: '', marks: ['armed'] }, 'neither the timer nor the end of the loop was reached');
});

test('a Node process that disarms in time runs on past the deadline', async () => {
  const ended = await run({ FAKE: 'disarm', MS: '300' });
  assert.deepEqual(ended, { status: 0, stderr: '', marks: ['armed', 'survived'] });
});

test("the program's exit status is the script's; killed by a signal, 81", async () => {
  for (const status of [0, 31, 53, 71, 81, 91]) {
    assert.equal((await run({ FAKE: 'exit', MS: '60000', STATUS: String(status) })).status, status);
  }
  assert.equal((await run({ FAKE: 'kill', MS: '60000' })).status, 81);
});

test('the program it becomes (exec) keeps our status and has no child of ours: the watchdog is none of its children', async () => {
  // A next program that waits a moment, then records its children, as one that wait()s would find them.
  const next = join(dir, 'next');
  writeFileSync(next, '#!/bin/sh\nsleep 1\nfor s in /proc/[0-9]*/stat; do read -r line 2>/dev/null < "$s" || continue; set -- ${line##*) }; [ "$2" = "$$" ] && printf "%s " "$s"; done > "$MARKS/children"\nexit 42\n', { mode: 0o755 });
  const ended = await run({ FAKE: 'exec', MS: '600000', NEXT: next });
  assert.equal(ended.status, 42);
  assert.deepEqual(ended.marks, ['armed', 'children']);
  if (!existsSync('/proc/self/stat')) return;
  const marks = join(dir, `marks${runs - 1}`);
  assert.equal(readFileSync(join(marks, 'children'), 'latin1').trim(), '', 'the next program has no children');
});

test('nothing is left running once the script has ended', async () => {
  // The watchdog's processes carry its seconds on their command lines; none outlives the script.
  const ended = await run({ FAKE: 'exit', MS: '777000', STATUS: '0' });
  assert.equal(ended.status, 0);
  const left = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').includes('777');
    } catch {
      return false;
    }
  });
  assert.deepEqual(left, []);
});

test('a timeout(1) that cannot run ends the verification (81) instead of leaving it without a deadline', async () => {
  // A PATH with node and nothing else: no timeout(1), no cat(1).
  const only = join(dir, 'only-node');
  mkdirSync(only);
  symlinkSync(process.execPath, join(only, 'node'));
  const ended = await run({ FAKE: 'disarm', MS: '60000', PATH: only });
  assert.equal(ended.status, 81);
  assert.equal(ended.stderr, '');
  assert.ok(!ended.marks.includes('survived'), `${ended.marks.join(' ')}`);
});

test("a timeout(1) that ends a timed-out command with another status than GNU's 124 (some busybox versions) kills as well", async () => {
  const other = join(dir, 'other-timeout');
  mkdirSync(other);
  // Stands in for such a timeout(1): its time is up at once, and it says so its own way.
  writeFileSync(join(other, 'timeout'), '#!/bin/sh\nexit 143\n', { mode: 0o755 });
  const ended = await run({ FAKE: 'busy', MS: '60000', PATH: `${other}:${PATH_WITH_THIS_NODE}` });
  assert.deepEqual(ended, { status: 81, stderr: '', marks: ['armed'] });
});

test('no node in PATH: 81, with nothing on fd 2', async () => {
  const ended = await run({ FAKE: 'exit', MS: '1000', STATUS: '0', PATH: join(dir, 'nonexistent') });
  assert.deepEqual(ended, { status: 81, stderr: '', marks: [] });
});

test('run through symlinks (an npm bin link, /usr/local/bin), it finds the program beside the real file', async () => {
  const links = join(dir, 'links');
  mkdirSync(links);
  symlinkSync(script, join(links, 'absolute'));
  symlinkSync('absolute', join(links, 'relative'));
  const args = async (env: Record<string, string>, path?: string): Promise<string> => {
    const ended = await run({ FAKE: 'args', ...env }, path);
    assert.deepEqual(ended, { status: 0, stderr: '', marks: ['args'] }, path);
    return readFileSync(join(dir, `marks${runs - 1}`, 'args'), 'latin1');
  };
  for (const path of [join(links, 'absolute'), join(links, 'relative')]) {
    assert.equal(await args({}, path), `--self=${path} --watchdog-fd=5`);
  }
  // Without a verification there is no watchdog to name.
  assert.equal(await args({ RELAYCLIENT: '' }), `--self=${script}`);
});

test('a Node process started without the script (no watchdog) refuses to verify: 81', async () => {
  const { armWatchdog } = await import('../../src/verify/watchdog.ts');
  for (const fd of [undefined, Number.NaN, 99]) {
    assert.throws(() => armWatchdog(fd, 1000), (error: { outcome?: { status: number } }) => error.outcome?.status === 81, String(fd));
  }
});
