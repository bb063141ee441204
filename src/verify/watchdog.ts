// This process's side of the watchdog that bin/qmail-dkverify, a shell script, keeps for a
// verification: a pipe to it on the fd named by --watchdog-fd. Armed, it kills this process
// when the deadline passes before the pipe is closed (the script says how, and why there: a
// process started from Node is a fork of the whole Node process, about twice the CPU).
//
// The deadline starts once the message and the envelope are read, not when this process starts:
// qmail-smtpd runs qmail-queue while the client is still sending the message, which the SMTP
// dialogue's own timeouts bound.
import { closeSync, fstatSync, writeSync } from 'node:fs';
import { VerifyFailure } from './outcomes.ts';

export interface Watchdog {
  /** Ends the watch: this process may now run as long as it needs. Idempotent. */
  disarm(): void;
}

/** The fd of the watchdog's pipe, as `--watchdog-fd=N` gives it; undefined without one, NaN for one that is none. */
export function watchdogFd(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return /^[3-9]$/.test(value) ? Number(value) : Number.NaN;
}

/**
 * Arms the watchdog on `fd` for `ms`, rounded up to whole seconds: every timeout(1) takes
 * those, not every one takes fractions (busybox's depends on how it was built), and one that
 * refused them would end at once, as if the time were up. A verification without a watchdog is
 * refused (INTERNAL, a 451): without a pipe to write on, nothing would keep the deadline from
 * outside.
 */
export function armWatchdog(fd: number | undefined, ms: number): Watchdog {
  if (fd === undefined || !Number.isInteger(fd) || !isPipe(fd)) {
    throw new VerifyFailure('INTERNAL', 'no watchdog: a verification runs only under bin/qmail-dkverify');
  }
  try {
    writeSync(fd, `${process.pid} ${Math.max(1, Math.ceil(ms / 1000))}\n`);
  } catch (error) {
    throw new VerifyFailure('INTERNAL', 'the verification watchdog did not run', { cause: error });
  }
  let open = true;
  return {
    disarm: () => {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** A pipe, or a socket pair (what Node's own 'pipe' is, for the build's training run). */
function isPipe(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}
