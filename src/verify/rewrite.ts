// The message as it goes to the next program: the new Authentication-Results field on top,
// then the message byte for byte, except that every Authentication-Results field of its header
// section is renamed X-Original-Authentication-Results (RFC 8601 §5), whatever authserv-id it
// names. Renaming every one rather than only those that name us: the id a lenient reader sees
// cannot be told from here for every odd spelling (quotes, comments, NUL, a trailing dot), and
// no reader after this host has reason to believe a result written before it.
//
// The header section is read as the most lenient reader (Dovecot, procmail, maildrop) reads
// it: every line up to the first empty one, whatever comes before (lines without a colon,
// 8-bit or NUL bytes in a name, a bare CR, which ends a line here too), with no size limit; a
// field's name is its bytes before the colon less white space, CR, LF and NUL, in any case,
// so a name folded before its colon is still found. The body passes untouched.
const LF = 0x0a;
const CR = 0x0d;
const NAME = 'authentication-results';
const RENAMED = Buffer.from('X-Original-');
/** A field still undecided after this many bytes (a name folded over blank lines) is renamed. */
const MAX_UNDECIDED_BYTES = 64 << 10;

/**
 * Output chunks. Header-section chunks are fresh buffers; body chunks are the source's own and
 * valid only until the next is asked for (write each and wait for the write).
 */
export function* rewritten(raw: Iterable<Buffer>, field: Buffer): Generator<Buffer> {
  yield field;
  const renamer = new Renamer();
  for (const chunk of raw) {
    if (renamer.inBody) yield chunk;
    else yield Buffer.concat(renamer.push(chunk));
  }
  yield Buffer.concat(renamer.end());
}

class Renamer {
  inBody = false;
  private atLineStart = true;
  /** The previous byte was a CR ending a line: an LF now belongs to it. */
  private afterCr = false;
  /** That CR stood alone at a line start: an LF now makes the empty line. */
  private crOpensLine = false;
  private inField = false;
  /** null while the field's name is not known to be or not to be ours. */
  private rename: boolean | null = null;
  private name = '';
  private held: Buffer[] = [];
  private heldBytes = 0;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let from = 0;
    const emit = (to: number): void => {
      if (to <= from) return;
      const piece = Buffer.from(chunk.subarray(from, to));
      if (this.inField && this.rename === null) this.hold(piece, out);
      else out.push(piece);
      from = to;
    };
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (c === LF && this.afterCr) {
        const empty = this.crOpensLine;
        this.afterCr = false;
        this.crOpensLine = false;
        if (empty) {
          emit(i + 1);
          this.endHead(out);
          out.push(Buffer.from(chunk.subarray(i + 1)));
          return out;
        }
        continue;
      }
      const wasLineStart = this.atLineStart;
      this.afterCr = false;
      this.crOpensLine = false;
      if (c === LF || c === CR) {
        if (c === LF && wasLineStart) {
          emit(i + 1);
          this.endHead(out);
          out.push(Buffer.from(chunk.subarray(i + 1)));
          return out;
        }
        this.afterCr = c === CR;
        this.crOpensLine = c === CR && wasLineStart;
        this.atLineStart = true;
        continue;
      }
      if (wasLineStart) {
        this.atLineStart = false;
        if (c !== 0x20 && c !== 0x09) {
          emit(i);
          this.closeField(out);
          this.inField = true;
          this.rename = null;
          this.name = '';
        }
      }
      if (this.inField && this.rename === null) {
        const decided = this.readName(c);
        if (decided !== null) {
          emit(i + 1); // still held: the field's start, up to the byte that decided it
          this.rename = decided;
          this.release(out);
        }
      }
    }
    emit(chunk.length);
    return out;
  }

  end(): Buffer[] {
    const out: Buffer[] = [];
    this.closeField(out);
    return out;
  }

  /** Reads one more byte of the name; whether to rename, once that is known. */
  private readName(c: number): boolean | null {
    if (c === 0x3a) return this.name === NAME;
    if (c === 0x20 || c === 0x09 || c === 0x00) return null;
    this.name += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
    return NAME.startsWith(this.name) ? null : false;
  }

  private hold(piece: Buffer, out: Buffer[]): void {
    this.held.push(piece);
    this.heldBytes += piece.length;
    if (this.heldBytes > MAX_UNDECIDED_BYTES) {
      this.rename = true;
      this.release(out);
    }
  }

  /** The held start of a field whose fate is now known. */
  private release(out: Buffer[]): void {
    if (this.held.length === 0) return;
    if (this.rename !== false) out.push(RENAMED);
    for (const piece of this.held) out.push(piece);
    this.held = [];
    this.heldBytes = 0;
  }

  private closeField(out: Buffer[]): void {
    if (this.inField && this.rename === null) this.rename = false;
    this.release(out);
    this.inField = false;
  }

  private endHead(out: Buffer[]): void {
    this.closeField(out);
    this.inBody = true;
  }
}
