// src/canon/kernels.ts instantiates KERNELS_WASM, the module that kernels-source.ts encodes:
// the two must not drift apart. After a change to the loops, set KERNELS_WASM to the value
// this test prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNELS_WASM } from '../../src/canon/kernels.ts';
import { kernelModuleBytes } from '../../tools/kernels/kernels-source.ts';

test('KERNELS_WASM is what kernels-source.ts encodes', () => {
  const current = Buffer.from(kernelModuleBytes()).toString('base64');
  assert.equal(KERNELS_WASM, current, 'run `npm run kernels` to write the new loops into src/canon/kernels.ts');
});
