// `npm run kernels`: encodes the byte loops of kernels-source.ts and writes the module into
// src/canon/kernels.ts (KERNELS_WASM), which is what ships and runs. Run it after changing a
// loop; test/canon/kernels.test.ts fails while the two differ. docs/hacking.md says what else
// a canonicalization change must touch.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kernelModuleBytes } from './kernels-source.ts';

const target = fileURLToPath(new URL('../../src/canon/kernels.ts', import.meta.url));
const encoded = Buffer.from(kernelModuleBytes()).toString('base64');
const source = readFileSync(target, 'utf8');
const updated = source.replace(/(export const KERNELS_WASM =\n {2}')[A-Za-z0-9+/=]*(';)/, `$1${encoded}$2`);
if (updated === source && !source.includes(encoded)) throw new Error('KERNELS_WASM not found in src/canon/kernels.ts');
writeFileSync(target, updated);
process.stdout.write(updated === source ? 'src/canon/kernels.ts already holds these loops\n' : 'src/canon/kernels.ts: KERNELS_WASM updated\n');
