// Whether the Node that a shim names runs the delivery bundle from the code cache the build
// trained (bin/run-bundle.cjs, docs/performance.md "Start-up"). A Node other than the one that
// built the package cannot: it compiles the bundle at every delivery instead, which works and
// costs CPU. install says so, once, where the administrator chooses the Node.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The line to say when `node` cannot use the code cache of the package at `packageRoot`, else null. */
export function codeCacheNote(node: string, packageRoot: string): string | null {
  const loader = join(packageRoot, 'bin', 'run-bundle.cjs');
  const bundle = join(packageRoot, 'dist', 'qmail-remote.cjs');
  const script = `process.stdout.write(String(require(${JSON.stringify(loader)}).compile(${JSON.stringify(bundle)}).usedCache))`;
  // As the shim starts it: qmail-send's environment has no NODE_OPTIONS, whose V8 flags would
  // make V8 refuse the cache here and not there.
  const asked = spawnSync(node, ['-e', script], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  if (asked.status === 0 && asked.stdout === 'true') return null;
  return `note: ${node} cannot use the code this package was compiled with (dist/*.v8cache, made by the Node that built it): every delivery compiles it instead, about 7 % more CPU; naming the Node the package was built with (--node) keeps it`;
}
