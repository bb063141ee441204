// The hand-over of a verified message to the next program (next-queue.ts finds it): in files,
// by this process becoming the program. Only the verifying path loads this.
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { writeAll } from '../common/sync-io.ts';
import { createTempFile } from '../common/temp-file.ts';
import { VerifyFailure } from './outcomes.ts';
import { runNext } from './next-queue.ts';

/**
 * Hands the message over in files: the message (with our field) and the envelope are written
 * to temporary files, opened read-only on fd 0 and fd 1 (what came on them is read whole by
 * now: the message into its spool, which `message` reads), and this process becomes the next
 * program (runNext), which reads them as it would read qmail-smtpd's pipes. A file exec
 * cannot start is started as a child instead, with the same fd 0 and fd 1; its exit status is
 * ours. No byte reaches the next program before the whole message and the envelope are
 * written: a failure of ours on the way (a full disk) ends this process before there is a next
 * program to queue anything.
 *
 * Each file has a name for as long as it takes to open it twice (to write, and on its fd to
 * read): it is unlinked before a byte is written, so nothing of the message outlives the next
 * program, however this process ends.
 */
export function handOverInFiles(next: string, message: Iterable<Buffer>, envelope: Buffer): Promise<number> {
  const messageOut = tempFileOn(0);
  const envelopeOut = tempFileOn(1);
  try {
    for (const chunk of message) writeAll(messageOut, chunk);
    writeAll(envelopeOut, envelope);
  } catch (error) {
    throw new VerifyFailure('INTERNAL', 'the message could not be handed on whole', { cause: error });
  } finally {
    closeSync(messageOut);
    closeSync(envelopeOut);
  }
  return runNext(next);
}

/** A new temporary file, open read-only on `fd` (which is closed first); its writing fd. */
function tempFileOn(fd: number): number {
  let path: string;
  let writer: number;
  try {
    ({ path, fd: writer } = createTempFile('qmail-dkverify', 'wx'));
  } catch (error) {
    throw new VerifyFailure('INTERNAL', 'no temporary file for the hand-over', { cause: error });
  }
  try {
    closeSync(fd);
    // open() takes the lowest free descriptor, which is `fd` now: nothing else in this process
    // opens one between these two calls (both are synchronous, on the one thread that opens).
    const reader = openSync(path, 'r');
    if (reader !== fd) {
      closeSync(reader);
      throw new Error(`the file opened on fd ${reader}, not ${fd}`);
    }
  } catch (error) {
    closeSync(writer);
    throw new VerifyFailure('INTERNAL', 'no temporary file for the hand-over', { cause: error });
  } finally {
    unlinkSync(path);
  }
  return writer;
}
