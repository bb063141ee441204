// Just enough of a WebAssembly binary encoder (https://webassembly.github.io/spec/core/binary/)
// to write the byte loops of tools/kernels/kernels-source.ts. Those loops run at native speed where
// the same loops in JavaScript cost 2-6 ns a byte. The module (about 7 KiB) is encoded from the
// code in this repository, so there is no toolchain and no binary from elsewhere; kernels.ts
// holds the encoded bytes and test/canon/kernels.test.ts checks them against this encoder.
//
// Code is written as nested arrays: numbers are opcodes or immediates already encoded,
// objects are structured control with named labels, resolved here to relative depths.

export type Code = ReadonlyArray<Item>;
type Item = number | Control | Code;

type Control =
  | { readonly kind: 'block' | 'loop'; readonly label: string; readonly body: Code }
  | { readonly kind: 'if'; readonly body: Code; readonly otherwise?: Code }
  | { readonly kind: 'br' | 'br_if'; readonly label: string };

export const I32 = 0x7f;
export const I64 = 0x7e;
export const V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Signed LEB128 of a 64-bit integer. */
export function sleb64(value: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asIntN(64, value);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

// The instructions the kernels use.
export const op = {
  get: (index: number): number[] => [0x20, ...uleb(index)],
  set: (index: number): number[] => [0x21, ...uleb(index)],
  globalGet: (index: number): number[] => [0x23, ...uleb(index)],
  globalSet: (index: number): number[] => [0x24, ...uleb(index)],
  const: (value: number): number[] => [0x41, ...sleb(value)],
  /** i32.load8_u and i32.store8/16 at the address on the stack, no offset. */
  load8: [0x2d, 0, 0],
  store8: [0x3a, 0, 0],
  store16: [0x3b, 1, 0],
  /** i64.load and i64.store, unaligned, no offset. */
  load64: [0x29, 0, 0],
  store64: [0x37, 0, 0],
  const64: (value: bigint): number[] => [0x42, ...sleb64(value)],
  eqz64: [0x50],
  sub64: [0x7d],
  and64: [0x83],
  or64: [0x84],
  xor64: [0x85],
  ctz64: [0x7a],
  /** i32.wrap_i64 */
  wrap: [0xa7],
  eqz: [0x45],
  eq: [0x46],
  ne: [0x47],
  ltU: [0x49],
  gtU: [0x4b],
  geU: [0x4f],
  add: [0x6a],
  sub: [0x6b],
  and: [0x71],
  or: [0x72],
  shl: [0x74],
  shrU: [0x76],
  mul: [0x6c],
  xor: [0x73],
  popcnt: [0x69],
  /** i32.load8_u at the address on the stack plus `offset`. */
  load8At: (offset: number): number[] => [0x2d, 0, ...uleb(offset)],
  // 128-bit SIMD (https://webassembly.github.io/spec/core/binary/instructions.html#vector-instructions),
  // unaligned, at the address on the stack plus `offset`.
  v128Load: (offset = 0): number[] => [0xfd, ...uleb(0x00), 0, ...uleb(offset)],
  /** Eight bytes into the low lanes, zero in the high ones. */
  v128Load64Zero: (offset = 0): number[] => [0xfd, ...uleb(0x5d), 0, ...uleb(offset)],
  v128Store: (offset = 0): number[] => [0xfd, ...uleb(0x0b), 0, ...uleb(offset)],
  v128Const: (lanes: readonly number[]): number[] => [0xfd, ...uleb(0x0c), ...bytes16(lanes)],
  /** The 16 lanes of the result, each picked from the 32 lanes of the two operands. */
  i8x16Shuffle: (lanes: readonly number[]): number[] => [0xfd, ...uleb(0x0d), ...bytes16(lanes)],
  /** Lanes of the first operand picked by the lanes of the second; an index above 15 gives 0. */
  i8x16Swizzle: [0xfd, ...uleb(0x0e)],
  i8x16Splat: [0xfd, ...uleb(0x0f)],
  i8x16Eq: [0xfd, ...uleb(0x23)],
  v128And: [0xfd, ...uleb(0x4e)],
  v128Or: [0xfd, ...uleb(0x50)],
  /** v128.bitselect(a, b, mask): a where mask bits are set, b elsewhere. */
  v128Bitselect: [0xfd, ...uleb(0x52)],
  v128AnyTrue: [0xfd, ...uleb(0x53)],
  /** One bit per lane, lane 0 lowest: its top bit. */
  i8x16Bitmask: [0xfd, ...uleb(0x64)],
  i8x16Add: [0xfd, ...uleb(0x6e)],
  block: (label: string, ...body: Item[]): Control => ({ kind: 'block', label, body }),
  loop: (label: string, ...body: Item[]): Control => ({ kind: 'loop', label, body }),
  /** if (condition on the stack) { body } else { otherwise }, with no result. */
  if: (body: Code, otherwise?: Code): Control => (otherwise ? { kind: 'if', body, otherwise } : { kind: 'if', body }),
  br: (label: string): Control => ({ kind: 'br', label }),
  brIf: (label: string): Control => ({ kind: 'br_if', label }),
} as const;

const EMPTY_BLOCK_TYPE = 0x40;

function bytes16(lanes: readonly number[]): number[] {
  if (lanes.length !== 16 || lanes.some((lane) => !Number.isInteger(lane) || lane < 0 || lane > 255)) throw new Error('16 byte lanes expected');
  return [...lanes];
}

function emit(code: Code, labels: Array<string | null>, out: number[]): void {
  for (const item of code) {
    if (typeof item === 'number') out.push(item);
    else if (isCode(item)) emit(item, labels, out);
    else emitControl(item, labels, out);
  }
}

function isCode(item: Control | Code): item is Code {
  return Array.isArray(item);
}

function emitControl(item: Control, labels: Array<string | null>, out: number[]): void {
  switch (item.kind) {
    case 'block':
    case 'loop':
      out.push(item.kind === 'block' ? 0x02 : 0x03, EMPTY_BLOCK_TYPE);
      emit(item.body, [item.label, ...labels], out);
      out.push(0x0b);
      return;
    case 'if':
      out.push(0x04, EMPTY_BLOCK_TYPE);
      emit(item.body, [null, ...labels], out);
      if (item.otherwise) {
        out.push(0x05);
        emit(item.otherwise, [null, ...labels], out);
      }
      out.push(0x0b);
      return;
    case 'br':
    case 'br_if': {
      const depth = labels.indexOf(item.label);
      if (depth === -1) throw new Error(`no label ${item.label}`);
      out.push(item.kind === 'br' ? 0x0c : 0x0d, ...uleb(depth));
      return;
    }
  }
}

export interface FunctionSpec {
  readonly name: string;
  readonly params: number;
  /** Extra i32 locals, numbered after the parameters. */
  readonly locals: number;
  /** i64 locals, numbered after those. */
  readonly locals64?: number;
  /** v128 locals, numbered after those. */
  readonly locals128?: number;
  /** One i32 result. */
  readonly body: Code;
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text, 'latin1')];
  return [...uleb(bytes.length), ...bytes];
}

/** Bytes the memory holds from the start, at `offset`. */
export interface DataSpec {
  readonly offset: number;
  readonly bytes: readonly number[];
}

/**
 * A module with one memory of `pages` 64 KiB pages (exported as "memory") holding `data`,
 * `globals` mutable i32 globals (exported as "g0", "g1"...), and the functions, all i32 -> i32,
 * exported by name.
 */
export function moduleBytes(pages: number, globals: number, functions: readonly FunctionSpec[], data: readonly DataSpec[] = []): Uint8Array {
  const types = functions.map((f) => [0x60, ...uleb(f.params), ...Array<number>(f.params).fill(I32), 1, I32]);
  const globalDefs = Array.from({ length: globals }, () => [I32, 1, ...op.const(0), 0x0b]);
  const exports = [
    [...name('memory'), 2, 0],
    ...functions.map((f, i) => [...name(f.name), 0, ...uleb(i)]),
    ...Array.from({ length: globals }, (_, i) => [...name(`g${i}`), 3, ...uleb(i)]),
  ];
  const bodies = functions.map((f) => {
    const code: number[] = [];
    emit(f.body, [], code);
    const groups = [
      ...(f.locals > 0 ? [[...uleb(f.locals), I32]] : []),
      ...(f.locals64 ? [[...uleb(f.locals64), I64]] : []),
      ...(f.locals128 ? [[...uleb(f.locals128), V128]] : []),
    ];
    const content = [...vector(groups), ...code, 0x0b];
    return [...uleb(content.length), ...content];
  });
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vector(types)),
    ...section(3, vector(functions.map((_, i) => uleb(i)))),
    ...section(5, vector([[0, ...uleb(pages)]])),
    ...section(6, vector(globalDefs)),
    ...section(7, vector(exports)),
    ...section(10, vector(bodies)),
    ...(data.length > 0 ? section(11, vector(data.map((d) => [0, ...op.const(d.offset), 0x0b, ...uleb(d.bytes.length), ...d.bytes]))) : []),
  ]);
}
