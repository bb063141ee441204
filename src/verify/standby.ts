// The one process a verification starts: a shell that keeps the deadline from outside (the
// watchdog, which it forks) and, once the checks are over, becomes the next program (exec),
// the message and the envelope then arriving on the pipes it was started with.
//
// Every process Node starts is a fork of this whole process: the kernel copies its page tables,
// and every page Node writes afterwards takes a fault. At the size of a verification that is
// about 13 ms of CPU a start, whatever the child is; the shell's own fork, for the watchdog,
// costs a fraction of that. So one start from Node, not two (one for the watchdog, one for the
// next program), which is about 5 % of a verification's CPU (docs/verify.md).
//
// The watchdog is timeout(1) running cat(1) on a pipe whose writing end only this process holds.
// When this process closes that end (disarm) or ends in any way, cat reads end-of-file,
// timeout(1) ends with cat's 0, and the watchdog ends without a kill. Any other status is
// timeout(1) stopping cat (124 from GNU's and toybox's, another from some busybox versions) and
// sends the kill; this process is then alive (it still holds the pipe), so its pid cannot name
// another process. 125 to 127 (timeout(1) failed, or is missing) end the shell waiting for the
// word to go on instead, and so does a watchdog the shell cannot fork: `failed` reports it, and
// no verification runs without its deadline.
import type { Socket } from 'node:net';
import { VerifyFailure } from './outcomes.ts';
import { execable, handOverTo, nextEnv, startNext } from './next-queue.ts';

/** What ps(1) shows for the shell ($0), before it becomes the next program. */
export const STANDBY_NAME = 'qmail-dkverify-standby';

/**
 * $1: seconds, $2: the pid to kill, $3: the next program. fd 3: a line (go on) or end-of-file
 * (this process is done without it); fd 4: the watchdog's pipe. The watchdog holds neither
 * the next program's pipes nor fd 3, and it outlives the exec; forked from a subshell that
 * ends at once, it is not the next program's child either: a program that wait()s for a child
 * of its own must not reap it.
 */
const STANDBY_SCRIPT = [
  '( (timeout "$1" cat >/dev/null; s=$?; if [ $s -ge 125 ] && [ $s -le 127 ]; then kill -TERM $$; elif [ $s -ne 0 ]; then kill -KILL "$2"; fi) <&4 >/dev/null 2>&1 3<&- 4<&- &) || exit 1',
  'exec 4<&-',
  'read -r go <&3 || exit 0',
  'exec 3<&- "$3"',
].join('\n');

/** The shell's program and arguments: watch `pid` for `ms`; go on as `next`. */
export function standbyCommand(ms: number, pid: number, next: string): [string, string[]] {
  return ['/bin/sh', ['-c', STANDBY_SCRIPT, STANDBY_NAME, (Math.max(ms, 1) / 1000).toFixed(3), String(pid), next]];
}

export interface Watchdog {
  /**
   * Rejects (INTERNAL) if the watchdog cannot start or ends before it is disarmed: nothing
   * would then keep the deadline from outside, so the message is deferred, not checked
   * without one. Never settles otherwise.
   */
  readonly failed: Promise<never>;
  /** Ends the watchdog; idempotent. */
  disarm(): void;
}

export interface Standby {
  readonly watchdog: Watchdog;
  /**
   * The next program gets the message, then the envelope (next-queue.ts's handOverTo); its exit
   * status. Once only.
   */
  handOver(message: Iterable<Buffer>, envelope: Buffer): Promise<number>;
}

/**
 * Starts the shell: the watchdog kills this process after `ms` unless disarmed. `next` is
 * exec'd by the shell when the message is handed over; a file exec cannot start (next-queue.ts's
 * execable) is started from here as before, the shell then ending without it, so that one
 * that cannot run is still the usual 81 with nothing on fd 2.
 */
export function startStandby(next: string, ms: number): Standby {
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child = spawn(...standbyCommand(ms, process.pid, next), {
    stdio: ['pipe', 'pipe', 'inherit', 'pipe', 'pipe'],
    env: nextEnv(),
  });
  const [goPipe, watchPipe] = [child.stdio[3] as Socket, child.stdio[4] as Socket];
  let disarmed = false;
  let goneOn = false;
  const failed = new Promise<never>((_, reject) => {
    const fail = (cause?: unknown): void => {
      if (!disarmed && !goneOn) reject(new VerifyFailure('INTERNAL', 'the verification watchdog did not run', { cause }));
    };
    child.once('error', fail);
    child.once('exit', () => fail());
  });
  // Settled or not, this promise must never count as an unhandled rejection.
  failed.catch(() => undefined);
  // Neither the shell nor its pipes keep this process waiting for them until the hand-over.
  // (A piped stdio is a net.Socket, whatever the type says.)
  const nextPipes = [child.stdin, child.stdout] as unknown as Socket[];
  child.unref();
  for (const pipe of [goPipe, watchPipe, ...nextPipes]) pipe.on('error', () => undefined).unref();
  return {
    watchdog: {
      failed,
      disarm: () => {
        disarmed = true;
        watchPipe.destroy();
      },
    },
    handOver: (message, envelope) => {
      goneOn = true;
      if (!execable(next)) {
        goPipe.destroy();
        return handOverTo(startNext(next, ['pipe', 'pipe', 'inherit']), message, envelope);
      }
      child.ref();
      for (const pipe of nextPipes) pipe.ref();
      goPipe.end('go\n');
      return handOverTo(child, message, envelope);
    },
  };
}
