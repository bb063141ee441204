// A big message made at test time (20 MB is too much to commit): a realistic
// header and a body of LF-terminated text lines, as qmail stores it. The body
// repeats one block of lines, so it is cheap to build and its canonical forms
// are easy to reason about; the block has trailing whitespace, runs of spaces
// and a leading dot so every canonicalization step has work to do.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TWENTY_MB = 20 * 1024 * 1024;

export type BigMessage = {
  path: string;
  // Total bytes written (header + body), at least the size asked for.
  size: number;
  remove: () => Promise<void>;
};

const HEADER = [
  'Received: (qmail 31337 invoked by uid 1000); 22 Nov 2025 04:30:20 -0000',
  'Date: Sat, 22 Nov 2025 04:30:20 +0000',
  'From: Alice Example <alice@example.com>',
  'To: bob@example.net',
  'Subject: A very big message',
  'Message-ID: <20251122043020.31337.qmail@mail.example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  '',
].join('\n');

const BLOCK = [
  'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnop',
  'Runs  of   spaces\tand\t\ttabs inside, trailing whitespace at the end \t ',
  '.A line starting with a dot (dot-stuffed on the wire, not when signed)',
  '',
].join('\n') + '\n';

// The worst case for relaxed canonicalization and dot-stuffing: short lines, runs of spaces
// and tabs everywhere, trailing white space, dots at line starts, empty lines.
const WHITESPACE_BLOCK = [
  'a  b\t\tc   d',
  ' \t x \t y  ',
  '.',
  '..dots',
  '\t\t',
  'e f  g\t',
  '',
  ' . z',
].join('\n') + '\n';

export type BodyStyle = 'text' | 'whitespace';

// Writes a message of at least `minBytes` bytes into a new temp directory.
export async function writeBigMessage(minBytes = TWENTY_MB, style: BodyStyle = 'text'): Promise<BigMessage> {
  const header = Buffer.from(HEADER, 'ascii');
  const block = style === 'text' ? BLOCK : WHITESPACE_BLOCK;
  const blocks = Math.max(1, Math.ceil((minBytes - header.length) / block.length));
  // Buffer.alloc repeats the fill string; a whole number of blocks keeps the
  // final LF that qmail guarantees.
  const body = Buffer.alloc(blocks * block.length, block, 'ascii');
  const dir = await mkdtemp(join(tmpdir(), 'big-message-'));
  const path = join(dir, 'message.eml');
  await writeFile(path, Buffer.concat([header, body]));
  return {
    path,
    size: header.length + body.length,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
