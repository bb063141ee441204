// Builds dist/qmail-remote.cjs: the qmail-remote path as one CommonJS file. qmail-send starts
// one process per delivery, so start-up is the cost that matters:
// - one file to read and compile instead of ~30, and Node built-ins loaded with require(),
//   whose lazy parts stay lazy (an ES import of node:http compiles Node's bundled undici);
// - nodemailer's URL fetcher, which loads node:http, node:https and node:zlib and which a
//   delivery never calls, is replaced by a stub that refuses;
// - nodemailer's node:tls is loaded on first use, i.e. only when a server offers STARTTLS
//   (~13 ms otherwise spent on every delivery);
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

const lazyTls = {
  name: 'lazy-node-tls',
  setup(b) {
    b.onResolve({ filter: /^node:tls$/ }, (args) =>
      args.importer.includes(`${'/'}nodemailer${'/'}`) ? { path: 'lazy-tls', namespace: 'stub' } : undefined,
    );
  },
};

const STUBS = {
  'nodemailer-fetch': "export default function nmfetch() { throw new Error('URL content is not supported by qmail-remote'); }",
  // Every property read goes to the real module, loaded the first time one is made.
  'lazy-tls': "let tls; module.exports = new Proxy({}, { get: (_, key) => (tls ??= require('node:tls'))[key] });",
};

const result = await build({
  entryPoints: [`${root}src/delivery/qmail-remote.ts`],
  outfile: `${root}dist/qmail-remote.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  plugins: [stubFetch, lazyTls],
  external: ['winston', 'winston-transport'],
  logLevel: 'warning',
  legalComments: 'none',
  metafile: true,
});
// What went into the bundle, for test/delivery/bundle.test.ts: the delivery path and nothing else.
writeFileSync(`${root}dist/qmail-remote.inputs.json`, JSON.stringify(Object.keys(result.metafile.inputs).sort(), null, 1));
