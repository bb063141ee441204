// The program the message goes to next: $DKQUEUE (qmail-dk's variable, so existing tcp.smtp
// rules keep working), else $QMAILHOME/bin/qmail-queue. Never this program again: a DKQUEUE
// that names it (directly or through a symlink), or a chain that comes back to it, would
// start one process after another without end.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_QMAILHOME } from '../common/control.ts';
import { OUTCOMES, VerifyFailure } from './outcomes.ts';

/** Set for the next program; finding it set on entry means a chain came back here. */
export const LOOP_MARK = 'QMAILDKVERIFY_RUNNING';

export function nextProgram(env: NodeJS.ProcessEnv, self: string | undefined): string {
  if (env[LOOP_MARK] !== undefined) throw new VerifyFailure('INTERNAL', 'qmail-dkverify runs itself (through DKQUEUE)');
  const next = env.DKQUEUE || join(env.QMAILHOME || DEFAULT_QMAILHOME, 'bin', 'qmail-queue');
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
