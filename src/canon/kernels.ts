// The per-byte work on a message body, as WebAssembly loops (built by src/canon/wasm.ts):
//
//   sign:  one pass over the raw queue-file bytes that turns LF, CRLF and bare CR into CRLF
//          and writes two outputs at once, the DKIM relaxed body (white space runs as one SP,
//          none at a line end) and the DomainKeys nofws body (no SP or HTAB at all);
//   send:  one pass that turns line ends into CRLF, or doubles a '.' at a line start (SMTP
//          transparency), or both at once.
//
// Held back empty lines at the end of a body are the callers' business (src/canon/body.ts):
// here every line end becomes CRLF at once, so a CRLF is never split between two outputs.
//
// In JavaScript each of these loops cost 2-6 ns a byte, more than reading, hashing and sending
// the byte together; here each is well under one. The JavaScript canonicalizers
// (dkim-body.ts, dk.ts, message.ts's normaliser, transparency.ts) stay as the reference the
// tests hold these loops to, and as the fallback where WebAssembly is off (node --jitless).
import { moduleBytes, op, type Code } from './wasm.ts';

/** The largest input one call takes; callers cut larger chunks into pieces. */
// The size of the chunks src/mail/message.ts reads, so that one chunk is one call.
// 256 KiB: a quarter of the socket writes and event-loop turns of 64 KiB chunks, for ~20 % less
// CPU on a 20 MiB message, and still a few MiB of memory in all.
export const PIECE = 0x40000;
const IN = 0;
// Each output is at most 2 × PIECE + 2 bytes.
const OUT1 = PIECE;
const OUT2 = OUT1 + 2 * PIECE + 64;
const PAGES = Math.ceil((OUT2 + 2 * PIECE + 64) / 0x10000);

const LF = 10;
const CR = 13;
const SP = 32;
const HTAB = 9;
const DOT = 46;
const CRLF16 = CR | (LF << 8);

// State bits passed in and returned in global g0.
export const SPACE = 1; // sign: a white space run not yet written
export const AFTER_CR = 2; // a CR ended the last input: a LF starting the next is part of it
export const LINE_START = 4; // send: the next byte starts a line

const { get, set, const: k } = op;

/** `local = local + n` */
const bump = (local: number, n: number): Code => [get(local), k(n), op.add, set(local)];
/** store8 at `local`, then advance it */
const put = (local: number, value: Code): Code => [get(local), value, op.store8, ...bump(local, 1)];
const putCrlf = (local: number): Code => [get(local), k(CRLF16), op.store16, ...bump(local, 2)];
/** After a CR at i-1: a LF at i is swallowed, or, at the end of the input, expected next time. */
const swallowLf = (i: number, n: number, cr: number): Code => [
  get(i), get(n), op.ltU,
  op.if([get(i), op.load8, k(LF), op.eq, op.if(bump(i, 1))], [k(1), set(cr)]),
];
/** At entry: a LF left over from a CRLF split between inputs is skipped. */
const skipSplitLf = (state: number, n: number, i: number): Code => [
  get(state), k(AFTER_CR), op.and,
  op.if([get(n), op.if([k(IN), op.load8, k(LF), op.eq, op.if([k(1), set(i)])])]),
];

// sign(n, state) -> relaxed length at OUT1; g0 = new state, g1 = nofws length at OUT2.
const S = { n: 0, state: 1, i: 2, a: 3, b: 4, x: 5, sp: 6, cr: 7 };
const flushSpace: Code = [get(S.sp), op.if([...put(S.a, k(SP)), k(0), set(S.sp)])];
const copyByte: Code = [...flushSpace, ...put(S.a, get(S.x)), ...put(S.b, get(S.x)), op.br('next')];
const sign: Code = [
  k(OUT1), set(S.a), k(OUT2), set(S.b), get(S.state), k(SPACE), op.and, set(S.sp),
  ...skipSplitLf(S.state, S.n, S.i),
  op.block('done', op.loop('next',
    get(S.i), get(S.n), op.geU, op.brIf('done'),
    get(S.i), op.load8, set(S.x), ...bump(S.i, 1),
    get(S.x), k(SP), op.gtU, op.if(copyByte),
    get(S.x), k(SP), op.eq, get(S.x), k(HTAB), op.eq, op.or, op.if([k(1), set(S.sp), op.br('next')]),
    get(S.x), k(LF), op.eq, op.if([...putCrlf(S.a), ...putCrlf(S.b), k(0), set(S.sp), op.br('next')]),
    get(S.x), k(CR), op.eq, op.if([...putCrlf(S.a), ...putCrlf(S.b), k(0), set(S.sp), ...swallowLf(S.i, S.n, S.cr), op.br('next')]),
    copyByte,
  )),
  get(S.sp), get(S.cr), k(1), op.shl, op.or, op.globalSet(0),
  get(S.b), k(OUT2), op.sub, op.globalSet(1),
  get(S.a), k(OUT1), op.sub,
];

// send(n, state, normalise, stuff) -> length at OUT1; g0 = new state.
const T = { n: 0, state: 1, normalise: 2, stuff: 3, i: 4, o: 5, x: 6, bol: 7, cr: 8, w: 9 };
const ONES = 0x0101010101010101n;
const HIGHS = 0x8080808080808080n;
/** Non-zero iff a byte of the i64 `w` is `byte`: (v - 0x01…01) & ~v & 0x80…80, v = w ^ byte…byte. */
const hasByte = (byte: number): Code => [
  get(T.w), op.const64(ONES * BigInt(byte)), op.xor64, op.const64(ONES), op.sub64,
  get(T.w), op.const64(ONES * BigInt(byte)), op.xor64, op.const64(-1n), op.xor64,
  op.and64, op.const64(HIGHS), op.and64,
];
/** 1 when the i64 `w` holds no LF, CR or '.'. */
const plainWord = (): Code => [...hasByte(LF), ...hasByte(CR), op.or64, ...hasByte(DOT), op.or64, op.eqz64];
// Eight bytes at a time while none of them is a LF, a CR or a '.': most of a text message.
const eightPlain: Code = [
  get(T.i), k(8), op.add, get(T.n), op.gtU, op.eqz,
  op.if([
    get(T.i), op.load64, set(T.w),
    ...plainWord(),
    op.if([get(T.o), get(T.w), op.store64, ...bump(T.o, 8), ...bump(T.i, 8), k(0), set(T.bol), op.br('next')]),
  ]),
];
const sendByte: Code = [...put(T.o, get(T.x)), k(0), set(T.bol), op.br('next')];
const send: Code = [
  k(OUT1), set(T.o), get(T.state), k(2), op.shrU, k(1), op.and, set(T.bol),
  ...skipSplitLf(T.state, T.n, T.i),
  op.block('done', op.loop('next',
    get(T.i), get(T.n), op.geU, op.brIf('done'),
    eightPlain,
    get(T.i), op.load8, set(T.x), ...bump(T.i, 1),
    get(T.x), k(DOT), op.gtU, op.if(sendByte),
    get(T.x), k(DOT), op.eq, op.if([get(T.bol), get(T.stuff), op.and, op.if(put(T.o, k(DOT))), sendByte]),
    get(T.x), k(LF), op.eq, op.if([
      get(T.normalise), op.if(putCrlf(T.o), put(T.o, k(LF))), k(1), set(T.bol), op.br('next'),
    ]),
    get(T.x), k(CR), op.eq, get(T.normalise), op.and,
    op.if([...putCrlf(T.o), k(1), set(T.bol), ...swallowLf(T.i, T.n, T.cr), op.br('next')]),
    sendByte,
  )),
  get(T.bol), k(2), op.shl, get(T.cr), k(1), op.shl, op.or, op.globalSet(0),
  get(T.o), k(OUT1), op.sub,
];

// The little of the WebAssembly JavaScript API used here (TypeScript's lib has it only with DOM).
interface WasmModule {
  readonly kind?: 'module';
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule) => { readonly exports: unknown };
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: WasmModule | null | undefined;

function compile(): WasmModule | null {
  if (compiled !== undefined) return compiled;
  if (!wasm) return (compiled = null); // no WebAssembly here (node --jitless)
  try {
    compiled = new wasm.Module(
      moduleBytes(PAGES, 2, [
        { name: 'sign', params: 2, locals: 6, body: sign },
        { name: 'send', params: 4, locals: 5, locals64: 1, body: send },
      ]),
    );
  } catch {
    compiled = null; // the JavaScript loops do the work
  }
  return compiled;
}

interface Exports {
  memory: { readonly buffer: ArrayBuffer };
  sign(n: number, state: number): number;
  send(n: number, state: number, normalise: number, stuff: number): number;
  g0: { readonly value: number };
  g1: { readonly value: number };
}

/**
 * One instance, with its own memory, per user: each output is a view into that memory, valid
 * until the user's next call, so two users never overwrite each other's views.
 */
export class Kernel {
  private readonly exports: Exports;
  private readonly memory: Buffer;

  private constructor(exports: Exports) {
    this.exports = exports;
    this.memory = Buffer.from(exports.memory.buffer);
  }

  /** A new instance, or null where WebAssembly is not available. */
  static create(): Kernel | null {
    const module = compile();
    return module && wasm ? new Kernel(new wasm.Instance(module).exports as Exports) : null;
  }

  /** Signing pass over `piece` (at most PIECE bytes): the relaxed and the nofws output. */
  sign(piece: Buffer, state: number): { relaxed: Buffer; nofws: Buffer; state: number } {
    this.memory.set(piece, IN);
    const a = this.exports.sign(piece.length, state);
    const b = this.exports.g1.value;
    return {
      relaxed: this.memory.subarray(OUT1, OUT1 + a),
      nofws: this.memory.subarray(OUT2, OUT2 + b),
      state: this.exports.g0.value,
    };
  }

  /** Line ends to CRLF (`normalise`) and line-starting dots doubled (`stuff`), over at most PIECE bytes. */
  send(piece: Buffer, state: number, normalise: boolean, stuff: boolean): { out: Buffer; state: number } {
    this.memory.set(piece, IN);
    const n = this.exports.send(piece.length, state, normalise ? 1 : 0, stuff ? 1 : 0);
    return { out: this.memory.subarray(OUT1, OUT1 + n), state: this.exports.g0.value };
  }

  private scratch = Buffer.alloc(0);

  /**
   * send() over a chunk of any size. The output is a view valid until the next call: into the
   * instance's memory, or, for a chunk of more than one piece, into a buffer kept for reuse.
   */
  sendChunk(chunk: Buffer, state: number, normalise: boolean, stuff: boolean): { out: Buffer; state: number } {
    if (chunk.length <= PIECE) return this.send(chunk, state, normalise, stuff);
    if (this.scratch.length < chunk.length * 2 + 2) this.scratch = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let o = 0;
    for (let at = 0; at < chunk.length; at += PIECE) {
      const piece = this.send(chunk.subarray(at, at + PIECE), state, normalise, stuff);
      state = piece.state;
      o += piece.out.copy(this.scratch, o);
    }
    return { out: this.scratch.subarray(0, o), state };
  }
}
