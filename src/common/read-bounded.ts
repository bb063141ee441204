// Reading a small file named by configuration (a control file, a signing key) without ever
// waiting on it or letting it grow the process. qmail-send has no timeout on qmail-remote: a
// read that blocks (a FIFO with no writer) or never ends (/dev/zero) would hold one of its
// delivery slots for good, and a huge file would grow the process until V8 dies with its
// out-of-memory text on fd 2, the report pipe. So the file is opened with O_NONBLOCK (a FIFO
// opens at once; opening a device never waits on it), must be a regular file by fstat of the
// descriptor that was opened, and is read only up to a limit.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Codes thrown besides the system's own (ENOENT, EACCES, EISDIR, ELOOP, ...). */
export const NOT_REGULAR = 'ENOTREG';
export const TOO_LARGE = 'EFBIG';

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

function refuse(code: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${path}`), { code, path });
}

/**
 * The bytes of the regular file at `path`, at most `limit` of them. Throws an error whose
 * `code` says why not: the system's (ENOENT when there is no such file), EISDIR for a
 * directory, ENOTREG for anything else that is not a regular file (FIFO, device, socket),
 * EFBIG for a file longer than `limit`, including one that grows past it while being read.
 */
export function readBounded(path: string, limit: number): Buffer {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw refuse('EISDIR', path);
    if (!stat.isFile()) throw refuse(NOT_REGULAR, path);
    if (stat.size > limit) throw refuse(TOO_LARGE, path);
    // Room for one byte more than the file had, so that one which grew since fstat is read
    // on (up to one byte past the limit, which proves it too large).
    let buffer = Buffer.allocUnsafe(stat.size + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > limit) throw refuse(TOO_LARGE, path);
        const larger = Buffer.allocUnsafe(Math.min(limit + 1, length * 2));
        buffer.copy(larger);
        buffer = larger;
      }
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) return Buffer.from(buffer.subarray(0, length));
      length += n;
    }
  } finally {
    closeSync(fd);
  }
}
