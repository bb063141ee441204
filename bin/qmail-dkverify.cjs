#!/usr/bin/env node
'use strict';
// A qmail-queue front end: qmail-smtpd runs it through QMAILQUEUE, once per message. fd 1 is
// the envelope (read-only) and fd 2 may be the SMTP session's log: no Node warning may reach
// either. Silence them before anything else loads.
process.emitWarning = () => {};
// CommonJS all the way (bin/package.json): the bundle holds the verify path and mailauth, and
// runs from the code cache the build trained for it, where that fits (run-bundle.cjs).
// package.json's engines, checked in syntax any Node can parse: on an older Node, exit 81
// ("qq internal bug", a 451 to the client) so the sender retries once the administrator has
// put a newer node in place, instead of failing somewhere inside a dependency.
var node = require('./node-version.cjs');
if (node.tooOld()) {
  process.exitCode = 81;
} else {
  require('./run-bundle.cjs').run(require('path').join(__dirname, '..', 'dist', 'qmail-dkverify.cjs'));
}
