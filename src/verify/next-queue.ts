// The program the message goes to next: $DKQUEUE (qmail-dk's variable, so existing tcp.smtp
// rules keep working), else $QMAILHOME/bin/qmail-queue. Never this program again: a DKQUEUE
// that names it (directly or through a symlink), or a chain that comes back to it, would
// start one process after another without end.
import type { ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { qmailHome } from '../common/control.ts';
import { OUTCOMES, VerifyFailure } from './outcomes.ts';

/** Set for the next program; finding it set on entry means a chain came back here. */
export const LOOP_MARK = 'QMAILDKVERIFY_RUNNING';

/** The next program's environment: ours, with the loop mark. */
export function nextEnv(): NodeJS.ProcessEnv {
  return { ...process.env, [LOOP_MARK]: '1' };
}

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

/**
 * Runs the next program on this process's fd 0, 1 and 2, and resolves with its exit status: by
 * becoming it where exec can start it (becomeNext, which then never returns), or else as a
 * child, as the pass-through and the hand-over both do.
 */
export function runNext(program: string): Promise<number> {
  becomeNext(program);
  return exitStatusOf(startNext(program));
}

/**
 * This process becomes the next program (execve), which reads our fd 0 and fd 1 itself, as it
 * would from qmail-smtpd. Its exit status, or the signal that ends it, reaches qmail-smtpd with
 * no Node process waiting beside it (about a sixth of a pass-through's CPU, docs/verify.md).
 * Returns only where it did not exec; runNext then starts the program as a child, and a
 * program that cannot run is the usual 81.
 *
 * Node (22 and 24) aborts the whole process, with a trace on fd 2, when the execve system call
 * fails, so it is asked only for a file it can start (execable).
 */
function becomeNext(program: string): void {
  const { execve } = process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never };
  if (typeof execve !== 'function' || !execable(program)) return;
  // Node ignores SIGPIPE and SIGXFSZ, and a signal ignored stays ignored across an exec, where
  // one caught is reset: caught here, both are at their defaults in the next program, as they
  // are in a child that spawn() starts.
  for (const signal of ['SIGPIPE', 'SIGXFSZ'] as const) process.on(signal, () => undefined);
  execve(program, [program], nextEnv());
}

/**
 * Whether exec can start `program`: a path (not a name to look up in PATH, which execve does not
 * do) to a regular file this process may execute that begins with ELF's magic number, or with
 * "#!" and an interpreter that is such a file itself.
 */
function execable(program: string): boolean {
  return program.includes('/') && startable(program, SCRIPT_DEPTH);
}

/** Interpreters of interpreters followed: Linux starts up to four, one is what sites use. */
const SCRIPT_DEPTH = 2;
const ELF_MAGIC = 0x7f454c46;
/** What Linux reads of a "#!" line (BINPRM_BUF_SIZE). */
const SHEBANG_BYTES = 256;

function startable(path: string, depth: number): boolean {
  let fd: number | undefined;
  try {
    accessSync(path, constants.X_OK);
    fd = openSync(path, 'r');
    if (!fstatSync(fd).isFile()) return false;
    const head = Buffer.alloc(SHEBANG_BYTES);
    const n = readSync(fd, head, 0, head.length, 0);
    if (n >= 4 && head.readUInt32BE(0) === ELF_MAGIC) return true;
    if (depth === 0 || n < 2 || head.toString('latin1', 0, 2) !== '#!') return false;
    const end = head.indexOf(0x0a);
    if (end === -1 || end >= n) return false;
    const interpreter = head.toString('latin1', 2, end).trim().split(/[ \t]/)[0] ?? '';
    return interpreter.startsWith('/') && startable(interpreter, depth - 1);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Starts the next program as a child on our fd 0, 1 and 2; its env gets LOOP_MARK. node:child_process (and the net, stream and
 * dgram modules it loads) is loaded here, not with this file: a pass-through that execs never
 * needs it.
 */
function startNext(program: string): ChildProcess {
  const { spawn } = process.getBuiltinModule('node:child_process');
  return spawn(program, [], { stdio: [0, 1, 2], env: nextEnv() });
}

/** The next program's exit status, which becomes ours; 81 if it could not run or was killed. */
function exitStatusOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', () => resolve(OUTCOMES.INTERNAL.status));
    child.once('exit', (code) => resolve(code ?? OUTCOMES.INTERNAL.status));
  });
}
