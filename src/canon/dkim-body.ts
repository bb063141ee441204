// DKIM relaxed body canonicalization (RFC 6376 §3.4.4, with errata 1384 and 1377) over the
// normalised message, streamed in chunks: white space runs become one SP, white space at line
// ends goes, and empty lines at the end of the body are dropped. An empty body is the null
// string.
//
// mailauth's RelaxedHash does the same and is the reference the tests compare against, but it
// walks every byte through a switch and builds a buffer per fixed line; on a 20 MB message
// that alone took longer than reading, hashing and sending it. Here a chunk with nothing to
// fix — most of them — is hashed as it is, and only the others are rewritten byte by byte.
import { createHash, type Hash } from 'node:crypto';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF = Buffer.from('\r\n');
// Anything relaxed canonicalization would change inside a chunk of CRLF lines.
const NEEDS_FIXING = /[ \t]\r|\t| {2}/;

export class RelaxedBodyHash {
  private readonly hash: Hash;
  /** Empty lines not yet hashed: dropped if only empty lines follow. */
  private pendingEmpty = 0;
  /** Nothing but white space has been seen on the current line so far. */
  private lineEmpty = true;
  /** A white space run was seen and not yet written (it is dropped at the line end). */
  private pendingSpace = false;

  constructor(algorithm: 'sha256' | 'sha1' = 'sha256') {
    this.hash = createHash(algorithm);
  }

  update(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const last = chunk[chunk.length - 1];
    // A chunk that starts with the LF of a CRLF split from the last one goes the slow way.
    const clean = !this.pendingSpace && chunk[0] !== LF && last !== SP && last !== HTAB && last !== CR && !NEEDS_FIXING.test(chunk.toString('latin1'));
    if (clean) this.hashClean(chunk);
    else this.hashFixed(chunk);
  }

  /** Body text that is canonical already (src/canon/body.ts made it): hashed as it is. */
  updateCanonical(data: Buffer): void {
    this.hash.update(data);
  }

  digest(): string {
    // A last line without CRLF (never, for a normalised message) is ended here.
    if (!this.lineEmpty) this.hash.update(CRLF);
    return this.hash.digest('base64');
  }

  /** A chunk that is already canonical: only its trailing empty lines need holding back. */
  private hashClean(chunk: Buffer): void {
    let end = chunk.length;
    while (end >= 2 && chunk[end - 2] === CR && chunk[end - 1] === LF) end -= 2;
    if (end === 0 && this.lineEmpty) {
      this.pendingEmpty += chunk.length / 2;
      return;
    }
    this.flushEmpty();
    if (end === chunk.length) {
      this.hash.update(chunk);
      this.lineEmpty = false;
      return;
    }
    // The first CRLF of the trailing run ends a line with content; the rest are empty lines.
    this.hash.update(chunk.subarray(0, end + 2));
    this.pendingEmpty = (chunk.length - end) / 2 - 1;
    this.lineEmpty = true;
  }

  private scratch = Buffer.alloc(0);

  private hashFixed(chunk: Buffer): void {
    // Reused from chunk to chunk, since hashing copies: a buffer per chunk made memory grow.
    // One more byte than the chunk: a chunk that starts with the LF of a split CRLF gains one.
    if (this.scratch.length < chunk.length + 1) this.scratch = Buffer.allocUnsafe(chunk.length + 1);
    const out = this.scratch;
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      if (byte === SP || byte === HTAB) {
        this.pendingSpace = true;
      } else if (byte === CR) {
        // Part of the CRLF that the LF writes.
      } else if (byte === LF) {
        this.pendingSpace = false;
        if (this.lineEmpty) {
          this.pendingEmpty++;
        } else {
          out[o++] = CR;
          out[o++] = LF;
          this.lineEmpty = true;
        }
      } else {
        if (this.lineEmpty) {
          if (this.pendingEmpty > 0) {
            this.hash.update(out.subarray(0, o));
            o = 0;
            this.flushEmpty();
          }
          this.lineEmpty = false;
        }
        if (this.pendingSpace) {
          out[o++] = SP;
          this.pendingSpace = false;
        }
        out[o++] = byte;
      }
    }
    this.hash.update(out.subarray(0, o));
  }

  private flushEmpty(): void {
    for (; this.pendingEmpty > 0; this.pendingEmpty--) this.hash.update(CRLF);
  }
}
