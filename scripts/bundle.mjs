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
//   which every delivery reads and pre-parses even though it never runs them;
// - mailauth stays in node_modules too: a delivery loads its MTA-STS code, and only that, when a
//   policy must be fetched (src/delivery/tls/mta-sts.ts); a cached or absent policy needs none.
// The tests run bin/qmail-remote, and so this bundle, STARTTLS included.
import { build } from 'esbuild';
import { parse } from 'acorn';
import { readFileSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
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

// What every bundle here is: one CommonJS file for the Node that runs it, with esbuild's list
// of inputs kept for the tests that check what went in.
// import.meta.url is the bundle's own file (src/common/load-later.ts resolves from it).
const BUNDLE = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  logLevel: 'warning',
  legalComments: 'none',
  metafile: true,
  define: { 'import.meta.url': '__filename' },
};
const inputsOf = (output) => Object.keys(output.metafile.inputs).sort();

const result = await build({
  entryPoints: [`${root}src/delivery/qmail-remote.ts`],
  outfile: `${root}dist/qmail-remote.cjs`,
  ...BUNDLE,
  plugins: [stubFetch, lazyBuiltins],
  external: ['winston', 'winston-transport', 'mailauth', 'mailauth/*'],
});
// What went into the bundle, for test/delivery/bundle.test.ts: the delivery path and nothing else.
writeFileSync(`${root}dist/qmail-remote.inputs.json`, JSON.stringify(inputsOf(result), null, 1));

// dist/qmail-dkverify.cjs: the verify side as one CommonJS file, for the same reason (qmail-smtpd
// starts one per incoming message). A bundled module runs only when first required, so the
// pass-through pays for reading the file but runs nothing of mailauth. What a verification
// never calls is kept out of the way:
// - mailauth's tools.js loads node:https (BIMI and MTA-STS fetches), loaded on first use, and
//   tldts (the public suffix list), for a mark no verdict reads: a stand-in takes its place
//   (below);
// - libmime loads iconv-lite and encoding-japanese for charset conversion, and its table of
//   file types for names of attachments, none of which mailauth's verifiers ask of it (they
//   fold lines and parse Content-Type): loaded on first use.
// Each by the name it is required by from outside its package (a file of a package by its path
// there, which also catches the package's own relative require of it), with the packages that
// depend on it, from ours down: it is resolved from the last of them, so the file finds it
// whether npm hoisted it or nested it.
const LAZY_PACKAGES = {
  'iconv-lite': ['mailauth', 'libmime'],
  'encoding-japanese': ['mailauth', 'libmime'],
  'libmime/lib/mimetypes.js': ['mailauth'],
};
const VERIFY_LAZY_BUILTINS = ['https', 'http', 'zlib', 'tls'];

/** What `path` required from `resolveDir` is called from outside its package: 'pkg/dir/file.js'. */
function packagePath(path, resolveDir) {
  if (!path.startsWith('.')) return path;
  const absolute = join(resolveDir, path);
  const inside = absolute.slice(absolute.lastIndexOf(`${'/'}node_modules${'/'}`) + '/node_modules/'.length);
  return extname(inside) === '' ? `${inside}.js` : inside;
}

const lazyVerifyModules = {
  name: 'lazy-verify-modules',
  setup(b) {
    const builtins = new RegExp(`^node:(${VERIFY_LAZY_BUILTINS.join('|')})$`);
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.namespace === 'lazy' || !args.importer.includes(`${'/'}node_modules${'/'}`)) return undefined;
      const name = packagePath(args.path, args.resolveDir);
      return builtins.test(name) || Object.hasOwn(LAZY_PACKAGES, name) ? { path: name, namespace: 'lazy' } : undefined;
    });
    // Every property read goes to the real module, loaded the first time one is made. The
    // packages are kept out of the file, required from node_modules: bundled, their tables
    // (the public suffix list, the charset maps) were most of the bytes every verification
    // reads and pre-parses without ever running them.
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: args.path.startsWith('node:') ? lazyModule(`require(${JSON.stringify(args.path)})`) : lazyModule(
        `LAZY_PACKAGES.reduce((from, name) => require('node:module').createRequire(from.resolve(name + '/package.json')), require)(${JSON.stringify(args.path)})`
          .replace('LAZY_PACKAGES', JSON.stringify(LAZY_PACKAGES[args.path])),
      ),
      loader: 'js',
    }));
  },
};
// Modules that mailauth's files get in place of a package or built-in, at less cost; each file
// says why its answers are the ones mailauth needs: joi, which mailauth's verifiers use for two
// checks only; node:net, whose isIPv6 compiles a long regular expression on first use; tldts,
// whose table is built for a mark that no verdict reads.
const STAND_INS = {
  joi: 'src/verify/mailauth-joi.ts',
  'node:net': 'src/verify/mailauth-net.ts',
  net: 'src/verify/mailauth-net.ts',
  tldts: 'src/verify/mailauth-tldts.ts',
};
// And two modules of mailauth's own, for loops over every byte of the body: its relaxed
// canonicalization, which its DKIM verifier gets from lib/dkim/body/index.js, and the parser the
// verifier extends, whose scan for bare LFs the WebAssembly loops do instead.
const RELAXED_IMPORTER = `${'/'}node_modules${'/'}mailauth${'/'}lib${'/'}dkim${'/'}body${'/'}index.js`;
const PARSER_IMPORTER = `${'/'}node_modules${'/'}mailauth${'/'}lib${'/'}dkim${'/'}dkim-verifier.js`;
const mailauthStandIns = {
  name: 'mailauth-stand-ins',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${Object.keys(STAND_INS).join('|')})$`) }, (args) =>
      args.importer.includes(`${'/'}node_modules${'/'}mailauth${'/'}`) ? { path: `${root}${STAND_INS[args.path]}` } : undefined,
    );
    b.onResolve({ filter: /^\.\/relaxed$/ }, (args) =>
      args.importer.endsWith(RELAXED_IMPORTER) ? { path: `${root}src/verify/mailauth-relaxed.ts` } : undefined,
    );
    b.onResolve({ filter: /^\.\/message-parser$/ }, (args) =>
      args.importer.endsWith(PARSER_IMPORTER) ? { path: `${root}src/verify/mailauth-parser.ts` } : undefined,
    );
  },
};
const lazyModule = (load) => `let real; module.exports = new Proxy({}, { get: (_, key) => (real ??= ${load})[key] });`;

// mailauth and what it needs are most of the verify side's bytes: they go in a file of their
// own, dist/qmail-dkverify-mailauth.cjs, which the pass-through (DKVERIFY unset) never reads.
// Its exports are getters, so a check that is not run (SPF and DMARC without a client address)
// is not loaded either.
const MAILAUTH_PARTS = {
  dkimVerify: 'mailauth/lib/dkim/verify.js',
  spf: 'mailauth/lib/spf/index.js',
  arc: 'mailauth/lib/arc/index.js',
  evaluateDmarc: 'mailauth/lib/dmarc/index.js',
};
const MAILAUTH_FILE = 'qmail-dkverify-mailauth.cjs';

const mailauthApart = apart(MAILAUTH_FILE, 'src/verify/mailauth-checks.ts', /^mailauth\/lib\//, (path) => {
  if (!Object.values(MAILAUTH_PARTS).includes(path)) throw new Error(`${path}: not one of the mailauth parts bundled apart`);
});

/**
 * What `importer` imports by a path that `filter` matches is bundled in `file` of its own (a
 * build of its own, below), which the importer's bundle require()s there: not import(), with
 * which Node's ES loader would first scan the whole file for its CommonJS exports.
 */
function apart(file, importer, filter, check = () => undefined) {
  return {
    name: `apart-${file}`,
    setup(b) {
      b.onResolve({ filter }, (args) => {
        if (!args.importer.endsWith(importer)) return undefined;
        check(args.path);
        return { path: file, namespace: 'apart' };
      });
      b.onResolve({ filter: /.*/, namespace: 'apart' }, (args) => ({ path: args.path, external: true }));
      // Keyed by the path, which is the file: two such plugins in one build each load their own.
      b.onLoad({ filter: /.*/, namespace: 'apart' }, (args) => ({ contents: `module.exports = require('./${args.path}');`, loader: 'js' }));
    },
  };
}

const mailauthParts = await build({
  stdin: {
    contents: `Object.defineProperties(exports, {${Object.entries(MAILAUTH_PARTS)
      .map(([name, path]) => `${name}: { enumerable: true, get: () => require(${JSON.stringify(path)}).${name} }`)
      .join(', ')}});`,
    resolveDir: root,
    sourcefile: 'mailauth-parts.js',
    loader: 'js',
  },
  outfile: `${root}dist/${MAILAUTH_FILE}`,
  ...BUNDLE,
  plugins: [mailauthStandIns, lazyVerifyModules],
});

// dist/qmail-dkverify-check.cjs: the verifying path (verify-queue.ts and the checks), which the
// entry requires only when DKVERIFY is set: the pass-through reads the small entry alone.
const CHECK_FILE = 'qmail-dkverify-check.cjs';
const checkApart = apart(CHECK_FILE, 'src/verify/qmail-dkverify.ts', /\/verify-queue\.ts$/);

const verify = await build({
  entryPoints: [`${root}src/verify/qmail-dkverify.ts`],
  outfile: `${root}dist/qmail-dkverify.cjs`,
  ...BUNDLE,
  plugins: [checkApart],
});
const check = await build({
  entryPoints: [`${root}src/verify/verify-queue.ts`],
  outfile: `${root}dist/${CHECK_FILE}`,
  ...BUNDLE,
  plugins: [mailauthApart],
});
// What went into the bundles, for test/verify/bundle.test.ts.
writeFileSync(
  `${root}dist/qmail-dkverify.inputs.json`,
  JSON.stringify({ 'qmail-dkverify.cjs': inputsOf(verify), [CHECK_FILE]: inputsOf(check), [MAILAUTH_FILE]: inputsOf(mailauthParts) }, null, 1),
);

// Every bundle runs as a script compiled by bin/run-bundle.cjs, which has no module loader for
// an import(): what a bundle keeps out of its file it loads with require() (load-later.ts).
// A bundle that is ASCII is read by run-bundle.cjs as a one-byte string, copied, not decoded
// from UTF-8 (~2 ms for the verify side's files). esbuild escapes what is not ASCII in strings
// but keeps comments, raw template text and regular expression sources as they are. Inside a
// comment, found by parsing the bundle, a character can be written \uXXXX without changing
// anything; one anywhere else stays, and that bundle is read as UTF-8.
const NON_ASCII = /[^\0-\x7f]/g;
const escaped = (text) => text.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
/** The bundle's syntax tree and where its comments are: an "import(" in a comment or a string is none. */
function parsed(text) {
  const comments = [];
  const tree = parse(text, { ecmaVersion: 'latest', sourceType: 'script', allowHashBang: true, allowReturnOutsideFunction: true, onComment: (_block, _text, start, end) => comments.push([start, end]) });
  return { tree, comments };
}
function hasImportExpression(tree) {
  const nodes = [tree];
  while (nodes.length > 0) {
    const node = nodes.pop();
    if (node.type === 'ImportExpression') return true;
    for (const value of Object.values(node)) {
      for (const child of Array.isArray(value) ? value : [value]) {
        if (child !== null && typeof child === 'object' && typeof child.type === 'string') nodes.push(child);
      }
    }
  }
  return false;
}
function escapeInComments(text, comments) {
  let out = '';
  let at = 0;
  for (const [start, end] of comments) {
    out += text.slice(at, start) + escaped(text.slice(start, end));
    at = end;
  }
  return out + text.slice(at);
}
for (const file of ['qmail-remote.cjs', 'qmail-dkverify.cjs', CHECK_FILE, MAILAUTH_FILE]) {
  const path = `${root}dist/${file}`;
  const text = readFileSync(path, 'utf8');
  const { tree, comments } = parsed(text);
  if (hasImportExpression(tree)) throw new Error(`dist/${file} contains an import(), which bin/run-bundle.cjs cannot serve`);
  if (/[^\0-\x7f]/.test(text)) writeFileSync(path, escapeInComments(text, comments));
}

await import('./train-code-cache.mjs');
