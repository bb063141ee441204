// Builds dist/qmail-remote.cjs: the qmail-remote path as one CommonJS file. qmail-send starts
// one process per delivery, so start-up is the cost that matters:
// - one file to read and compile instead of ~30, and Node built-ins loaded with require(),
//   whose lazy parts stay lazy (an ES import of node:http compiles Node's bundled undici);
// - nodemailer's URL fetcher, which loads node:http, node:https and node:zlib and which a
//   delivery never calls, is replaced by a stub that refuses;
// - nodemailer's node:tls is loaded on first use, i.e. only when a server offers STARTTLS
//   (~13 ms otherwise spent on every delivery), and its other built-ins stay lazy (below);
// - winston and winston-transport stay in node_modules, required only when logging is on
//   (src/delivery/log.ts): bundled, they and their dependencies were two thirds of the file,
//   which every delivery reads and pre-parses even though it never runs them.
// The tests run bin/qmail-remote, and so this bundle, STARTTLS included.
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

const stubFetch = {
  name: 'stub-nodemailer-fetch',
  setup(b) {
    b.onResolve({ filter: /\/fetch\/index\.js$/ }, (args) =>
      args.importer.includes(`${'/'}nodemailer${'/'}`) ? { path: 'nodemailer-fetch', namespace: 'stub' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({ contents: STUBS[args.path], loader: 'js' }));
  },
};

// nodemailer imports these built-ins as default imports, which esbuild wraps in __toESM: that
// copies every export, and the copy runs node:util's and node:crypto's lazy getters (util's
// pulls in worker_threads, parseArgs and the assert diff: ~40 internal modules, ~5 ms). A
// proxy that loads the module on the first property read leaves them lazy; node:tls is not
// loaded at all unless a server offers STARTTLS.
const LAZY_BUILTINS = ['tls', 'util', 'dns', 'os', 'crypto', 'net'];

const lazyBuiltins = {
  name: 'lazy-node-builtins',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^node:(${LAZY_BUILTINS.join('|')})$`) }, (args) =>
      args.importer.includes(`${'/'}nodemailer${'/'}`) ? { path: `lazy-${args.path.slice(5)}`, namespace: 'stub' } : undefined,
    );
  },
};

const STUBS = {
  'nodemailer-fetch': "export default function nmfetch() { throw new Error('URL content is not supported by qmail-remote'); }",
  // Every property read goes to the real module, loaded the first time one is made.
  ...Object.fromEntries(
    LAZY_BUILTINS.map((name) => [
      `lazy-${name}`,
      `let real; module.exports = new Proxy({}, { get: (_, key) => (real ??= require('node:${name}'))[key] });`,
    ]),
  ),
};

const result = await build({
  entryPoints: [`${root}src/delivery/qmail-remote.ts`],
  outfile: `${root}dist/qmail-remote.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  plugins: [stubFetch, lazyBuiltins],
  external: ['winston', 'winston-transport'],
  logLevel: 'warning',
  legalComments: 'none',
  metafile: true,
});
// What went into the bundle, for test/delivery/bundle.test.ts: the delivery path and nothing else.
writeFileSync(`${root}dist/qmail-remote.inputs.json`, JSON.stringify(Object.keys(result.metafile.inputs).sort(), null, 1));
