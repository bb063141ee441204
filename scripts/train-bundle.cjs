'use strict';
// One training run for the code caches (scripts/train-code-cache.mjs starts it):
//   node scripts/train-bundle.cjs LAUNCHER BUNDLES ARG...
// runs the launcher (bin/qmail-remote, bin/qmail-dkverify) with ARG... as its arguments, as if
// Node had been started on it, and at exit writes the code cache of each bundle named in
// BUNDLES (comma-separated paths) that ran, holding every function the run compiled.
const { resolve } = require('node:path');
const { trainUntilExit } = require('../bin/run-bundle.cjs');

const [launcher, bundles] = process.argv.slice(2, 4);
trainUntilExit(bundles.split(',').map((bundle) => resolve(bundle)));
process.argv.splice(1, 3, resolve(launcher));
require(resolve(launcher));
