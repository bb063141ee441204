// The deadline kept from outside: a process apart that kills this one (SIGKILL) if it has not
// disarmed the watchdog in time. A timer here could not: a task that holds the event loop holds
// the timer too. The watchdog is timeout(1) running cat(1) on a pipe whose writing end only
// this process holds. When this process closes that end (disarm) or ends in any way, cat reads
// end-of-file, timeout(1) ends with cat's 0, and the watchdog ends without a kill. Any other
// status is timeout(1) stopping cat (124 from GNU's and toybox's, another from some busybox
// versions) and sends the kill; this process is then alive (it still holds the pipe), so its
// pid cannot name another process. 125 to 127 (timeout(1) failed, or is missing) end the
// watchdog early instead, which `failed` reports. Three small processes for the length of a
// verification.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { VerifyFailure } from './outcomes.ts';

/** $1: seconds, $2: the pid to kill. */
const WATCHDOG_SCRIPT = 'timeout "$1" cat >/dev/null; s=$?; [ $s -eq 0 ] || [ $s -ge 125 -a $s -le 127 ] || exec kill -KILL "$2"';
/** What ps(1) shows for the watchdog's shell ($0). */
export const WATCHDOG_NAME = 'qmail-dkverify-watchdog';

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

/** The watchdog's program and arguments: kill `pid` after `ms` unless its stdin ends first. */
export function watchdogCommand(ms: number, pid: number): [string, string[]] {
  return ['/bin/sh', ['-c', WATCHDOG_SCRIPT, WATCHDOG_NAME, (Math.max(ms, 1) / 1000).toFixed(3), String(pid)]];
}

export function armWatchdog(ms: number): Watchdog {
  const child = spawn(...watchdogCommand(ms, process.pid), { stdio: ['pipe', 'ignore', 'ignore'] });
  let disarmed = false;
  const failed = new Promise<never>((_, reject) => {
    const fail = (cause?: unknown): void => {
      if (!disarmed) reject(new VerifyFailure('INTERNAL', 'the verification watchdog did not run', { cause }));
    };
    child.once('error', fail);
    child.once('exit', () => fail());
  });
  // Settled or not, this promise must never count as an unhandled rejection.
  failed.catch(() => undefined);
  // Neither the watchdog nor its pipe keeps this process waiting for them.
  // (A piped stdio is a net.Socket, whatever the type says.)
  const pipe = child.stdin as Socket;
  child.unref();
  pipe.on('error', () => undefined).unref();
  return {
    failed,
    disarm: () => {
      disarmed = true;
      pipe.destroy();
    },
  };
}
