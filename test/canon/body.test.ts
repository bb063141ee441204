// The one-loop signing pass (src/canon/body.ts over src/canon/kernels.ts) and the WebAssembly
// send loop, against the references: mailauth's RelaxedHash for the DKIM relaxed body, our
// JavaScript DkCanonicalizer (itself held to Mail::DKIM) for DomainKeys nofws, the JavaScript
// normaliser and dot-stuffer; and against a run over the whole body in one chunk. Generated
// bodies are cut at every position and in odd sizes, so that a CR ends one chunk and its LF
// starts the next, white space runs and empty lines span chunks, and a '.' starts a chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RelaxedHash } from 'mailauth/lib/dkim/body/relaxed.js';
import { SigningBodyPass } from '../../src/canon/body.ts';
import { DkCanonicalizer } from '../../src/canon/dk.ts';
import { CrlfNormalizer } from '../../src/mail/message.ts';
import { DotStuffer } from '../../src/delivery/transparency.ts';
import { generator } from '../helpers/generator.ts';

function normaliseJs(raw: Buffer): Buffer {
  const n = new CrlfNormalizer(false);
  return Buffer.concat([Buffer.from(n.push(raw)), n.end()]);
}

/** The references, over the whole body: relaxed body hash, nofws body text. */
function reference(raw: Buffer, separator: boolean): { relaxed: string; nofws: string } {
  const body = normaliseJs(raw);
  const hash = new RelaxedHash('sha256');
  hash.update(body);
  const nofws: Buffer[] = [];
  const dk = new DkCanonicalizer('nofws', (data) => nofws.push(Buffer.from(data)));
  if (separator) dk.separator();
  dk.body(body);
  dk.end();
  return { relaxed: hash.digest('base64'), nofws: Buffer.concat(nofws).toString('latin1') };
}

/** The pass over `raw` cut at the given offsets. */
function pass(raw: Buffer, cuts: readonly number[], separator: boolean): { relaxed: string; nofws: string } {
  const relaxed = createHash('sha256');
  const nofws: Buffer[] = [];
  const body = SigningBodyPass.create({
    relaxed: (data) => relaxed.update(data),
    nofws: (data) => nofws.push(Buffer.from(data)),
    separator,
  });
  assert.ok(body, 'WebAssembly is available here');
  let from = 0;
  for (const at of [...cuts, raw.length]) {
    body.push(raw.subarray(from, at));
    from = at;
  }
  body.end();
  return { relaxed: relaxed.digest('base64'), nofws: Buffer.concat(nofws).toString('latin1') };
}

function everySize(length: number): number[][] {
  const splits: number[][] = [[]];
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const cuts: number[] = [];
    for (let at = size; at < length; at += size) cuts.push(at);
    splits.push(cuts);
  }
  return splits;
}

function checkSigning(name: string, raw: Buffer): void {
  for (const separator of [true, false]) {
    const expected = reference(raw, separator);
    assert.deepEqual(pass(raw, [], separator), expected, `${name}: one chunk`);
    for (const cuts of everySize(raw.length)) assert.deepEqual(pass(raw, cuts, separator), expected, `${name}: cut at ${cuts.join(',')}`);
    // Every single cut: a CR at the end of one chunk and its LF at the start of the next, a
    // run of white space or of empty lines in both.
    for (let at = 1; at < raw.length; at++) assert.deepEqual(pass(raw, [at], separator), expected, `${name}: cut at ${at}`);
  }
}

// Long runs without white space or line ends too: the send loop takes eight such bytes at once.
const PIECES = [
  ' ', '\t', '  \t ', 'a', 'b.', '.', '..', '\n', '\n', '\r\n', '\r', '\n\n', ' \n', '\t\r\n', '\r\r\n', 'x y', '\xe9', '\0',
  'abcdefghijklm', 'nopq.rstuvwxyz0123456789', '\xff\xfe\x80\x7f\x01\x2d\x2f\x0c\x0e\x09\x0b',
];

// Without CR, as qmail writes queue files: the loops take sixteen bytes at a time then, and a
// block holding a CR goes byte by byte, so the pieces above would seldom reach those steps.
const LF_PIECES = PIECES.filter((piece) => !piece.includes('\r'));

function generated(next: (n: number) => number, length: number, pieces: readonly string[] = PIECES): Buffer {
  let text = '';
  for (let i = 0; i < length; i++) text += pieces[next(pieces.length)];
  return Buffer.from(text, 'latin1');
}

test('known cases, raw line ends of every kind', () => {
  for (const text of ['', '\n', 'a', 'a  ', ' \n\n', 'a \t b\t\n\n\n', '\r', 'a\r\r\nb\n', 'a\r\n \r\n\t\n', '.x\n..\n', 'x\n\n \ny \n']) {
    checkSigning(JSON.stringify(text), Buffer.from(text, 'latin1'));
  }
});

test('generated bodies cut at every position', () => {
  const next = generator(7);
  for (let round = 0; round < 150; round++) {
    const raw = generated(next, next(30));
    checkSigning(`round ${round}: ${JSON.stringify(raw.toString('latin1'))}`, raw);
  }
});

test('generated bodies with LF line ends only, cut at every position', () => {
  const next = generator(17);
  for (let round = 0; round < 150; round++) {
    const raw = generated(next, next(40), LF_PIECES);
    checkSigning(`round ${round}: ${JSON.stringify(raw.toString('latin1'))}`, raw);
  }
});

test('a body larger than one kernel piece, in queue-file chunks and in one', () => {
  const next = generator(11);
  const raw = Buffer.concat(Array.from({ length: 4000 }, () => generated(next, 20)));
  const expected = reference(raw, true);
  assert.deepEqual(pass(raw, [], true), expected);
  const cuts: number[] = [];
  for (let at = 65536; at < raw.length; at += 65536) cuts.push(at);
  assert.deepEqual(pass(raw, cuts, true), expected);
  const odd: number[] = [];
  for (let at = 9973; at < raw.length; at += 9973) odd.push(at);
  assert.deepEqual(pass(raw, odd, true), expected);
});

/** The JavaScript normaliser, then the JavaScript dot-stuffer. */
function sendJs(chunks: Buffer[]): string {
  const normaliser = new CrlfNormalizer(false);
  const stuffer = new DotStuffer(false);
  const out: Buffer[] = chunks.map((chunk) => Buffer.from(stuffer.stuff(Buffer.from(normaliser.push(chunk)))));
  out.push(Buffer.from(stuffer.stuff(normaliser.end())), stuffer.end());
  return Buffer.concat(out).toString('latin1');
}

/** The two WebAssembly passes, normaliser then dot-stuffer, as with a normalised message. */
function sendKernel(chunks: Buffer[]): string {
  const normaliser = new CrlfNormalizer();
  const stuffer = new DotStuffer();
  const out: Buffer[] = chunks.map((chunk) => Buffer.from(stuffer.stuff(Buffer.from(normaliser.push(chunk)))));
  out.push(Buffer.from(stuffer.stuff(normaliser.end())), stuffer.end());
  return Buffer.concat(out).toString('latin1');
}

/** The one pass qmail-remote sends with: raw queue-file bytes straight into the dot-stuffer. */
function sendFused(chunks: Buffer[], useKernel = true): string {
  const stuffer = new DotStuffer(useKernel);
  const out: Buffer[] = chunks.map((chunk) => Buffer.from(stuffer.stuff(chunk)));
  out.push(stuffer.end());
  return Buffer.concat(out).toString('latin1');
}

function cut(raw: Buffer, at: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const to of [...at, raw.length]) {
    chunks.push(raw.subarray(from, to));
    from = to;
  }
  return chunks;
}

test('the send loop normalises and dot-stuffs as the JavaScript does, a "." at a line start across chunks included', () => {
  const next = generator(13);
  for (let round = 0; round < 150; round++) {
    const raw = generated(next, next(30));
    const expected = sendJs([raw]);
    for (const send of [sendKernel, sendFused, (chunks: Buffer[]) => sendFused(chunks, false)]) {
      assert.equal(send([raw]), expected, `round ${round}, one chunk`);
      for (let at = 1; at < raw.length; at++) assert.equal(send(cut(raw, [at])), expected, `round ${round}, cut at ${at}`);
      for (const cuts of everySize(raw.length)) assert.equal(send(cut(raw, cuts)), expected, `round ${round}, cut at ${cuts.join(',')}`);
    }
  }
  for (let round = 0; round < 150; round++) {
    const raw = generated(next, next(40), LF_PIECES);
    const expected = sendJs([raw]);
    assert.equal(sendFused([raw]), expected, `LF round ${round}, one chunk`);
    for (let at = 1; at < raw.length; at++) assert.equal(sendFused(cut(raw, [at])), expected, `LF round ${round}, cut at ${at}`);
  }
  const lf = Buffer.concat(Array.from({ length: 8000 }, () => generated(next, 20, LF_PIECES)));
  assert.equal(sendFused([lf]), sendJs([lf]));
  assert.deepEqual(pass(lf, [], true), reference(lf, true));
  const big = Buffer.concat(Array.from({ length: 8000 }, () => generated(next, 20)));
  assert.equal(sendKernel([big]), sendJs([big]));
  assert.equal(sendFused([big]), sendJs([big]));
  assert.equal(sendFused(cut(big, [65535, 65536 * 2 + 1])), sendJs([big]));
});
