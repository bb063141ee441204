// mailauth ships no types for its body canonicalizers; this is the part of RelaxedHash we use
// (lib/dkim/body/relaxed.js): update() with body bytes, digest() once at the end.
declare module 'mailauth/lib/dkim/body/relaxed.js' {
  export class RelaxedHash {
    constructor(algorithm?: string, maxBodyLength?: number);
    update(chunk: Buffer | null, final?: boolean): void;
    digest(encoding: 'base64'): string;
  }
}
