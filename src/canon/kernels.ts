// The per-byte work on a message body, as WebAssembly loops (their source and encoder are in
// tools/kernels/; `npm run kernels` writes the encoded module here):
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

/**
 * The largest input one call takes; callers cut larger chunks into pieces. It is also the size
 * of the chunks src/mail/message.ts reads, so that one chunk is one call. 256 KiB: a quarter
 * of the socket writes and event-loop turns of 64 KiB chunks, for ~20 % less CPU on a 20 MiB
 * message, and still a few MiB of memory in all.
 */
export const PIECE = 0x40000;
export const IN = 0;
// Each output is at most 2 × PIECE + 2 bytes.
export const OUT1 = PIECE;
export const OUT2 = OUT1 + 2 * PIECE + 64;
export const PAGES = Math.ceil((OUT2 + 2 * PIECE + 64) / 0x10000);

// State bits passed in and returned in global g0.
export const SPACE = 1; // sign: a white space run not yet written
export const AFTER_CR = 2; // a CR ended the last input: a LF starting the next is part of it
export const LINE_START = 4; // send: the next byte starts a line

/** kernelModuleBytes() of kernels-source.ts, base64; test/canon/kernels.test.ts keeps it current. */
export const KERNELS_WASM =
  'AGFzbQEAAAABDwJgAn9/AX9gBH9/f38BfwMDAgABBQMBABUGCwJ/AUEAC38BQQALByIFBm1lbW9yeQIABHNpZ24AAARzZW5kAAECZzADAAJnMQMBCpwIAvUDAgd/An5BgIAQIQNBwIAwIQQgAUEBcSEGIAFBAnEEQCAABEBBAC0AAEEKRgRAQQEhAgsLCwJAA0AgAiAATw0BIAJBCGogAEtFBEAgAikAACEJIAlCocKEiZKkyJAhfSAJQn+Fg0KAgYKEiJCgwIB/gyEKIApQBEBBCCEIBSAKeqdBA3YhCAsgCARAIAYEQCADQSA6AAAgA0EBaiEDQQAhBgsgAyAJNwAAIAMgCGohAyAEIAk3AAAgBCAIaiEEIAIgCGohAiAIQQhGDQILCyACLQAAIQUgAkEBaiECIAVBIEsEQCAGBEAgA0EgOgAAIANBAWohA0EAIQYLIAMgBToAACADQQFqIQMgBCAFOgAAIARBAWohBAwBCyAFQSBGIAVBCUZyBEBBASEGDAELIAVBCkYEQCADQY0UOwEAIANBAmohAyAEQY0UOwEAIARBAmohBEEAIQYMAQsgBUENRgRAIANBjRQ7AQAgA0ECaiEDIARBjRQ7AQAgBEECaiEEQQAhBiACIABJBEAgAi0AAEEKRgRAIAJBAWohAgsFQQEhBwsMAQsgBgRAIANBIDoAACADQQFqIQNBACEGCyADIAU6AAAgA0EBaiEDIAQgBToAACAEQQFqIQQMAAsLIAYgB0EBdHIkACAEQcCAMGskASADQYCAEGsLogQCBn8CfkGAgBAhBSABQQJ2QQFxIQcgAUECcQRAIAAEQEEALQAAQQpGBEBBASEECwsLAkADQCAEIABPDQEgBEEIaiAAS0UEQCAEKQAAIQogCkKKlKjQoMGChQqFQoGChIiQoMCAAX0gCkKKlKjQoMGChQqFQn+Fg0KAgYKEiJCgwIB/gyAKQo2atOjQocOGDYVCgYKEiJCgwIABfSAKQo2atOjQocOGDYVCf4WDQoCBgoSIkKDAgH+DhCAKQq7cuPHixYuXLoVCgYKEiJCgwIABfSAKQq7cuPHixYuXLoVCf4WDQoCBgoSIkKDAgH+DhCELIAtQBEBBCCEJBSALeqdBA3YhCQsgCQRAIAUgCjcAACAFIAlqIQUgBCAJaiEEQQAhByAJQQhGDQILCyAELQAAIQYgBEEBaiEEIAZBLksEQCAFIAY6AAAgBUEBaiEFQQAhBwwBCyAGQS5GBEAgByADcQRAIAVBLjoAACAFQQFqIQULIAUgBjoAACAFQQFqIQVBACEHDAELIAZBCkYEQCACBEAgBUGNFDsBACAFQQJqIQUFIAVBCjoAACAFQQFqIQULQQEhBwwBCyAGQQ1GIAJxBEAgBUGNFDsBACAFQQJqIQVBASEHIAQgAEkEQCAELQAAQQpGBEAgBEEBaiEECwVBASEICwwBCyAFIAY6AAAgBUEBaiEFQQAhBwwACwsgB0ECdCAIQQF0ciQAIAVBgIAQaws=';

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
    compiled = new wasm.Module(Buffer.from(KERNELS_WASM, 'base64'));
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
