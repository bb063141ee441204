// SMTP transparency (RFC 5321 §4.5.2): a '.' that starts a line is doubled, and the message
// ends with CRLF '.' CRLF. The input is the normalised message (CRLF lines, last line ended),
// where every LF ends a line; line starts are found with indexOf, so a large message costs
// little more than copying it.
const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUFFER = Buffer.from('.');
const CRLF = Buffer.from('\r\n');
const END = Buffer.from('.\r\n');

export class DotStuffer {
  private atLineStart = true;

  /** The chunk with its line-starting dots doubled (the chunk itself when it has none). */
  stuff(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const out = stuff(chunk, this.atLineStart);
    this.atLineStart = chunk[chunk.length - 1] === LF;
    return out;
  }

  /** The end of the data: CRLF first if the last line was not ended, then '.' CRLF. */
  end(): Buffer {
    return this.atLineStart ? END : Buffer.concat([CRLF, END]);
  }
}

/** The chunk with every line-starting '.' doubled. */
export function stuff(chunk: Buffer, atLineStart: boolean): Buffer {
  const pieces: Buffer[] = [];
  let from = 0;
  if (atLineStart && chunk[0] === DOT) pieces.push(DOT_BUFFER);
  for (let lf = chunk.indexOf('\n.'); lf !== -1; lf = chunk.indexOf('\n.', lf + 2)) {
    pieces.push(chunk.subarray(from, lf + 1), DOT_BUFFER);
    from = lf + 1;
  }
  if (pieces.length === 0) return chunk;
  pieces.push(chunk.subarray(from));
  return Buffer.concat(pieces);
}
