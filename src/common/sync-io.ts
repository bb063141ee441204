// Synchronous reads, writes and waits, for the few places that must not yield to the event
// loop or have nothing else to do meanwhile: the report (nothing may end the process between two
// of its bytes), a spool file, a new key file, the message and envelope read from pipes.
import { readSync, writeSync } from 'node:fs';

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

/**
 * Reads `fd` to its end, handing each piece to `take` (a view of one buffer, valid until
 * `take` returns). A pipe another process made non-blocking is waited on, not given up.
 */
export function readToEnd(fd: number, take: (piece: Buffer) => void): void {
  const buffer = Buffer.allocUnsafe(256 << 10);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      sleepSync(10);
      continue;
    }
    if (n === 0) return;
    take(buffer.subarray(0, n));
  }
}
