// mailauth ships no types for its body canonicalizers; this is the part of RelaxedHash we use
// (lib/dkim/body/relaxed.js): update() with body bytes, digest() once at the end, and what
// its DKIM verifier reads of it (src/verify/mailauth-relaxed.ts stands in for it).
declare module 'mailauth/lib/dkim/body/relaxed.js' {
  import type { ContentType } from 'mailauth/lib/dkim/mime-structure-start-finder.js';
  export class RelaxedHash {
    constructor(algorithm?: string, maxBodyLength?: number | false | string);
    byteLength: number;
    canonicalizedLength: number;
    bodyHashedBytes: number;
    setContentType(contentType: ContentType): void;
    update(chunk: Buffer | null, final?: boolean): void;
    digest(encoding: 'base64'): string;
    getMimeStructureStart(): number;
  }
}

// Where the first MIME boundary of a multipart body starts (lib/dkim/mime-structure-start-finder.js).
declare module 'mailauth/lib/dkim/mime-structure-start-finder.js' {
  /** A Content-Type value as libmime's parseHeaderValue gives it. */
  export interface ContentType {
    value: string;
    params: { boundary?: string };
  }
  export class MimeStructureStartFinder {
    setBoundary(boundary: string): void;
    update(chunk: Buffer): void;
    getMimeStructureStart(): number;
  }
}

// What mailauth's message parsers share (lib/dkim/message-parser.js): the stand-in of
// src/verify/mailauth-parser.ts replaces the scan for bare LFs.
declare module 'mailauth/lib/dkim/message-parser.js' {
  import { Writable } from 'node:stream';
  export class MessageParser extends Writable {
    /** The last byte scanned, for an LF at the start of the next chunk. */
    lastByte?: number;
    byteLength: number;
    /** The chunk with every LF not after a CR made a CRLF, in parts. */
    ensureLinebreaks(input: Buffer): Generator<Buffer>;
  }
}
