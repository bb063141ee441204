// What mailauth asks of tldts, the public suffix list, on the verify path: one thing nobody
// reads. Its DKIM verifier marks every signature `status.aligned` with the Organizational
// Domain that tldts finds for d= and for the From: domain. DMARC does not use that mark:
// mailauth's DMARC (RFC 9989 §4.10) finds Organizational Domains by the DNS Tree Walk and
// compares d= itself, and qmail-dkverify passes it only d= and the result
// (src/verify/mailauth-checks.ts, which also drops the mark). Loading tldts builds its table,
// about 200 KB of source: some 6 % of a verification's CPU, spent on every message.
//
// So the verify bundle gives mailauth this module in tldts's place (scripts/bundle.mjs). It
// knows no public suffixes and answers that it found no registrable domain, on which mailauth's
// getAlignment (lib/tools.js) compares the names themselves: the mark then means strict
// alignment, never more than relaxed. No verdict depends on it; test/verify/mailauth-tldts.test.ts
// fails if mailauth's bundled files ask tldts for more, or read the mark anywhere else.
export function getDomain(): null {
  return null;
}
