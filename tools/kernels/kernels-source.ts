// The byte loops of src/canon/kernels.ts, written with the encoder of tools/kernels/wasm.ts. This
// is their source: kernels.ts holds the module these functions encode (KERNELS_WASM), so that
// a delivery neither loads the encoder nor runs it (~3 ms of start-up), and
// test/canon/kernels.test.ts fails when the two differ; `npm run kernels` (update.ts) brings them together.
import { moduleBytes, op, type Code } from './wasm.ts';
import { AFTER_CR, OUT1, OUT2, IN, PAGES, SPACE } from '../../src/canon/kernels.ts';

const LF = 10;
const CR = 13;
const SP = 32;
const HTAB = 9;
const DOT = 46;
const CRLF16 = CR | (LF << 8);

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

const ONES = 0x0101010101010101n;
const HIGHS = 0x8080808080808080n;

// sign(n, state) -> relaxed length at OUT1; g0 = new state, g1 = nofws length at OUT2.
const S = { n: 0, state: 1, i: 2, a: 3, b: 4, x: 5, sp: 6, cr: 7, run: 8, w: 9, m: 10 };
/**
 * The bytes of the i64 `w` below 0x21 (white space, line ends, controls) flagged in their top
 * bit: (w - 0x21…21) & ~w & 0x80…80. A borrow can flag a byte above a flagged one, never below,
 * so the lowest flag is exact: ctz / 8 is the number of bytes before the first such byte.
 */
const lowBytes: Code = [get(S.w), op.const64(ONES * 0x21n), op.sub64, get(S.w), op.const64(-1n), op.xor64, op.and64, op.const64(HIGHS), op.and64];
// Up to eight bytes at a time until the next white space or line end: whole words, whole
// base64 lines. All eight are stored, the outputs advance by the bytes that belong.
const eightPrintable: Code = [
  get(S.i), k(8), op.add, get(S.n), op.gtU, op.eqz,
  op.if([
    get(S.i), op.load64, set(S.w),
    ...lowBytes, set(S.m),
    get(S.m), op.eqz64, op.if([k(8), set(S.run)], [get(S.m), op.ctz64, op.wrap, k(3), op.shrU, set(S.run)]),
    get(S.run),
    op.if([
      ...flushSpaceFn(),
      get(S.a), get(S.w), op.store64, get(S.a), get(S.run), op.add, set(S.a),
      get(S.b), get(S.w), op.store64, get(S.b), get(S.run), op.add, set(S.b),
      get(S.i), get(S.run), op.add, set(S.i),
      get(S.run), k(8), op.eq, op.brIf('next'),
    ]),
  ]),
];
function flushSpaceFn(): Code {
  return [get(S.sp), op.if([...put(S.a, k(SP)), k(0), set(S.sp)])];
}
const flushSpace: Code = flushSpaceFn();
const copyByte: Code = [...flushSpace, ...put(S.a, get(S.x)), ...put(S.b, get(S.x)), op.br('next')];
const sign: Code = [
  k(OUT1), set(S.a), k(OUT2), set(S.b), get(S.state), k(SPACE), op.and, set(S.sp),
  ...skipSplitLf(S.state, S.n, S.i),
  op.block('done', op.loop('next',
    get(S.i), get(S.n), op.geU, op.brIf('done'),
    eightPrintable,
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
const T = { n: 0, state: 1, normalise: 2, stuff: 3, i: 4, o: 5, x: 6, bol: 7, cr: 8, run: 9, w: 10, m: 11 };
/** Non-zero iff a byte of the i64 `w` is `byte`: (v - 0x01…01) & ~v & 0x80…80, v = w ^ byte…byte. */
const hasByte = (byte: number): Code => [
  get(T.w), op.const64(ONES * BigInt(byte)), op.xor64, op.const64(ONES), op.sub64,
  get(T.w), op.const64(ONES * BigInt(byte)), op.xor64, op.const64(-1n), op.xor64,
  op.and64, op.const64(HIGHS), op.and64,
];
/** The LF, CR and '.' bytes of the i64 `w` flagged, the lowest flag exact (see lowBytes). */
const specialBytes = (): Code => [...hasByte(LF), ...hasByte(CR), op.or64, ...hasByte(DOT), op.or64];
// Up to eight bytes at a time until the next LF, CR or '.': most of a text message.
const eightPlain: Code = [
  get(T.i), k(8), op.add, get(T.n), op.gtU, op.eqz,
  op.if([
    get(T.i), op.load64, set(T.w),
    ...specialBytes(), set(T.m),
    get(T.m), op.eqz64, op.if([k(8), set(T.run)], [get(T.m), op.ctz64, op.wrap, k(3), op.shrU, set(T.run)]),
    get(T.run),
    op.if([
      get(T.o), get(T.w), op.store64, get(T.o), get(T.run), op.add, set(T.o),
      get(T.i), get(T.run), op.add, set(T.i), k(0), set(T.bol),
      get(T.run), k(8), op.eq, op.brIf('next'),
    ]),
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

/** The module kernels.ts instantiates. */
export function kernelModuleBytes(): Uint8Array {
  return moduleBytes(PAGES, 2, [
    { name: 'sign', params: 2, locals: 7, locals64: 2, body: sign },
    { name: 'send', params: 4, locals: 6, locals64: 2, body: send },
  ]);
}
