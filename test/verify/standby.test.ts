// The one process a verification starts (src/verify/standby.ts), in real processes: its
// watchdog kills a Node process whose only thread is busy and never looks at a timer, before
// the hand-over and after it (when the shell has become the next program); one that disarms in
// time lives on; one that ends without handing over leaves nothing running and never starts the
// next program; and a watchdog that cannot run is a failure, not a deadline silently gone. The
// busy loops end by themselves after a minute, so a broken watchdog fails these tests instead
// of hanging them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const STANDBY = fileURLToPath(new URL('../../src/verify/standby.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'standby-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A next program that records what it read and exits 0; it leaves `ran` behind when it runs at all. */
const NEXT = join(dir, 'next');
writeFileSync(NEXT, `#!/bin/sh\n: > "${dir}/ran"\ncat > "${dir}/message"\ncat <&1 > "${dir}/envelope"\nexit 0\n`);
chmodSync(NEXT, 0o755);

interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
}

/** Runs `body` in a Node process where `startStandby`, `NEXT` and `busy(ms)` are in scope. */
function run(body: string, env: NodeJS.ProcessEnv = process.env): Promise<Ended> {
  const script = `import { startStandby } from ${JSON.stringify(STANDBY)};
    const NEXT = ${JSON.stringify(NEXT)};
    const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
    ${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout })));
}

test('a process busy past the deadline, its timers unseen, is killed (SIGKILL)', async () => {
  const ended = await run("startStandby(NEXT, 300); setTimeout(() => console.log('timer'), 0); busy(60_000); console.log('survived');");
  assert.equal(ended.signal, 'SIGKILL');
  assert.equal(ended.stdout, '', 'neither the timer nor the end of the loop was reached');
});

test('after the hand-over, the shell now the next program, the watchdog still kills a process busy past the deadline', async () => {
  rmSync(join(dir, 'ran'), { force: true });
  const ended = await run(`const standby = startStandby(NEXT, 1500);
    console.log(await standby.handOver([Buffer.from('Subject: x\\n\\nbody\\n')], Buffer.from('Fa@b\\0Tc@d\\0\\0')));
    busy(60_000); console.log('survived');`);
  assert.equal(ended.stdout, '0\n', 'the next program ran and ended with 0');
  assert.equal(ended.signal, 'SIGKILL');
  assert.equal(readFileSync(join(dir, 'message'), 'latin1'), 'Subject: x\n\nbody\n');
  assert.equal(readFileSync(join(dir, 'envelope'), 'latin1'), 'Fa@b\0Tc@d\0\0');
});

test('the watchdog is no child of the next program, which may wait() for children of its own', async () => {
  // A next program that says who it is and stays a moment, as qmail-queue does while it writes.
  const lingering = join(dir, 'lingering');
  writeFileSync(lingering, `#!/bin/sh\necho $$ > "${dir}/next-pid"\ncat >/dev/null\ncat <&1 >/dev/null\nsleep 1\n`, { mode: 0o755 });
  rmSync(join(dir, 'next-pid'), { force: true });
  const ended = await run(`const standby = startStandby(${JSON.stringify(lingering)}, 600_000);
    const done = standby.handOver([Buffer.from('Subject: x\\n\\nx\\n')], Buffer.from('Fa@b\\0Tc@d\\0\\0'));
    const { existsSync, readdirSync, readFileSync } = await import('node:fs');
    while (!existsSync(${JSON.stringify(join(dir, 'next-pid'))})) await new Promise((r) => setTimeout(r, 10));
    const next = readFileSync(${JSON.stringify(join(dir, 'next-pid'))}, 'latin1').trim();
    // The watchdog's processes carry its seconds on their command lines; their parents:
    const parents = readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).flatMap((p) => {
      try { return readFileSync('/proc/' + p + '/cmdline', 'latin1').split('\\0').includes('600.000') ? [readFileSync('/proc/' + p + '/stat', 'latin1').replace(/^.*\\) /, '').split(' ')[1]] : []; } catch { return []; } });
    console.log(JSON.stringify({ next, parents }));
    standby.watchdog.disarm();
    await done;`);
  assert.equal(ended.code, 0);
  const { next, parents } = JSON.parse(ended.stdout) as { next: string; parents: string[] };
  assert.ok(parents.length >= 1, 'the watchdog was running');
  assert.ok(!parents.includes(next), `next program ${next}, the watchdog's parents ${parents.join(' ')}`);
});

test('a timeout(1) that ends a timed-out command with another status than GNU\'s 124 (some busybox versions) kills as well', async () => {
  const bin = mkdtempSync(join(dir, 'bin-'));
  // Stands in for such a timeout(1): its time is up at once, and it says so its own way.
  writeFileSync(join(bin, 'timeout'), '#!/bin/sh\nexit 143\n', { mode: 0o755 });
  const ended = await run('startStandby(NEXT, 60_000); busy(60_000); console.log(\'survived\');', { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` });
  assert.equal(ended.signal, 'SIGKILL');
});

test('a process that disarms in time runs on past the deadline', async () => {
  const ended = await run("startStandby(NEXT, 300).watchdog.disarm(); busy(1500); console.log('survived');");
  assert.deepEqual(ended, { code: 0, signal: null, stdout: 'survived\n' });
});

test('a process that ends without handing over leaves nothing running and never starts the next program', async () => {
  rmSync(join(dir, 'ran'), { force: true });
  // The child waits until its shell and that shell's watchdog run, then exits at once.
  const ended = await run(`startStandby(NEXT, 600_000);
    const { readdirSync, readFileSync } = await import('node:fs');
    const mine = () => readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
      try { return readFileSync('/proc/' + p + '/cmdline', 'latin1').split('\\0').includes('600.000'); } catch { return false; } });
    for (let found = mine(); ; found = mine()) { if (found.length >= 3) { console.log(found.join(' ')); break; } busy(10); }`);
  assert.equal(ended.code, 0);
  const pids = ended.stdout.trim().split(' ');
  assert.ok(pids.length >= 3 && pids.every((pid) => /^\d+$/.test(pid)), `the shell, its watchdog and timeout(1): ${ended.stdout}`);
  // Each reads end-of-file as soon as its pipe's writer is gone, and ends then, not after its
  // ten minutes; half a minute is only how long the test will look.
  for (let look = 0; look < 1500 && pids.some(alive); look++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(pids.filter(alive), [], 'still running');
  assert.equal(existsSync(join(dir, 'ran')), false, 'the next program never ran');
});

test('a watchdog that cannot run fails the verification (INTERNAL) instead of leaving it without a deadline', async () => {
  const ended = await run(
    "startStandby(NEXT, 60_000).watchdog.failed.catch((e) => { console.log(e.outcome.status, e.message); process.exit(0); }); setTimeout(() => console.log('no failure'), 30_000);",
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
