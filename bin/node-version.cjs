'use strict';
// package.json's engines, checked in syntax any Node can parse, for the four launchers beside
// this file: each decides what an old Node means for its caller (a Z report, exit 81, a word to
// the administrator). The one place the required version is written for them; a test holds it
// to package.json.
var REQUIRED = [22, 19];

/** Whether the running Node is older than the project requires. */
exports.tooOld = function tooOld() {
  var version = process.versions.node.split('.').map(Number);
  return version[0] < REQUIRED[0] || (version[0] === REQUIRED[0] && version[1] < REQUIRED[1]);
};

exports.required = REQUIRED.join('.');
