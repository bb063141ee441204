// SMTP transparency (RFC 5321 §4.5.2): a '.' that starts a line is doubled, and the message
// ends with CRLF '.' CRLF. Line ends are normalised on the way (LF, CRLF and bare CR become
// CRLF, as src/mail/message.ts does for signing), so the queue file can be sent as it is read,
// in one pass per byte; text that is normalised already passes unchanged but for the dots.
// The byte loop is WebAssembly (src/canon/kernels.ts); where that is off, the JavaScript
// normaliser runs first and line starts are then found with indexOf.
import { Kernel, LINE_START } from '../canon/kernels.ts';
import { CrlfNormalizer } from '../mail/message.ts';

const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const END = Buffer.from('.\r\n');

export class DotStuffer {
  private atLineStart = true;
  private scratch = Buffer.alloc(0);
  private readonly kernel: Kernel | null;
  /** The kernel's state between chunks (LINE_START, AFTER_CR). */
  private state = LINE_START;
  private readonly normalizer: CrlfNormalizer | null;

  constructor(useKernel = true) {
    this.kernel = useKernel ? Kernel.create() : null;
    this.normalizer = this.kernel ? null : new CrlfNormalizer(false);
  }

  /**
   * The chunk with its line-starting dots doubled, as a view into a buffer reused by the next
   * call (or the chunk itself), so the caller writes it and waits before asking again (as
   * smtp/wire.ts does), and memory does not grow with the message.
   */
  stuff(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    if (this.kernel) {
      const { out, state } = this.kernel.sendChunk(chunk, this.state, true, true);
      this.state = state;
      this.atLineStart = (state & LINE_START) !== 0;
      return out;
    }
    const normalised = (this.normalizer as CrlfNormalizer).push(chunk);
    return normalised.length > 0 ? this.stuffJs(normalised) : normalised;
  }

  /** The same in JavaScript. */
  private stuffJs(chunk: Buffer): Buffer {
    const starts = dotLineStarts(chunk, this.atLineStart);
    this.atLineStart = chunk[chunk.length - 1] === LF;
    if (starts.length === 0) return chunk;
    if (this.scratch.length < chunk.length + starts.length) this.scratch = Buffer.allocUnsafe(chunk.length * 2);
    let o = 0;
    let from = 0;
    for (const at of starts) {
      o += chunk.copy(this.scratch, o, from, at);
      this.scratch[o++] = DOT;
      from = at;
    }
    o += chunk.copy(this.scratch, o, from);
    return this.scratch.subarray(0, o);
  }

  /** The end of the data: CRLF first if the last line was not ended, then '.' CRLF. */
  end(): Buffer {
    return this.atLineStart ? END : Buffer.concat([CRLF, END]);
  }
}

/** Where the chunk has a '.' at the start of a line. */
function dotLineStarts(chunk: Buffer, atLineStart: boolean): number[] {
  const starts: number[] = atLineStart && chunk[0] === DOT ? [0] : [];
  for (let lf = chunk.indexOf('\n.'); lf !== -1; lf = chunk.indexOf('\n.', lf + 2)) starts.push(lf + 1);
  return starts;
}
