// The message as qmail hands it to qmail-remote: the queue file on fd 0, LF line ends, any
// bytes. This module is the one place where line ends are normalised: the CRLF text it
// produces is what gets signed and, byte for byte, what goes on the wire (spec §6, §9).
//
// The message is read in passes: one to sign, one to send. A seekable fd 0 (the queue file)
// is read again from offset 0; anything else (a pipe, when run by hand) is first spooled to an
// unlinked temporary file, so memory never grows with the size of the message.
import { fstatSync, openSync, readSync, unlinkSync, writeSync, closeSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const CHUNK_BYTES = 1 << 20;
const CR = 0x0d;
const LF = 0x0a;

export interface MessageSource {
  /** The raw message from its first byte; each call starts a new pass. */
  chunks(): Iterable<Buffer>;
  close(): void;
}

/** fd 0 as qmail gives it (a regular file), or anything else spooled to a temporary file. */
export async function openMessage(fd = 0): Promise<MessageSource> {
  if (fstatSync(fd).isFile()) return fileSource(fd, false);
  return fileSource(await spool(fd), true);
}

export function bufferSource(message: Buffer): MessageSource {
  return { chunks: () => [message], close: () => undefined };
}

function fileSource(fd: number, owned: boolean): MessageSource {
  return {
    *chunks() {
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      let position = 0;
      for (;;) {
        const n = readSync(fd, buffer, 0, CHUNK_BYTES, position);
        if (n === 0) return;
        position += n;
        // Consumers hash or copy each chunk before asking for the next, but a copy keeps a
        // slow consumer (a socket write) from seeing its bytes overwritten.
        yield Buffer.from(buffer.subarray(0, n));
      }
    },
    close() {
      if (owned) closeSync(fd);
    },
  };
}

async function spool(fd: number): Promise<number> {
  const path = join(tmpdir(), `qmail-remote-dkim.${process.pid}.${randomBytes(6).toString('hex')}`);
  const spoolFd = openSync(path, 'wx+', 0o600);
  unlinkSync(path);
  try {
    for await (const chunk of createReadStream('', { fd, autoClose: false })) {
      writeAll(spoolFd, chunk as Buffer);
    }
  } catch (error) {
    closeSync(spoolFd);
    throw error;
  }
  return spoolFd;
}

function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset);
}

/**
 * LF, CRLF and bare CR all become CRLF, so a message typed by hand signs the same as a
 * queue file. A partial final line is completed: qmail's "partial final lines" bounce (#5.6.2)
 * would return mail we can deliver, and RFC 6376 adds that CRLF to the body hash anyway.
 */
export class CrlfNormalizer {
  private afterCr = false;
  private lastByte = LF;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const out = Buffer.allocUnsafe(chunk.length * 2 + 1);
    let o = 0;
    let i = 0;
    if (this.afterCr) {
      // A CR ended the previous chunk and was written as CRLF already; swallow its LF.
      if (chunk[0] === LF) i = 1;
      this.afterCr = false;
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
        if (i === chunk.length) this.afterCr = true;
        else if (chunk[i] === LF) i += 1;
      }
    }
    if (o > 0) this.lastByte = out[o - 1] as number;
    return out.subarray(0, o);
  }

  /** What is needed to finish the message: CRLF after a partial final line, else nothing. */
  end(): Buffer {
    return this.lastByte === LF ? Buffer.alloc(0) : Buffer.from('\r\n');
  }
}

/** Every pass over the message goes through this one normaliser. */
export function* normalised(source: MessageSource): Iterable<Buffer> {
  const normalizer = new CrlfNormalizer();
  for (const chunk of source.chunks()) {
    const out = normalizer.push(chunk);
    if (out.length > 0) yield out;
  }
  const tail = normalizer.end();
  if (tail.length > 0) yield tail;
}
