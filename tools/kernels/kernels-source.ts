// The byte loops of src/canon/kernels.ts, written with the encoder of tools/kernels/wasm.ts. This
// is their source: kernels.ts holds the module these functions encode (KERNELS_WASM), so that
// a delivery neither loads the encoder nor runs it (~3 ms of start-up), and
// test/canon/kernels.test.ts fails when the two differ; `npm run kernels` (update.ts) brings them together.
import { moduleBytes, op, type Code } from './wasm.ts';
import { AFTER_CR, OUT1, OUT2, IN, PAGES, SPACE, TABLES } from '../../src/canon/kernels.ts';

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

// The 16-byte steps. Text where white space or line ends come every few bytes (short lines,
// runs of spaces and tabs) stops the eight-byte steps below at nearly every byte; these take
// sixteen bytes at once whatever they hold, and write each group of four lanes through a
// shuffle table: the lanes kept, with a byte put in before some (the CR of a CRLF, the second
// '.' of a stuffed one). A block holding a CR goes to the byte loop, which knows CR's cases.
const splat = (byte: number): Code => op.v128Const(Array<number>(16).fill(byte));
const lanesEqual = (vector: number, byte: number): Code => [get(vector), ...splat(byte), op.i8x16Eq];
/** Lane index `NONE` in a shuffle gives 0: any index above 15 does. */
const NONE = 0x80;
/** The tables' places in memory (kernels.ts puts TABLES after the outputs). */
const SIGN_SHUFFLES = TABLES;
const SIGN_CRS = SIGN_SHUFFLES + 256 * 8;
const SEND_SHUFFLES = SIGN_CRS + 256 * 8;
const SEND_PREFIXES = SEND_SHUFFLES + 16 * 8;

/**
 * A table of `count` entries of eight bytes each, and a second table beside it: for each lane
 * of a group of four, `bytesOf(entry, lane)` gives what the group writes for it, each byte as
 * the lane the shuffle takes it from and the byte of the second table at its place. What is
 * past a group's length is written, and overwritten by the next group.
 */
function groupTables(count: number, bytesOf: (entry: number, lane: number) => Array<readonly [number, number]>): { shuffles: number[]; seconds: number[] } {
  const shuffles: number[] = [];
  const seconds: number[] = [];
  for (let entry = 0; entry < count; entry += 1) {
    const bytes = [0, 1, 2, 3].flatMap((lane) => bytesOf(entry, lane));
    shuffles.push(...bytes.map(([from]) => from), ...Array<number>(8 - bytes.length).fill(NONE));
    seconds.push(...bytes.map(([, second]) => second), ...Array<number>(8 - bytes.length).fill(0));
  }
  return { shuffles, seconds };
}

/**
 * For the signing step, by the index keep | lf << 4 (bit k: lane k is kept, lane k is an LF):
 * the kept lanes in order, and a CR (OR-ed in from the second table) before each LF.
 */
const signTables = (): { shuffles: number[]; seconds: number[] } =>
  groupTables(256, (index, lane) => {
    if (((index >> lane) & 1) === 0) return [];
    return ((index >> (lane + 4)) & 1) === 1 ? [[NONE, CR], [lane, 0]] : [[lane, 0]];
  });

/**
 * For the sending step, by the prefix mask (bit k: a byte goes before lane k): each lane, twice
 * where it has a prefix, with 0xff at the prefix's place in the second table. A prefixed LF
 * becomes the CR of a CRLF there (LF + 3); a prefixed '.' stays a '.'.
 */
const sendTables = (): { shuffles: number[]; seconds: number[] } =>
  groupTables(16, (mask, lane) => (((mask >> lane) & 1) === 1 ? [[lane, 0xff], [lane, 0]] : [[lane, 0]]));

// sign(n, state) -> relaxed length at OUT1; g0 = new state, g1 = nofws length at OUT2.
const S = { n: 0, state: 1, i: 2, a: 3, b: 4, x: 5, sp: 6, cr: 7, run: 8, wsm: 9, lfm: 10, keep: 11, t: 12, w: 13, m: 14, v: 15, next: 16, ws: 17, tr: 18 };
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
/**
 * Group `g` (lanes 4g to 4g+3) of the vector in local `vector` written at local `out`: the
 * lanes whose bit is set in local `keep`, a CR before each LF (S.lfm). The table index is the
 * group's keep bits with its LF bits above them (S.t = index × 8); an LF is always kept, so
 * the group's length is the index's bit count.
 */
const signGroup = (out: number, vector: number, keep: number, g: number): Code => [
  get(keep), k(4 * g), op.shrU, k(15), op.and,
  get(S.lfm), k(4 * g), op.shrU, k(15), op.and, k(4), op.shl, op.or,
  k(3), op.shl, set(S.t),
  get(out),
  get(vector), get(S.t), op.v128Load64Zero(SIGN_SHUFFLES), ...(g > 0 ? [...splat(4 * g), op.i8x16Add] : []), op.i8x16Swizzle,
  get(S.t), op.v128Load64Zero(SIGN_CRS), op.v128Or,
  op.v128Store(),
  get(out), get(S.t), op.popcnt, op.add, set(out),
];
const fourGroups = (group: (g: number) => Code): Code => [0, 1, 2, 3].map(group);
/**
 * `body` with local `v` holding the sixteen bytes at local `i`, when `ahead` bytes from there
 * are in the input (`n`) and none of the sixteen is a CR.
 */
const sixteenWithoutCr = (i: number, n: number, v: number, ahead: number, body: Code): Code => [
  get(i), k(ahead), op.add, get(n), op.gtU, op.eqz,
  op.if([get(i), op.v128Load(), set(v), ...lanesEqual(v, CR), op.v128AnyTrue, op.eqz, op.if(body)]),
];
/**
 * Sixteen bytes at once, when the byte after them is there too and none of them is a CR.
 * Relaxed keeps a white space only when it ends its run and no line end follows, as one SP:
 * the same bytes as writing the first of each run, and it needs to look only at the next byte.
 * So no space is pending after the block; one pending from before is written first, unless the
 * block starts with white space (the same run) or a line end.
 */
const signSixteen: Code = sixteenWithoutCr(S.i, S.n, S.v, 17, [
  get(S.i), op.v128Load(1), set(S.next),
  ...lanesEqual(S.v, SP), ...lanesEqual(S.v, HTAB), op.v128Or, set(S.ws),
  get(S.ws), op.i8x16Bitmask, set(S.wsm),
  ...lanesEqual(S.v, LF), op.i8x16Bitmask, set(S.lfm),
  get(S.sp), op.if([get(S.wsm), get(S.lfm), op.or, k(1), op.and, op.eqz, op.if(put(S.a, k(SP))), k(0), set(S.sp)]),
  // A block without white space or LF (a base64 line, say) is written as it is.
  get(S.wsm), get(S.lfm), op.or, op.eqz,
  op.if([get(S.a), get(S.v), op.v128Store(), ...bump(S.a, 16), get(S.b), get(S.v), op.v128Store(), ...bump(S.b, 16), ...bump(S.i, 16), op.br('next')]),
  get(S.ws),
  ...lanesEqual(S.next, SP), ...lanesEqual(S.next, HTAB), op.v128Or, ...lanesEqual(S.next, LF), op.v128Or, ...lanesEqual(S.next, CR), op.v128Or,
  op.v128And, op.i8x16Bitmask, k(0xffff), op.xor, set(S.keep),
  ...splat(SP), get(S.v), get(S.ws), op.v128Bitselect, set(S.tr),
  ...fourGroups((g) => signGroup(S.a, S.tr, S.keep, g)),
  get(S.wsm), k(0xffff), op.xor, set(S.keep),
  ...fourGroups((g) => signGroup(S.b, S.v, S.keep, g)),
  ...bump(S.i, 16),
  op.br('next'),
]);
const copyByte: Code = [...flushSpace, ...put(S.a, get(S.x)), ...put(S.b, get(S.x)), op.br('next')];
const sign: Code = [
  k(OUT1), set(S.a), k(OUT2), set(S.b), get(S.state), k(SPACE), op.and, set(S.sp),
  ...skipSplitLf(S.state, S.n, S.i),
  op.block('done', op.loop('next',
    get(S.i), get(S.n), op.geU, op.brIf('done'),
    signSixteen,
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
const T = { n: 0, state: 1, normalise: 2, stuff: 3, i: 4, o: 5, x: 6, bol: 7, cr: 8, run: 9, lfm: 10, pm: 11, t: 12, w: 13, m: 14, v: 15, u: 16 };
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
/** Group `g` of T.v written at T.o: every lane, a byte before those with their bit in T.pm. */
const sendGroup = (g: number): Code => [
  get(T.pm), k(4 * g), op.shrU, k(15), op.and, k(3), op.shl, set(T.t),
  get(T.o),
  get(T.v), get(T.t), op.v128Load64Zero(SEND_SHUFFLES), ...(g > 0 ? [...splat(4 * g), op.i8x16Add] : []), op.i8x16Swizzle, set(T.u),
  get(T.u), ...lanesEqual(T.u, LF), get(T.t), op.v128Load64Zero(SEND_PREFIXES), op.v128And, ...splat(CR - LF), op.v128And, op.i8x16Add,
  op.v128Store(),
  get(T.o), get(T.t), op.popcnt, k(4), op.add, op.add, set(T.o),
];
/**
 * Sixteen bytes at once when none is a CR: a CR before each LF (when normalising), a second
 * '.' before each that starts a line (when stuffing). Lane 0 starts a line if the last byte
 * before the block ended one (T.bol); the others if the lane before is an LF.
 */
const sendSixteen: Code = sixteenWithoutCr(T.i, T.n, T.v, 16, [
  ...lanesEqual(T.v, LF), op.i8x16Bitmask, set(T.lfm),
  get(T.v), get(T.bol), k(LF), op.mul, op.i8x16Splat, op.i8x16Shuffle([16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
  ...splat(LF), op.i8x16Eq,
  ...lanesEqual(T.v, DOT), op.v128And, op.i8x16Bitmask, k(0), get(T.stuff), op.sub, op.and,
  get(T.lfm), k(0), get(T.normalise), op.sub, op.and, op.or, set(T.pm),
  // Most blocks of most text have nothing to put in: the sixteen bytes as they are.
  get(T.pm), op.if(fourGroups(sendGroup), [get(T.o), get(T.v), op.v128Store(), ...bump(T.o, 16)]),
  get(T.lfm), k(15), op.shrU, set(T.bol),
  ...bump(T.i, 16),
  op.br('next'),
]);
const send: Code = [
  k(OUT1), set(T.o), get(T.state), k(2), op.shrU, k(1), op.and, set(T.bol),
  ...skipSplitLf(T.state, T.n, T.i),
  op.block('done', op.loop('next',
    get(T.i), get(T.n), op.geU, op.brIf('done'),
    sendSixteen,
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
  const signing = signTables();
  const sending = sendTables();
  return moduleBytes(
    PAGES,
    2,
    [
      { name: 'sign', params: 2, locals: 11, locals64: 2, locals128: 4, body: sign },
      { name: 'send', params: 4, locals: 9, locals64: 2, locals128: 2, body: send },
    ],
    [{ offset: TABLES, bytes: [...signing.shuffles, ...signing.seconds, ...sending.shuffles, ...sending.seconds] }],
  );
}
