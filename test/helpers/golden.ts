// Golden files pin exact bytes. A missing golden file is a failure, never a silent pass: it is
// written only when asked for (UPDATE_GOLDEN=1 npm test), and then reviewed and committed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export function expectGolden(golden: URL, bytes: Buffer): void {
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, bytes);
  assert.ok(existsSync(golden), `no golden file ${golden.pathname}: run with UPDATE_GOLDEN=1 to write it, then review it`);
  assert.ok(bytes.equals(readFileSync(golden)), `the bytes match the golden file ${golden.pathname}`);
}
