'use strict';
// Runs a bundle of dist/ as a CommonJS module, compiled from the code cache that the build
// trained for it (scripts/train-code-cache.mjs) when that cache fits.
//
// qmail-send starts a qmail-remote for every delivery and qmail-smtpd a qmail-dkverify for
// every message, so each pays for compiling its bundle again: parsing the file and then, as
// each function first runs, compiling that function. Node's own compile cache keeps only what
// was compiled before the module ran, the outline; a V8 code cache made after a whole delivery
// or verification also holds every function it ran (docs/performance.md, "Start-up").
//
// The cache is used only when it was made from these very bytes and is itself whole (its
// header names both SHA-256s: an edited bundle is never run from the code of the old one, even at the same
// length, which is all V8 itself compares) and by this very Node and V8 with the same flags
// (V8 checks that, and rejects the cache otherwise). A cache that is missing, stale or rejected
// costs a compile, as without one; nothing else changes.
//
// Bundles contain no import(): a script compiled here has no module loader for it. A bundle
// loads what it keeps out of its file with require() (src/common/load-later.ts), and requires
// a sibling bundle ('./name.cjs') through this file, so that one runs from its cache too.
var fs = require('fs');
var path = require('path');
var vm = require('vm');
var Module = require('module');

var MAGIC = 'qmail-remote-dkim code cache 2\n';
/** Each bundle's module.exports, by its path: a bundle runs once, as require() would. */
var loaded = new Map();
/** While the build trains: every script compiled here, to be written out at exit. */
var trainees = null;

/** Where the code cache of `file` lives: beside it, in the package. */
function cachePathOf(file) {
  return file + '.v8cache';
}

var sha256 = function (bytes) {
  return require('crypto').hash('sha256', bytes);
};

/**
 * The header of a cache made from the bundle hashing to `sourceHash`, whose V8 part hashes to
 * `bodyHash`. V8 release builds check a cache's version, flags and length but not its bytes, and
 * a damaged one can stop V8 with a fatal error (and a trace on fd 2): a cache whose bytes are
 * not the ones written is never given to V8.
 */
function headerFor(sourceHash, bodyHash) {
  return MAGIC + sourceHash + '\n' + bodyHash + '\n';
}
/** Two SHA-256s in hex, each on a line of its own. */
var HEADER_LENGTH = MAGIC.length + 2 * 65;

/** The cache file of `file`, or null when there is none. */
function readCache(file) {
  try {
    return fs.readFileSync(cachePathOf(file));
  } catch (error) {
    return null;
  }
}

/** The V8 part of `cache` if it was made from `bytes` and is whole: its header names both SHA-256s. */
function fittingPart(cache, bytes) {
  if (cache.length <= HEADER_LENGTH) return undefined;
  var body = cache.subarray(HEADER_LENGTH);
  if (cache.toString('latin1', 0, HEADER_LENGTH) !== headerFor(sha256(bytes), sha256(body))) return undefined;
  return body;
}

/**
 * Compiles `file` with its code cache when that fits; `usedCache` says whether it did. A bundle
 * without a cache (the small entry of qmail-dkverify's pass-through) is not even hashed. While
 * training, no cache is read: the one written at exit must come from a compile of its own.
 */
function compile(file) {
  var bytes = fs.readFileSync(file);
  var cache = trainees ? null : readCache(file);
  var cachedData = cache === null ? undefined : fittingPart(cache, bytes);
  // esbuild writes ASCII by default: read so, the text is a one-byte string copied, not decoded.
  var text = require('buffer').isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  var script = new vm.Script(Module.wrap(text), { filename: file, cachedData: cachedData });
  if (trainees) trainees.push({ file: file, script: script, bytes: bytes });
  return { script: script, usedCache: cachedData !== undefined && !script.cachedDataRejected };
}

/** What a bundle's require() does: a sibling bundle through run(), anything else as usual. */
function requireFor(file) {
  var dir = path.dirname(file);
  var base = Module.createRequire(file);
  function bundleRequire(id) {
    return /^\.\/[^/]+\.cjs$/.test(id) ? run(path.join(dir, id)) : base(id);
  }
  bundleRequire.resolve = base.resolve;
  bundleRequire.cache = base.cache;
  bundleRequire.main = base.main;
  return bundleRequire;
}

/** Runs the bundle at `file` (an absolute path) once and returns its exports. */
function run(file) {
  if (loaded.has(file)) return loaded.get(file);
  var module = { exports: {}, id: file, filename: file, loaded: false };
  loaded.set(file, module.exports);
  var wrapper = compile(file).script.runInThisContext();
  wrapper.call(module.exports, module.exports, requireFor(file), module, file, path.dirname(file));
  module.loaded = true;
  loaded.set(file, module.exports);
  return module.exports;
}

/**
 * For the build's trainer only (scripts/train-bundle.cjs): from now on bundles compile without
 * a cache, and at exit the cache of each of `files` that ran is written, holding what the run
 * compiled. A run that ends by becoming another program (qmail-dkverify's hand-over) writes
 * them just before the exec, which ends the process without an exit event.
 */
function trainUntilExit(files) {
  trainees = [];
  var written = false;
  function writeCaches() {
    if (written) return;
    written = true;
    trainees.forEach(function (trainee) {
      if (files.indexOf(trainee.file) === -1) return;
      var body = trainee.script.createCachedData();
      var header = headerFor(sha256(trainee.bytes), sha256(body));
      var target = cachePathOf(trainee.file);
      fs.writeFileSync(target + '.new', Buffer.concat([Buffer.from(header, 'latin1'), body]));
      fs.renameSync(target + '.new', target);
    });
  }
  process.on('exit', writeCaches);
  var execve = process.execve;
  if (typeof execve === 'function') {
    process.execve = function () {
      writeCaches();
      return execve.apply(process, arguments);
    };
  }
}

module.exports = { run: run, compile: compile, cachePathOf: cachePathOf, trainUntilExit: trainUntilExit };
