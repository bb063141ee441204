// The program the message goes to next: $DKQUEUE (qmail-dk's variable, so existing tcp.smtp
// rules keep working), else $QMAILHOME/bin/qmail-queue. Never this program again: a DKQUEUE
// that names it (directly or through a symlink), or a chain that comes back to it, would
// start one process after another without end.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { qmailHome } from '../common/control.ts';
import { OUTCOMES, VerifyFailure } from './outcomes.ts';

/** Set for the next program; finding it set on entry means a chain came back here. */
export const LOOP_MARK = 'QMAILDKVERIFY_RUNNING';

export function nextProgram(env: NodeJS.ProcessEnv, self: string | undefined): string {
  if (env[LOOP_MARK] !== undefined) throw new VerifyFailure('INTERNAL', 'qmail-dkverify runs itself (through DKQUEUE)');
  const next = env.DKQUEUE || join(qmailHome(env), 'bin', 'qmail-queue');
  if (self !== undefined && sameFile(next, self)) throw new VerifyFailure('INTERNAL', 'DKQUEUE names qmail-dkverify itself');
  return next;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** Starts the next program; its env gets LOOP_MARK. */
export function startNext(program: string, stdio: StdioOptions): ChildProcess {
  return spawn(program, [], { stdio, env: { ...process.env, [LOOP_MARK]: '1' } });
}

/** The next program's exit status, which becomes ours; 81 if it could not run or was killed. */
export function exitStatusOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', () => resolve(OUTCOMES.INTERNAL.status));
    child.once('exit', (code) => resolve(code ?? OUTCOMES.INTERNAL.status));
  });
}

/**
 * Hands the message to the next program, then the envelope: qmail-queue reads the whole
 * message before the envelope, and without an envelope it queues nothing. So a failure of ours
 * while the message is being written (the message may be a stranger's worst case) kills the
 * next program before it has an envelope to read, and no truncated copy is ever queued.
 * `message` chunks are written one at a time, each before the next is asked for.
 */
export async function handOver(next: string, message: Iterable<Buffer>, envelope: Buffer): Promise<number> {
  const child = startNext(next, ['pipe', 'pipe', 'inherit']);
  const status = exitStatusOf(child);
  const [stdin, envelopeOut] = [child.stdio[0] as Writable, child.stdio[1] as unknown as Writable];
  // The next program may end early (qmail-queue: disk full, 53); its status says why.
  for (const stream of [stdin, envelopeOut]) stream.on('error', () => undefined);
  try {
    for (const chunk of message) {
      if (chunk.length > 0 && !(await written(stdin, chunk))) return await status;
    }
    if (!(await written(stdin, null))) return await status;
  } catch (error) {
    child.kill('SIGKILL');
    stdin.destroy();
    envelopeOut.destroy();
    await status;
    throw new VerifyFailure('INTERNAL', 'the message could not be handed on whole', { cause: error });
  }
  envelopeOut.end(envelope);
  const result = await status;
  await sleep(0);
  return result;
}

/** Writes a chunk (null: ends the stream); false when the reader has gone. */
function written(stream: Writable, chunk: Buffer | null): Promise<boolean> {
  return new Promise((resolve) => {
    if (chunk === null) stream.end(() => resolve(!stream.errored));
    else stream.write(chunk, (error) => resolve(!error));
  });
}
