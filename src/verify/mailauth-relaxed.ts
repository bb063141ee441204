// What mailauth's DKIM verifier gets in place of its RelaxedHash (lib/dkim/body/relaxed.js) in
// the verify bundle (scripts/bundle.mjs): the same class, whose body is canonicalized by the
// WebAssembly loop the signer uses (src/canon/body.ts) rather than by a JavaScript loop that
// looks at every byte and allocates a buffer for every line it has to change: almost half of
// the time qmail-dkverify took for a long message signed relaxed (mailauth-parser.ts saves
// another fifth).
//
// The answers are mailauth's: the same hash, and the same counts (byteLength,
// canonicalizedLength, bodyHashedBytes, the l= limit applied to the same canonical bytes, the
// MIME structure start found by mailauth's own finder). test/verify/mailauth-relaxed.test.ts
// holds the two to each other, chunk by chunk and limit by limit. One precondition: the body
// comes normalised to CRLF, as qmail-dkverify hands every message over (src/verify/check.ts);
// a bare CR, which mailauth keeps as content, would be a line end here. Where WebAssembly is
// off, mailauth's own class does the work.
import { createHash, type Hash } from 'node:crypto';
import { RelaxedHash as MailauthRelaxedHash } from 'mailauth/lib/dkim/body/relaxed.js';
import { MimeStructureStartFinder, type ContentType } from 'mailauth/lib/dkim/mime-structure-start-finder.js';
import { SigningBodyPass } from '../canon/body.ts';
import { sharedKernel } from './mailauth-kernel.ts';

export class RelaxedHash {
  /** Body bytes given, canonical bytes made, canonical bytes hashed (at most l=). */
  byteLength = 0;
  canonicalizedLength = 0;
  bodyHashedBytes = 0;
  /** Set by mailauth's verifier once the digest is made. */
  hash?: string;
  mimeStructureStart?: number;
  private readonly maxBodyLength: number | false | string | undefined;
  private maxSizeReached: boolean;
  private readonly bodyHash: Hash;
  private readonly mimeStructureStartFinder = new MimeStructureStartFinder();
  private readonly pass: SigningBodyPass | null;
  /** mailauth's own class, where the loop is not available. */
  private readonly reference: MailauthRelaxedHash | null;
  private ended = false;

  /** As mailauth's: `algorithm` sha1 or sha256 (or rsa-sha256...), `maxBodyLength` l= (a number; '' or false for none). */
  constructor(algorithm?: string, maxBodyLength?: number | false | string) {
    this.maxBodyLength = maxBodyLength;
    this.maxSizeReached = maxBodyLength === 0;
    this.bodyHash = createHash((algorithm || 'sha256').split('-').pop()?.toLowerCase() ?? 'sha256');
    const loop = sharedKernel();
    this.pass = loop && SigningBodyPass.create({ relaxed: (data) => this.updateBodyHash(data), nofws: null, separator: false }, loop);
    this.reference = this.pass ? null : new MailauthRelaxedHash(algorithm, maxBodyLength);
  }

  setContentType(contentType: ContentType): void {
    if (this.reference) return this.reference.setContentType(contentType);
    if (/^multipart\//i.test(contentType.value) && contentType.params.boundary) this.mimeStructureStartFinder.setBoundary(contentType.params.boundary);
  }

  update(chunk: Buffer | null, final = false): void {
    if (this.reference) {
      this.reference.update(chunk, final);
      this.byteLength = this.reference.byteLength;
      return;
    }
    if (this.ended) return;
    if (chunk && chunk.length > 0) {
      this.byteLength += chunk.length;
      this.pass?.push(chunk);
    }
    if (final) {
      this.ended = true;
      this.pass?.end();
    }
  }

  digest(encoding: 'base64'): string {
    if (this.reference) {
      const digest = this.reference.digest(encoding);
      ({ byteLength: this.byteLength, canonicalizedLength: this.canonicalizedLength, bodyHashedBytes: this.bodyHashedBytes } = this.reference);
      return digest;
    }
    this.update(null, true);
    return this.bodyHash.digest(encoding);
  }

  getMimeStructureStart(): number {
    return (this.reference ?? this.mimeStructureStartFinder).getMimeStructureStart();
  }

  /** mailauth's _updateBodyHash: every canonical byte is counted, at most l= of them hashed. */
  private updateBodyHash(data: Buffer): void {
    this.mimeStructureStartFinder.update(data);
    this.canonicalizedLength += data.length;
    if (this.maxSizeReached) return;
    const limit = this.maxBodyLength;
    let chunk = data;
    if (typeof limit === 'number' && !isNaN(limit) && limit >= 0 && this.bodyHashedBytes + chunk.length > limit) {
      this.maxSizeReached = true;
      if (this.bodyHashedBytes >= limit) return;
      chunk = chunk.subarray(0, limit - this.bodyHashedBytes);
    }
    this.bodyHashedBytes += chunk.length;
    this.bodyHash.update(chunk);
  }
}
