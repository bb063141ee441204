'use strict';
// Preloaded (node --require) into bin/qmail-remote by test/delivery/fault-matrix-input.test.ts:
// the first outgoing connection fails in a way no code path expects, an exception thrown from a
// callback (CRASH=throw) or a rejected promise nobody handles (CRASH=reject), so the
// process-wide crash handler must be what reports.
const net = require('node:net');

net.Socket.prototype.connect = function connect() {
  if (process.env.CRASH === 'reject') void Promise.reject(new Error('injected fault'));
  else setImmediate(() => {
    throw new Error('injected fault');
  });
  return this;
};
