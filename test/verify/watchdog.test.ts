// The deadline's outside half (src/verify/watchdog.ts), in real processes: a Node process whose
// only thread is busy and never looks at a timer is killed; one that disarms in time is not; one
// that ends without disarming leaves no watchdog behind; and a watchdog that cannot run is a
// failure, not a deadline silently gone. The busy loops end by themselves after a minute, so a
// broken watchdog fails these tests instead of hanging them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WATCHDOG_NAME } from '../../src/verify/watchdog.ts';

const WATCHDOG = fileURLToPath(new URL('../../src/verify/watchdog.ts', import.meta.url));

interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
}

/** Runs `body` in a Node process where `armWatchdog` and `busy(ms)` are in scope. */
function run(body: string, env: NodeJS.ProcessEnv = process.env): Promise<Ended> {
  const script = `import { armWatchdog } from ${JSON.stringify(WATCHDOG)};
    const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
    ${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout })));
}

test('a process busy past the deadline, its timers unseen, is killed (SIGKILL)', async () => {
  const ended = await run("armWatchdog(300); setTimeout(() => console.log('timer'), 0); busy(60_000); console.log('survived');");
  assert.equal(ended.signal, 'SIGKILL');
  assert.equal(ended.stdout, '', 'neither the timer nor the end of the loop was reached');
});

test('a timeout(1) that ends a timed-out command with another status than GNU\'s 124 (some busybox versions) kills as well', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'watchdog-'));
  try {
    // Stands in for such a timeout(1): its time is up at once, and it says so its own way.
    writeFileSync(join(dir, 'timeout'), '#!/bin/sh\nexit 143\n', { mode: 0o755 });
    const ended = await run('armWatchdog(60_000); busy(60_000); console.log(\'survived\');', { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` });
    assert.equal(ended.signal, 'SIGKILL');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process that disarms in time runs on past the deadline', async () => {
  const ended = await run("const dog = armWatchdog(300); dog.disarm(); busy(1500); console.log('survived');");
  assert.deepEqual(ended, { code: 0, signal: null, stdout: 'survived\n' });
});

test('a process that ends without disarming leaves no watchdog running', async () => {
  // The child names its watchdog (its one child process) and exits at once.
  const ended = await run(`armWatchdog(600_000);
    const { readdirSync, readFileSync } = await import('node:fs');
    const mine = () => readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
      try { return readFileSync('/proc/' + p + '/stat', 'latin1').replace(/^.*\\) /, '').split(' ')[1] === String(process.pid)
        && readFileSync('/proc/' + p + '/cmdline', 'latin1').includes(${JSON.stringify(WATCHDOG_NAME)}); } catch { return false; } });
    for (let found = mine(); ; found = mine()) { if (found.length) { console.log(found[0]); break; } busy(10); }`);
  assert.equal(ended.code, 0);
  const pid = ended.stdout.trim();
  assert.match(pid, /^\d+$/);
  // The watchdog reads end-of-file as soon as its pipe's writer is gone, and ends then, not
  // after its ten minutes; half a minute is only how long the test will look.
  for (let look = 0; look < 1500 && alive(pid); look++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(!alive(pid), `watchdog ${pid} still running`);
});

test('a watchdog that cannot run fails the verification (INTERNAL) instead of leaving it without a deadline', async () => {
  const ended = await run(
    "armWatchdog(60_000).failed.catch((e) => { console.log(e.outcome.status, e.message); process.exit(0); }); setTimeout(() => console.log('no failure'), 30_000);",
    { ...process.env, PATH: '/nonexistent' },
  );
  assert.deepEqual(ended, { code: 0, signal: null, stdout: '81 the verification watchdog did not run\n' });
});

/** Running, that is: neither gone nor a zombie left for a parent (init) to reap. */
function alive(pid: string): boolean {
  try {
    return !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}
