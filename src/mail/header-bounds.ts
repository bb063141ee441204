// What a header section may hold before mailauth's parsers are given it: its header parser is
// quadratic in the lines of one folded field, its tag parser in runs of white space, and the
// h= scans grow with names × fields. qmail-dkverify checks nothing past these bounds
// (src/verify/bounds.ts), and qmail-remote does not ARC-seal such a message (src/signing/seal.ts).
import type { Head } from './header.ts';

/** Lines of one folded field: mailauth's header parser is quadratic in them. */
export const MAX_LINES_PER_FIELD = 1000;
/** Fields in the header section: the h= scans are names × fields. */
export const MAX_FIELDS = 5000;
/**
 * White space in one run inside a signature field (DKIM-Signature, ARC-*): mailauth's tag
 * parser is quadratic in such runs, and a real signer folds with a few spaces at a time.
 */
export const MAX_SPACE_RUN = 256;

/** Why the header section is past what is checked at all, or null. */
export function headerBeyondBounds(head: Head): string | null {
  if (head.fields.length > MAX_FIELDS) return `more than ${MAX_FIELDS} header fields`;
  for (const field of head.fields) {
    if (countLines(field.raw) > MAX_LINES_PER_FIELD) return `a header field of more than ${MAX_LINES_PER_FIELD} lines`;
    if (field.key.startsWith('arc-') && spaceRunOver(field.raw)) return `an ARC field with more than ${MAX_SPACE_RUN} spaces in a row`;
  }
  return null;
}

/** Whether the field holds a run of more than MAX_SPACE_RUN bytes of white space (CR and LF included). */
export function spaceRunOver(raw: Buffer): boolean {
  let run = 0;
  for (const byte of raw) {
    run = byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a ? run + 1 : 0;
    if (run > MAX_SPACE_RUN) return true;
  }
  return false;
}

function countLines(raw: Buffer): number {
  let lines = 0;
  for (let at = raw.indexOf(0x0a); at !== -1 && lines <= MAX_LINES_PER_FIELD; at = raw.indexOf(0x0a, at + 1)) lines++;
  return lines;
}

