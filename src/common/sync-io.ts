// Synchronous writes and waits, for the few places that must not yield to the event loop: the
// report (nothing may end the process between two of its bytes), a spool file, a new key file,
// the envelope read from a non-blocking pipe.
import { writeSync } from 'node:fs';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds without spinning. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** Writes every byte to a file descriptor that blocks (a regular file): partial writes are continued. */
export function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset);
}
