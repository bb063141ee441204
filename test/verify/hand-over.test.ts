// The hand-over to qmail-queue (src/verify/hand-over.ts), in a process of its own since it
// takes over fd 0 and fd 1 and then becomes the next program: the message and the envelope are
// whole in files before the next program starts, and neither file outlives it; a failure of ours
// on the way leaves no next program to queue a truncated copy.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recorder } from './harness.ts';

const HAND_OVER = fileURLToPath(new URL('../../src/verify/hand-over.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dkverify-handover-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ENVELOPE = 'Fa@example.com\0Tb@example.net\0\0';
let runs = 0;

interface Handed {
  readonly status: number | null;
  /** What the process wrote after the hand-over (fd 1 is the envelope's then): its failure, or a child's status. */
  readonly said: string;
  /** Where the recording next program (harness.ts) left what it read. */
  readonly rec: string;
  /** The run's temporary directory once it has ended: the hand-over's files are not in it. */
  readonly left: readonly string[];
}

/** Runs handOverInFiles(`next`, the chunks `body` yields, ENVELOPE) in a Node process of its own. */
function handOver(next: string, body: string): Promise<Handed> {
  const rec = join(dir, `rec${runs}`);
  const temp = join(dir, `tmp${runs++}`);
  mkdirSync(rec);
  mkdirSync(temp);
  const said = join(dir, `said${runs}`);
  const script = `import { handOverInFiles } from ${JSON.stringify(HAND_OVER)};
    import { writeFileSync } from 'node:fs';
    function* chunks() { ${body} }
    const say = (text) => writeFileSync(${JSON.stringify(said)}, text);
    try { say(String(await handOverInFiles(${JSON.stringify(next)}, chunks(), Buffer.from(${JSON.stringify(ENVELOPE)}, 'latin1')))); }
    catch (error) { say(error.outcome?.status + ' ' + error.message); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, TMPDIR: temp, REC: rec, QEXIT: '0' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return new Promise((resolve) => child.on('close', (status) => resolve({
    status, rec, left: readdirSync(temp), said: existsSync(said) ? readFileSync(said, 'latin1') : '',
  })));
}

const SIXTY_FOUR_CHUNKS = "for (let i = 0; i < 64; i++) yield Buffer.alloc(64 << 10, 0x41 + (i % 26));";

test('the whole message on fd 0 and the envelope on fd 1 of the program this process becomes; no file left', async () => {
  const handed = await handOver(recorder(), SIXTY_FOUR_CHUNKS);
  assert.equal(handed.status, 0, 'the next program ran, in this process (exec): its status');
  assert.equal(handed.said, '', 'nothing after the hand-over ran here');
  const expected = Buffer.concat(Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 << 10, 0x41 + (i % 26))));
  assert.ok(readFileSync(join(handed.rec, 'message')).equals(expected), 'the message byte for byte');
  assert.equal(readFileSync(join(handed.rec, 'envelope'), 'latin1'), ENVELOPE);
  assert.deepEqual(handed.left, []);
});

test('a failure halfway through the message: 81, no next program, no file left', async () => {
  const handed = await handOver(recorder(), "for (let i = 0; i < 16; i++) yield Buffer.alloc(64 << 10, 0x61); throw new RangeError('as a 1.5-million-line header once did');");
  assert.equal(handed.said, '81 the message could not be handed on whole');
  assert.equal(existsSync(join(handed.rec, 'loop')), false, 'the next program never ran');
  assert.deepEqual(handed.left, []);
});

test('a next program exec cannot start is started as a child with the same files; 81 when it cannot run', async () => {
  const noInterpreter = join(dir, 'no-interpreter');
  writeFileSync(noInterpreter, '#!/nonexistent/interpreter\nexit 0\n', { mode: 0o755 });
  const failed = await handOver(noInterpreter, SIXTY_FOUR_CHUNKS);
  assert.equal(failed.said, '81');
  assert.deepEqual(failed.left, []);
  // A script without a #! line, which exec would not take: a shell runs it (execvp), as a child.
  const bare = join(dir, 'bare');
  writeFileSync(bare, `exec ${recorder()}\n`, { mode: 0o755 });
  const child = await handOver(bare, SIXTY_FOUR_CHUNKS);
  assert.equal(child.said, '0', 'its status, said by this process, which waited for it');
  assert.equal(readFileSync(join(child.rec, 'envelope'), 'latin1'), ENVELOPE);
});
