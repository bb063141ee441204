// What mailauth asks of node:net on the verify path: isIP, isIPv4 and isIPv6, on the client's
// address (SPF, ARC) and on the domains it meets (DMARC's policy lookup asks whether the From:
// domain is an address; SPF whether a mechanism's value is). Node answers isIPv6 with a long
// regular expression that V8 compiles the first time it runs and again, optimised, the second
// time: about 10 ms of CPU in a process that runs it only a few times, which is what one
// verification is. Every IPv6 address in text has a colon (RFC 4291 §2.2, with or without a
// zone, RFC 4007 §11), so a string without one is answered without that expression; anything
// else goes to Node. The verify bundle gives mailauth this module in node:net's place
// (scripts/bundle.mjs); test/verify/mailauth-net.test.ts holds it to node:net, input by input,
// and fails if mailauth's bundled files ask node:net for anything more.
import * as net from 'node:net';

const mayBeIPv6 = (input: unknown): boolean => typeof input !== 'string' || input.includes(':');

export const isIPv4 = net.isIPv4;

export function isIPv6(input: string): boolean {
  return mayBeIPv6(input) && net.isIPv6(input);
}

export function isIP(input: string): number {
  if (mayBeIPv6(input)) return net.isIP(input);
  return net.isIPv4(input) ? 4 : 0;
}
