// Temporary files for what a message passes through (qmail-remote's spool of a message on a
// pipe, qmail-dkverify's spool and hand-over): created O_EXCL, mode 0600, in $TMPDIR or /tmp,
// under a name no other process can have guessed first. The caller unlinks the name as soon as
// it holds the descriptors it needs, so nothing of a message outlives the process reading it.
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A new file of this process's own, open with `flags` ('wx': write, 'wx+': read and write). */
export function createTempFile(prefix: string, flags: 'wx' | 'wx+'): { readonly path: string; readonly fd: number } {
  const path = join(tmpdir(), `${prefix}.${process.pid}.${randomBytes(6).toString('hex')}`);
  return { path, fd: openSync(path, flags, 0o600) };
}
