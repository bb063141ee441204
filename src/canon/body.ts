// The signing pass over a message body in one loop per chunk (src/canon/kernels.ts): the raw
// queue-file bytes are normalised to CRLF and canonicalized for DKIM (relaxed) and DomainKeys
// (nofws) at once, and each output goes to its hashes in one update per chunk.
//
// What the loop leaves to this module: both canonicalizations drop the empty lines at the end
// of the body, so a chunk's trailing empty lines are held back until something else follows.
// The results are those of RelaxedBodyHash (dkim-body.ts) and DkCanonicalizer (dk.ts) over the
// normalised message; the tests hold them to those, to mailauth and to a one-chunk run.
import { AFTER_CR, Kernel, PIECE } from './kernels.ts';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const LINE_END = Buffer.from('\n');

/** Canonical CRLF lines passed on, except the empty lines at the end. */
export class TrailingEmptyLines {
  private readonly sink: (data: Buffer) => void;
  private pendingEmpty: number;
  /** The last data passed on did not end with a line end. */
  private midLine = false;

  /** `pendingEmpty`: empty lines already seen (DomainKeys: the head/body separator). */
  constructor(sink: (data: Buffer) => void, pendingEmpty = 0) {
    this.sink = sink;
    this.pendingEmpty = pendingEmpty;
  }

  /** `data` holds whole CRLF pairs: the kernels never split one. */
  push(data: Buffer): void {
    let end = data.length;
    while (end >= 2 && data[end - 1] === LF && data[end - 2] === CR) end -= 2;
    const lineEnds = (data.length - end) / 2;
    if (end === 0) {
      if (lineEnds === 0) return;
      if (this.midLine) {
        this.sink(CRLF);
        this.midLine = false;
        this.pendingEmpty += lineEnds - 1;
      } else {
        this.pendingEmpty += lineEnds;
      }
      return;
    }
    for (; this.pendingEmpty > 0; this.pendingEmpty--) this.sink(CRLF);
    if (lineEnds === 0) {
      this.sink(data);
      this.midLine = true;
      return;
    }
    // The first CRLF of the trailing run ends a line with content; the others are empty lines.
    this.sink(data.subarray(0, end + 2));
    this.pendingEmpty = lineEnds - 1;
    this.midLine = false;
  }
}

export interface BodySinks {
  /** The DKIM relaxed body, as it is to be hashed (every DKIM signature hashes the same). */
  readonly relaxed: (data: Buffer) => void;
  /** The DomainKeys nofws body, or null when there is no DomainKeys signature. */
  readonly nofws: ((data: Buffer) => void) | null;
  /** The head ended with an empty line: DomainKeys counts it as the first body line. */
  readonly separator: boolean;
}

export class SigningBodyPass {
  private readonly kernel: Kernel;
  private readonly relaxed: TrailingEmptyLines;
  private readonly nofws: TrailingEmptyLines | null;
  private state = 0;
  private lastByte = LF;

  private constructor(kernel: Kernel, sinks: BodySinks) {
    this.kernel = kernel;
    this.relaxed = new TrailingEmptyLines(sinks.relaxed);
    this.nofws = sinks.nofws ? new TrailingEmptyLines(sinks.nofws, sinks.separator ? 1 : 0) : null;
  }

  /**
   * Null where WebAssembly is not available: the caller then uses the JavaScript canonicalizers.
   * `kernel`: an instance to share with other passes, each of which hands on its outputs
   * before the next call.
   */
  static create(sinks: BodySinks, kernel: Kernel | null = Kernel.create()): SigningBodyPass | null {
    return kernel ? new SigningBodyPass(kernel, sinks) : null;
  }

  /**
   * Raw message bytes (LF, CRLF or bare CR line ends), or text already normalised (CRLF stays
   * CRLF). `afterCr`: the bytes before these ended in a CR whose LF may start these.
   */
  push(chunk: Buffer, afterCr = false): void {
    if (chunk.length === 0) return;
    if (afterCr) this.state |= AFTER_CR;
    for (let at = 0; at < chunk.length; at += PIECE) {
      const out = this.kernel.sign(chunk.subarray(at, at + PIECE), this.state);
      this.state = out.state;
      this.relaxed.push(out.relaxed);
      this.nofws?.push(out.nofws);
    }
    this.lastByte = chunk[chunk.length - 1] as number;
  }

  /** A last line without a line end is ended, as the normaliser does (its white space goes). */
  end(): void {
    if (this.lastByte !== LF && this.lastByte !== CR) this.push(LINE_END);
  }
}
