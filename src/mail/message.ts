// The message as qmail hands it to qmail-remote: the queue file on fd 0, LF line ends, any
// bytes. This module is the one place where line ends are normalised: the CRLF text it
// produces is what gets signed and, byte for byte, what goes on the wire (docs/qmail-remote.md §6, §9).
//
// The message is read in passes: one to sign, one to send. A seekable fd 0 (the queue file)
// is read again from offset 0; anything else (a pipe, when run by hand) is first spooled to an
// unlinked temporary file, so memory never grows with the size of the message.
import { fstatSync, readSync, unlinkSync, closeSync } from 'node:fs';
import { isAscii } from 'node:buffer';
import { AFTER_CR, Kernel, PIECE } from '../canon/kernels.ts';
import { readToEnd, writeAll } from '../common/sync-io.ts';
import { createTempFile } from '../common/temp-file.ts';

// Small enough that each chunk's buffers come from malloc's heap and are reused at once, so
// memory stays flat however large the message; large enough that a chunk costs little.
const CHUNK_BYTES = PIECE;
const CR = 0x0d;
const LF = 0x0a;

export interface MessageSource {
  /**
   * The raw message from its first byte; each call starts a new pass. A chunk is valid only
   * until the next one is asked for: the normaliser copies it, everything else reads it at once.
   */
  chunks(): Iterable<Buffer>;
  close(): void;
  /** The regular file the message is read from, for a reader in another thread; none for a buffer. */
  readonly fd?: number;
}

/**
 * fd 0 as qmail gives it (a regular file), or anything else spooled to a temporary file.
 * `spoolAlways`: a regular file too, so that the message no longer depends on `fd`, which the
 * caller may then close (qmail-dkverify puts its hand-over there).
 */
export async function openMessage(fd = 0, spoolAlways = false): Promise<MessageSource> {
  if (!spoolAlways && fstatSync(fd).isFile()) return fileSource(fd, false);
  return fileSource(spool(fd), true);
}

export function bufferSource(message: Buffer): MessageSource {
  return { chunks: () => [message], close: () => undefined };
}

function fileSource(fd: number, owned: boolean): MessageSource {
  return {
    fd,
    *chunks() {
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      let position = 0;
      for (;;) {
        const n = readOrThrow(fd, buffer, position);
        if (n === 0) return;
        position += n;
        yield buffer.subarray(0, n);
      }
    },
    close() {
      if (owned) closeSync(fd);
    },
  };
}

/** The message could not be read (an I/O error on fd 0): qmail's "Unable to read message". */
export class MessageReadError extends Error {}

function readOrThrow(fd: number, buffer: Buffer, position: number): number {
  try {
    return readSync(fd, buffer, 0, buffer.length, position);
  } catch (error) {
    throw new MessageReadError('cannot read the message', { cause: error });
  }
}

function spool(fd: number): number {
  const { path, fd: spoolFd } = createTempFile('qmail-remote-dkim', 'wx+');
  unlinkSync(path);
  try {
    readToEnd(fd, (piece) => writeAll(spoolFd, piece));
  } catch (error) {
    closeSync(spoolFd);
    throw error;
  }
  return spoolFd;
}


/**
 * LF, CRLF and bare CR all become CRLF, so a message typed by hand signs the same as a
 * queue file. A partial final line is completed: qmail's "partial final lines" bounce (#5.6.2)
 * would return mail we can deliver, and RFC 6376 adds that CRLF to the body hash anyway.
 *
 * The byte loop is WebAssembly (src/canon/kernels.ts); pushJs() is the same in JavaScript,
 * kept as the reference for the tests and for where WebAssembly is off.
 */
export class CrlfNormalizer {
  private afterCrFlag = false;
  private lastByte = LF;
  private readonly kernel: Kernel | null;

  private scratch = Buffer.alloc(0);

  constructor(useKernel = true) {
    this.kernel = useKernel ? Kernel.create() : null;
  }

  /** The last chunk ended in a CR (already written as CRLF): a LF starting the next is dropped. */
  get afterCr(): boolean {
    return this.afterCrFlag;
  }

  /**
   * The chunk normalised, as a view into a buffer this normaliser reuses: valid until the next
   * push. Allocating a buffer per chunk instead made memory grow with the message, because
   * V8 frees a buffer only when a collection runs, and little else here makes one run.
   */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const out = this.kernel ? this.pushKernel(this.kernel, chunk) : this.pushJs(chunk);
    if (out.length > 0) this.lastByte = out[out.length - 1] as number;
    return out;
  }

  private pushKernel(kernel: Kernel, chunk: Buffer): Buffer {
    const { out, state } = kernel.sendChunk(chunk, this.afterCrFlag ? AFTER_CR : 0, true, false);
    this.afterCrFlag = (state & AFTER_CR) !== 0;
    return out;
  }

  /** The same in JavaScript. */
  private pushJs(chunk: Buffer): Buffer {
    // Every input byte becomes at most two (a bare CR becomes CRLF).
    if (this.scratch.length < chunk.length * 2) this.scratch = Buffer.allocUnsafe(chunk.length * 2);
    const out = this.scratch;
    let o = 0;
    let i = 0;
    if (this.afterCrFlag) {
      // A CR ended the previous chunk and was written as CRLF already; swallow its LF.
      if (chunk[0] === LF) i = 1;
      this.afterCrFlag = false;
    }
    // The next CR is looked up only once passed: queue files hold none, and searching for
    // it on every line would make a large message quadratic.
    let cr = chunk.indexOf(CR, i);
    while (i < chunk.length) {
      if (cr !== -1 && cr < i) cr = chunk.indexOf(CR, i);
      const lf = chunk.indexOf(LF, i);
      const next = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
      if (next === -1) {
        o += chunk.copy(out, o, i);
        break;
      }
      o += chunk.copy(out, o, i, next);
      out[o++] = CR;
      out[o++] = LF;
      i = next + 1;
      if (next === cr) {
        if (i === chunk.length) this.afterCrFlag = true;
        else if (chunk[i] === LF) i += 1;
      }
    }
    return out.subarray(0, o);
  }

  /** What is needed to finish the message: CRLF after a partial final line, else nothing. */
  end(): Buffer {
    return this.lastByte === LF ? Buffer.alloc(0) : Buffer.from('\r\n');
  }
}

/**
 * Every pass over the message goes through this one normaliser. Each chunk is valid only until
 * the next is asked for: hash it, or write it and wait for the write to complete.
 */
export function* normalised(source: MessageSource): Iterable<Buffer> {
  const normalizer = new CrlfNormalizer();
  for (const chunk of source.chunks()) {
    const out = normalizer.push(chunk);
    if (out.length > 0) yield out;
  }
  const tail = normalizer.end();
  if (tail.length > 0) yield tail;
}

/** The whole normalised message in one buffer, for tests and small messages. */
export function normalisedMessage(source: MessageSource): Buffer {
  const chunks: Buffer[] = [];
  for (const chunk of normalised(source)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Whether any byte is 0x80 or above; stops at the first. node:buffer's isAscii() is SIMD code. */
export function hasEightBit(chunks: Iterable<Buffer>): boolean {
  for (const chunk of chunks) if (!isAscii(chunk)) return true;
  return false;
}
