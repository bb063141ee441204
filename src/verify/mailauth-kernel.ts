// The one instance of the body loops (src/canon/kernels.ts) that the verify bundle's stand-ins
// for mailauth's parts share (mailauth-relaxed.ts, mailauth-parser.ts): each hands on what a
// call wrote before it makes the next, so the views it gets are never overwritten while in
// use, and a message with many signatures does not reserve the loops' memory many times over.
import { Kernel } from '../canon/kernels.ts';

let shared: Kernel | null | undefined;

/** The shared instance, made on first use; null where WebAssembly is off. */
export function sharedKernel(): Kernel | null {
  if (shared === undefined) shared = Kernel.create();
  return shared;
}
