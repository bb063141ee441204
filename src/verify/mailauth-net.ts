// What mailauth asks of node:net on the verify path: isIP, isIPv4 and isIPv6, on the client's
// address (SPF, ARC) and on the domains it meets (DMARC's policy lookup asks whether the From:
// domain is an address; SPF whether a mechanism's value is). Node answers isIPv6 with a long
// regular expression that V8 compiles the first time it runs and again, optimised, the second
// time: about 10 ms of CPU in a process that runs it only a few times, which is what one
// verification is. Every IPv6 address in text has a colon (RFC 4291 §2.2, with or without a
// zone, RFC 4007 §11), so a string without one is answered without that expression; anything
// else goes to Node. Nor is node:net loaded for a string without one: it is Node's whole socket
// module, a few ms of CPU to load, and a verification opens no socket of its own; its IPv4
// expression is written here as Node writes it (lib/internal/net.js). The verify bundle gives
// mailauth this module in node:net's place (scripts/bundle.mjs); test/verify/mailauth-net.test.ts
// holds it to node:net, input by input, and fails if mailauth's bundled files ask node:net for
// anything more.
import type * as Net from 'node:net';

const V4_SEG = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const IPV4 = new RegExp(`^(?:${V4_SEG}\\.){3}${V4_SEG}$`);

/** A string Node's own answer is needed for: not a string, or one with a colon (maybe IPv6). */
const mayBeIPv6 = (input: unknown): boolean => typeof input !== 'string' || input.includes(':');

const node = (): typeof Net => process.getBuiltinModule('node:net');

export function isIPv4(input: string): boolean {
  return typeof input === 'string' ? IPV4.test(input) : node().isIPv4(input);
}

export function isIPv6(input: string): boolean {
  return mayBeIPv6(input) && node().isIPv6(input);
}

export function isIP(input: string): number {
  if (mayBeIPv6(input)) return node().isIP(input);
  return isIPv4(input) ? 4 : 0;
}
