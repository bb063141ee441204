// DomainKeys canonicalization (RFC 4870 §3.4), written here because no npm package has it.
// The signed data is a stream of lines: the header fields below the signature, the empty line
// that separates head and body, then the body. Both algorithms drop every empty line at the end
// of that stream — the separator counts as a body line, so an empty body leaves no separator —
// and the data always ends in exactly one CRLF.
//   simple (§3.4.1): every line as it is.
//   nofws  (§3.4.2): header fields unfolded and every SP, HTAB, CR and LF removed from them;
//                    SP and HTAB removed from every body line; each line then ends in CRLF.
// Input is the normalised message, so every line already ends in CRLF.

export type DkCanonicalization = 'simple' | 'nofws';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF = Buffer.from('\r\n');
const CR_BYTE = Buffer.from('\r');

export class DkCanonicalizer {
  private readonly algorithm: DkCanonicalization;
  private readonly sink: (data: Buffer) => void;
  /** Empty lines seen but not yet passed on: dropped if nothing but empty lines follows. */
  private pendingEmpty = 0;
  /** The last byte passed on did not end a line. */
  private midLine = false;
  private heldCr = false;

  constructor(algorithm: DkCanonicalization, sink: (data: Buffer) => void) {
    this.algorithm = algorithm;
    this.sink = sink;
  }

  /** One whole header field as it arrived (name, colon, value, folding, CRLF). */
  header(field: { readonly raw: Buffer }): void {
    if (this.algorithm === 'simple') this.sink(field.raw);
    else this.sink(Buffer.concat([stripInto(field.raw, Buffer.allocUnsafe(field.raw.length), true), CRLF]));
  }

  /** The empty line between head and body. */
  separator(): void {
    this.pendingEmpty++;
  }

  body(chunk: Buffer): void {
    let data = this.algorithm === 'nofws' ? this.strip(chunk) : chunk;
    // A CR that ends a chunk is held back until its LF is seen: it may end an empty line.
    if (this.heldCr) data = Buffer.concat([CR_BYTE, data]);
    this.heldCr = data.length > 0 && data[data.length - 1] === CR;
    if (this.heldCr) data = data.subarray(0, data.length - 1);
    if (data.length === 0) return;
    let emitFrom = 0;
    let lineStart = 0;
    for (let lf = data.indexOf(LF); lf !== -1; lf = data.indexOf(LF, lineStart)) {
      const empty = lf === lineStart + 1 && data[lineStart] === CR && !(lineStart === 0 && this.midLine);
      if (empty) {
        if (this.pendingEmpty === 0 && lineStart > emitFrom) this.sink(data.subarray(emitFrom, lineStart));
        this.pendingEmpty++;
        emitFrom = lf + 1;
      } else {
        this.flushEmpty();
      }
      lineStart = lf + 1;
    }
    if (lineStart < data.length) this.flushEmpty();
    if (emitFrom < data.length) this.sink(data.subarray(emitFrom));
    this.midLine = data[data.length - 1] !== LF;
  }

  /** Ends the data: trailing empty lines are dropped, and a partial last line is ended. */
  end(): void {
    if (this.heldCr) {
      this.flushEmpty();
      this.sink(CR_BYTE);
      this.midLine = true;
    }
    this.pendingEmpty = 0;
    if (this.midLine) this.sink(CRLF);
    this.midLine = false;
  }

  private scratch = Buffer.alloc(0);

  /**
   * The body bytes without SP and HTAB, in a buffer reused from chunk to chunk (the sink
   * hashes what it is given at once): a new buffer per chunk made memory grow with the message.
   */
  private strip(chunk: Buffer): Buffer {
    if (this.scratch.length < chunk.length) this.scratch = Buffer.allocUnsafe(chunk.length);
    return stripInto(chunk, this.scratch, false);
  }

  private flushEmpty(): void {
    for (; this.pendingEmpty > 0; this.pendingEmpty--) this.sink(CRLF);
  }
}

/** The bytes without SP and HTAB (and, for header fields, without CR and LF as well), in `out`. */
function stripInto(data: Buffer, out: Buffer, lineBreaksToo: boolean): Buffer {
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i] as number;
    if (byte === SP || byte === HTAB) continue;
    if (lineBreaksToo && (byte === CR || byte === LF)) continue;
    out[o++] = byte;
  }
  return out.subarray(0, o);
}
