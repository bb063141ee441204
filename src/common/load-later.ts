// Loading, on first need, what a bundle keeps out of its file (winston, mailauth's ARC sealer and
// MTA-STS fetcher, node:tls): with require(), not import(). The bundles run as scripts compiled
// from the code cache the build trained for them (bin/run-bundle.cjs), and such a script has no
// module loader to serve an import(); scripts/bundle.mjs refuses a bundle that contains one.
// Run unbundled (the tests), this resolves from this file; bundled, from the bundle's.
import { createRequire } from 'node:module';

export const loadLater = createRequire(import.meta.url);
