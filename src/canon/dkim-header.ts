// DKIM relaxed header canonicalization (RFC 6376 §3.4.2), beside the relaxed body one
// (dkim-body.ts): the signer hashes each signed field, and its own DKIM-Signature, through it.

/** Relaxed header canonicalization (RFC 6376 §3.4.2) of one whole field. */
export function relaxedHeader(raw: Buffer, withCrlf: boolean): Buffer {
  const text = raw.toString('latin1').replace(/\r\n$/, '');
  const colon = text.indexOf(':');
  const name = text.slice(0, colon).replace(/[ \t]+$/, '').toLowerCase();
  const value = text
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
  return Buffer.from(`${name}:${value}${withCrlf ? '\r\n' : ''}`, 'latin1');
}
