// The message as it goes to the next program: the new Authentication-Results field on top,
// then the message byte for byte, except that every Authentication-Results field in its
// header section that claims our authserv-id is renamed X-Original-Authentication-Results
// (RFC 8601 §5), so that no mailbox rule mistakes it for ours. The header section is read
// from the raw bytes (LF or CRLF, as they came) up to MAX_HEAD_BYTES; past that the rest is
// passed on unread, as it is.
import { MAX_HEAD_BYTES } from '../mail/header.ts';
import { authservIdOf } from './auth-results.ts';

const LF = 0x0a;
const FIELD_START = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;
const RENAMED = Buffer.from('X-Original-');

/**
 * Output chunks. Header-section chunks are fresh buffers; body chunks are the source's own and
 * valid only until the next is asked for (write each and wait for the write).
 */
export function* rewritten(raw: Iterable<Buffer>, field: Buffer, authservId: string): Generator<Buffer> {
  yield field;
  const ours = authservId.toLowerCase();
  let inHead = true;
  let headBytes = 0;
  let partial: Buffer = Buffer.alloc(0);
  /** The lines of the Authentication-Results field being read, held until it is complete. */
  let held: Buffer[] | null = null;
  const release = (): Buffer[] => {
    if (held === null) return [];
    const lines = held;
    held = null;
    const text = Buffer.concat(lines).toString('latin1');
    const colon = text.indexOf(':');
    return authservIdOf(text.slice(colon + 1)) === ours ? [RENAMED, ...lines] : lines;
  };
  for (const chunk of raw) {
    if (!inHead) {
      yield chunk;
      continue;
    }
    const data = partial.length > 0 ? Buffer.concat([partial, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (let lf = data.indexOf(LF); lf !== -1 && inHead; lf = data.indexOf(LF, start)) {
      const line = Buffer.from(data.subarray(start, lf + 1));
      start = lf + 1;
      headBytes += line.length;
      const continues = (line[0] === 0x20 || line[0] === 0x09) && held !== null;
      if (continues) {
        (held as Buffer[] | null)?.push(line);
        continue;
      }
      out.push(...release());
      const name = FIELD_START.exec(line.subarray(0, 1000).toString('latin1'))?.[1];
      const continuation = line[0] === 0x20 || line[0] === 0x09;
      if (name?.toLowerCase() === 'authentication-results') held = [line];
      else if (name !== undefined || continuation) out.push(line);
      else {
        // The empty line, or the body beginning without one: the header section is over.
        out.push(line);
        inHead = false;
      }
      if (headBytes > MAX_HEAD_BYTES) {
        out.push(...release());
        inHead = false;
      }
    }
    const rest = data.subarray(start);
    if (inHead) {
      partial = Buffer.from(rest);
      if (headBytes + partial.length > MAX_HEAD_BYTES) {
        out.push(...release(), partial);
        partial = Buffer.alloc(0);
        inHead = false;
      }
      if (out.length > 0) yield Buffer.concat(out);
    } else {
      out.push(Buffer.from(rest));
      partial = Buffer.alloc(0);
      yield Buffer.concat(out);
    }
  }
  yield Buffer.concat([...release(), partial]);
}
