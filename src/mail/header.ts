// The header section of a normalised (CRLF) message, kept as the bytes it arrived in so that
// each canonicalization can read the fields its own way. Tolerant by design: folded fields,
// repeated names, 8-bit bytes and a missing header/body separator are all ordinary here.
const CRLF = Buffer.from('\r\n');

// Large enough for any real header section; beyond it the message goes out unsigned rather
// than letting a stranger's message grow our memory without bound.
export const MAX_HEAD_BYTES = 4 << 20;

export interface HeaderField {
  /** The name as written (latin1), without surrounding white space. */
  readonly name: string;
  /** The name lowercased, for matching. */
  readonly key: string;
  /** The whole field: name, colon, value and folding, each line ending in CRLF. */
  readonly raw: Buffer;
}

export interface Head {
  readonly fields: readonly HeaderField[];
  /** An empty line ended the header section (it is not part of `fields` nor of the body). */
  readonly hasSeparator: boolean;
  /** The header section passed MAX_HEAD_BYTES and was not read whole. */
  readonly oversize: boolean;
  /**
   * A line that is neither a field nor a continuation ended the header section before any
   * empty line (a bare CR in a field that normalising turned into a line end, a body with no
   * empty line before it). Verifiers disagree about such a line: Mail::DKIM reads on to the
   * empty line, dkimpy refuses the message, mailauth stops elsewhere. The body read from here
   * starts with that line.
   */
  readonly strayLine: boolean;
}

const FIELD_START = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/**
 * Reads the header section from normalised chunks. push() returns null while the head goes
 * on, then the first body bytes (possibly empty); from then on every chunk is body.
 */
export class HeadReader {
  private pending: Buffer = Buffer.alloc(0);
  private lines: Buffer[] = [];
  private fields: HeaderField[] = [];
  private size = 0;
  private done: Head | null = null;

  push(chunk: Buffer): Buffer | null {
    if (this.done) return chunk;
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const lf = data.indexOf(0x0a, start);
      if (lf === -1) break;
      const line = data.subarray(start, lf + 1);
      if (!this.takeLine(line)) return data.subarray(start + (this.separatorSeen() ? line.length : 0));
      start = lf + 1;
    }
    this.pending = Buffer.from(data.subarray(start));
    if (this.size + this.pending.length > MAX_HEAD_BYTES) {
      this.finish(false, true);
      return data.subarray(start);
    }
    return null;
  }

  /** The message ended inside the head: every field read so far is the head, the body is empty. */
  end(): Head {
    if (!this.done) this.finish(false, false);
    return this.done as Head;
  }

  private separatorSeen(): boolean {
    return this.done?.hasSeparator === true;
  }

  get head(): Head | null {
    return this.done;
  }

  /** Returns false when the line ends the header section. */
  private takeLine(line: Buffer): boolean {
    if (line.length === 2 && line[0] === 0x0d) {
      this.finish(true, false);
      return false;
    }
    const continues = (line[0] === 0x20 || line[0] === 0x09) && this.lines.length > 0;
    if (!continues && !FIELD_START.test(line.subarray(0, 1000).toString('latin1'))) {
      // Not a field: to us the body has begun without the empty line that should precede it.
      this.finish(false, false, true);
      return false;
    }
    this.size += line.length;
    if (this.size > MAX_HEAD_BYTES) {
      this.finish(false, true);
      return false;
    }
    if (!continues) this.closeField();
    this.lines.push(Buffer.from(line));
    return true;
  }

  private closeField(): void {
    if (this.lines.length === 0) return;
    const raw = Buffer.concat(this.lines);
    const name = (FIELD_START.exec(raw.subarray(0, 1000).toString('latin1'))?.[1] ?? '').trim();
    this.fields.push({ name, key: name.toLowerCase(), raw });
    this.lines = [];
  }

  private finish(hasSeparator: boolean, oversize: boolean, strayLine = false): void {
    this.closeField();
    this.done = { fields: this.fields, hasSeparator, oversize, strayLine };
    this.pending = Buffer.alloc(0);
  }
}

/** The value of a field: everything after the first colon, unfolded, without the final CRLF. */
export function fieldValue(field: HeaderField): Buffer {
  const colon = field.raw.indexOf(0x3a);
  const value = field.raw.subarray(colon + 1, field.raw.length - CRLF.length);
  return Buffer.from(value.toString('latin1').replace(/\r\n(?=[ \t])/g, ''), 'latin1');
}
