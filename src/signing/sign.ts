// Signing a message as qmail-remote sends it (spec §7): find the keys control/dksign names for
// the Sender:/From: domain, hash the head and then the body in one streaming pass, and return
// the signature header fields to put on top. DKIM-Signature goes above DomainKey-Signature,
// because a DomainKey-Signature covers only what lies below it.
//
// Policy: no dksign, no domain or no key → unsigned; a key that is there but unusable →
// READ_KEY (Z), so the message stays queued until the administrator fixes it.
import { normalised, type MessageSource } from '../mail/message.ts';
import { HeadReader, type Head } from '../mail/header.ts';
import { keyDomainSource } from '../mail/sender-domain.ts';
import { lookupKey, type ReadFile, type SigningKey } from './keys.ts';
import { failure, fail, ok, type Result } from '../common/failures.ts';
import type { DkCanonicalization } from '../canon/dk.ts';
import { DkimSigner } from './dkim.ts';
import { DomainKeysSigner, domainKeysRefusal } from './domainkeys.ts';

export interface SignConfig {
  /** control/dksign lines: the first names the main key, each further one adds a DKIM signature. */
  readonly templates: readonly string[];
  readonly qmailHome: string;
  /** t= of DKIM signatures, seconds since the epoch; now when absent. */
  readonly time?: number;
  readonly dkCanonicalization?: DkCanonicalization;
  readonly readFile?: ReadFile;
}

export interface SignatureInfo {
  readonly type: 'dkim' | 'domainkeys';
  readonly d: string;
  readonly s: string;
  readonly a: string;
  readonly path: string;
}

export interface Signed {
  /** Header fields to put above the message; empty when it goes out unsigned. */
  readonly prefix: Buffer;
  readonly signatures: readonly SignatureInfo[];
  /** Why there is no signature, or no DomainKeys one, for the log. */
  readonly notes: readonly string[];
  /** The domain keys were looked for, if any. */
  readonly domain?: string;
}

export interface KeyFailure {
  readonly path: string;
  readonly reason: string;
}

const unsigned = (note: string, domain?: string): Signed => ({
  prefix: Buffer.alloc(0),
  signatures: [],
  notes: [note],
  ...(domain !== undefined ? { domain } : {}),
});

export const STRAY_LINE_NOTE = 'a header line is neither a field nor a continuation: verifiers disagree where the header ends, not signed';

/** The signatures for the message, or READ_KEY with what went wrong in `keyFailure`. */
export function signMessage(source: MessageSource, config: SignConfig): Result<Signed> & { keyFailure?: KeyFailure } {
  if (config.templates.length === 0) return ok(unsigned('no control/dksign: signing is off'));
  const chunks = normalised(source)[Symbol.iterator]();
  const { head, firstBody } = readHead(chunks);
  if (head.oversize) return ok(unsigned('header section too large to sign'));
  // No signature could pass every verifier (see Head.strayLine): unsigned, never a failing one.
  if (head.strayLine) return ok(unsigned(STRAY_LINE_NOTE));
  const domainSource = keyDomainSource(head);
  if (!domainSource.found) return ok(unsigned(domainSource.reason));

  const keys: SigningKey[] = [];
  const notes: string[] = [];
  for (const template of config.templates) {
    const lookup = lookupKey(template, domainSource.domain, config.qmailHome, config.readFile);
    if (lookup.kind === 'error') {
      return { ...fail(failure('READ_KEY')), keyFailure: { path: lookup.path, reason: lookup.reason } };
    }
    if (lookup.kind === 'none') notes.push(lookup.reason);
    else if (!keys.some((key) => key.path === lookup.key.path)) keys.push(lookup.key);
  }
  if (keys.length === 0) return ok({ ...unsigned(notes.join('; '), domainSource.domain) });

  const time = config.time ?? Math.floor(Date.now() / 1000);
  const dkim = keys.map((key) => new DkimSigner({ key, time }, head.fields));
  const dk = domainKeysSigner(head, keys, config.dkCanonicalization ?? 'nofws', notes);

  for (let chunk: Buffer | undefined = firstBody; chunk !== undefined; chunk = nextChunk(chunks)) {
    for (const signer of dkim) signer.body(chunk);
    dk?.signer.body(chunk);
  }

  const signatures: SignatureInfo[] = keys.map((key, i) => ({
    type: 'dkim', d: key.domain, s: key.selector, a: (dkim[i] as DkimSigner).algorithm, path: key.path,
  }));
  const fields = dkim.map((signer) => signer.finish());
  const dkField = dk && finishDomainKeys(dk.signer, notes);
  if (dk && dkField) {
    fields.push(dkField);
    signatures.push({ type: 'domainkeys', d: dk.key.domain, s: dk.key.selector, a: 'rsa-sha1', path: dk.key.path });
  }
  return ok({ prefix: Buffer.concat(fields), signatures, notes, domain: domainSource.domain });
}

function readHead(chunks: Iterator<Buffer>): { head: Head; firstBody: Buffer | undefined } {
  const reader = new HeadReader();
  for (let next = chunks.next(); !next.done; next = chunks.next()) {
    const body = reader.push(next.value);
    if (body !== null) return { head: reader.head as Head, firstBody: body };
  }
  return { head: reader.end(), firstBody: undefined };
}

function nextChunk(chunks: Iterator<Buffer>): Buffer | undefined {
  const next = chunks.next();
  return next.done ? undefined : next.value;
}

/** DomainKeys only ever with an RSA key, and only where libdomainkeys itself would sign. */
function domainKeysSigner(head: Head, keys: SigningKey[], canonicalization: DkCanonicalization, notes: string[]) {
  const key = keys.find((candidate) => candidate.type === 'rsa');
  if (!key) {
    notes.push('no RSA key: no DomainKey-Signature');
    return undefined;
  }
  const refusal = domainKeysRefusal(head);
  if (refusal) {
    notes.push(`no DomainKey-Signature: ${refusal}`);
    return undefined;
  }
  return { key, signer: new DomainKeysSigner({ key, canonicalization }, head) };
}

/** Hardened OpenSSL policies refuse SHA-1 signatures; then the message goes with DKIM alone. */
function finishDomainKeys(signer: DomainKeysSigner, notes: string[]): Buffer | undefined {
  try {
    return signer.finish();
  } catch {
    notes.push('this system refuses rsa-sha1 signatures: no DomainKey-Signature');
    return undefined;
  }
}
