// Signing a message as qmail-remote sends it (docs/qmail-remote.md §7): find the keys control/dksign names for
// the Sender:/From: domain, hash the head and then the body in one streaming pass, and return
// the signature header fields to put on top. DKIM-Signature goes above DomainKey-Signature,
// because a DomainKey-Signature covers only what lies below it.
//
// Policy: no dksign, no domain or no key → unsigned; a key that is there but unusable →
// READ_KEY (Z), so the message stays queued until the administrator fixes it.
import { CrlfNormalizer, type MessageSource } from '../mail/message.ts';
import { SigningBodyPass } from '../canon/body.ts';
import { HeadReader, type Head } from '../mail/header.ts';
import { keyDomainSource } from '../mail/sender-domain.ts';
import type { ReadFile } from './keys.ts';
import { ok, type Result } from '../common/failures.ts';
import { chooseKeys, type ChosenKey } from './choose.ts';
import type { LineOptions, SigningTable } from './table.ts';
import type { DkCanonicalization } from '../canon/dk.ts';
import { DkimSigner, type DkimOptions } from './dkim.ts';
import { DomainKeysSigner, domainKeysRefusal } from './domainkeys.ts';
import { authenticatedOnEntry, originOf, type Origin, type OriginOptions } from './origin.ts';
import { canonicalDomain } from '../mail/domain.ts';

export interface SignConfig {
  /** control/dksign lines: the first names the main key, each further one adds a DKIM signature. */
  readonly templates: readonly string[];
  /** control/dkimkeys, read instead of the templates when present (table.ts). */
  readonly table?: SigningTable;
  readonly qmailHome: string;
  /** t= of DKIM signatures, seconds since the epoch; now when absent. */
  readonly time?: number;
  readonly dkCanonicalization?: DkCanonicalization;
  readonly readFile?: ReadFile;
  /** Why nothing is to be signed at all (a route flagged nosign); absent: sign. */
  readonly off?: string;
  /** How to tell mail that came in from outside (origin.ts); absent: all mail is local. */
  readonly origin?: OriginOptions;
}

export interface SignatureInfo {
  readonly type: 'dkim' | 'domainkeys';
  readonly d: string;
  readonly s: string;
  readonly a: string;
  readonly path: string;
  /** The control file line that chose the key. */
  readonly source: string;
}

export interface Signed {
  /** Header fields to put above the message; empty when it goes out unsigned. */
  readonly prefix: Buffer;
  readonly signatures: readonly SignatureInfo[];
  /** Why there is no signature, or no DomainKeys one, for the log. */
  readonly notes: readonly string[];
  /** The domain keys were looked for, if any. */
  readonly domain?: string;
  /** Where the message came from: a forward from outside is sealed (seal.ts). */
  readonly origin: Origin;
}

const LOCAL: Origin = { kind: 'local' };

const unsigned = (note: string, domain?: string, origin: Origin = LOCAL): Signed => ({
  prefix: Buffer.alloc(0),
  signatures: [],
  notes: [note],
  ...(domain !== undefined ? { domain } : {}),
  origin,
});

export const STRAY_LINE_NOTE = 'a header line is neither a field nor a continuation: verifiers disagree where the header ends, not signed';

/** The signatures for the message, or READ_KEY whose cause says which key file and what is wrong with it. */
export function signMessage(source: MessageSource, config: SignConfig): Result<Signed> {
  if (config.off !== undefined) return ok(unsigned(config.off));
  if (config.templates.length === 0 && config.table === undefined) return ok(unsigned('no control/dksign: signing is off'));
  const { head, firstBody, rest, normalizer } = readHead(source);
  if (head.oversize) return ok(unsigned('header section too large to sign'));
  // No signature could pass every verifier (see Head.strayLine): unsigned, never a failing one.
  if (head.strayLine) return ok(unsigned(STRAY_LINE_NOTE));
  const origin = config.origin ? originOf(head, source, config.origin) : LOCAL;
  const domainSource = keyDomainSource(head);
  if (!domainSource.found) return ok(unsigned(domainSource.reason, undefined, origin));
  const domain = canonicalDomain(domainSource.domain);
  const rule = originRule(origin, domainSource.header, domain);
  if (rule.refuse) return ok({ ...unsigned(rule.note, domainSource.domain, origin) });
  if (domain === null) return ok(unsigned(`not a valid domain: ${JSON.stringify(domainSource.domain.slice(0, 80))}`, domainSource.domain, origin));
  const choice = chooseKeys(domain, config);
  if (!choice.ok) return choice;
  const notes: string[] = [...(rule.note ? [rule.note] : []), ...choice.value.notes];
  const chosen = choice.value.keys;
  if (chosen.length === 0) return ok({ ...unsigned(notes.join('; '), domainSource.domain, origin) });

  const time = config.time ?? Math.floor(Date.now() / 1000);
  const dkim = chosen.map(({ key, options }) => new DkimSigner({ key, time, ...signerOptions(options) }, head.fields));
  const dk = choice.value.dk ? domainKeysSigner(head, chosen, config.dkCanonicalization ?? 'nofws', notes) : undefined;
  if (!choice.value.dk) notes.push('dk=no: no DomainKey-Signature');

  hashBody(firstBody, rest, normalizer, dkim, dk?.signer, head.hasSeparator);

  const signatures: SignatureInfo[] = chosen.map(({ key, source }, i) => ({
    type: 'dkim', d: key.domain, s: key.selector, a: (dkim[i] as DkimSigner).algorithm, path: key.path, source,
  }));
  const fields = dkim.map((signer) => signer.finish());
  const dkField = dk && finishDomainKeys(dk.signer, notes);
  if (dk && dkField) {
    fields.push(dkField);
    signatures.push({ type: 'domainkeys', d: dk.key.domain, s: dk.key.selector, a: 'rsa-sha1', path: dk.key.path, source: dk.source });
  }
  return ok({ prefix: Buffer.concat(fields), signatures, notes, domain: domainSource.domain, origin });
}

/**
 * The forwarding rule (docs/signing.md, "Forwarded mail"): mail that came in from outside with
 * the field that picks the signing domain unchanged is not signed with that domain's key,
 * unless entry authenticated the domain. A field rewritten here (a list's From:) and local mail
 * are signed as ever. The note says which rule decided, for the log and `sign --explain`.
 */
function originRule(origin: Origin, header: 'Sender' | 'From', domain: string | null): { refuse: true; note: string } | { refuse: false; note?: string } {
  if (origin.kind === 'local') return { refuse: false, ...(origin.note ? { note: origin.note } : {}) };
  if (domain === null || domain !== origin.facts.sd) {
    return { refuse: false, note: `came in from outside; ${header}: was rewritten here: signed as local mail` };
  }
  if (authenticatedOnEntry(origin.claims, domain)) {
    return { refuse: false, note: `came in from outside; entry authenticated ${domain} (dkim or dmarc pass): signed` };
  }
  return {
    refuse: true,
    note: `came in from outside with ${header}: ${domain} unauthenticated (no dkim=pass or dmarc=pass for it on entry): not signed with its key`,
  };
}

interface HeadRead {
  readonly head: Head;
  /** The first body bytes, normalised; undefined when the message ended in its head. */
  readonly firstBody: Buffer | undefined;
  /** The raw chunks after the one the head ended in. */
  readonly rest: Iterator<Buffer>;
  /** The normaliser the head went through, to go on with where the kernel is off. */
  readonly normalizer: CrlfNormalizer;
}

/** The head, read from normalised text; the body is left to hashBody(). */
function readHead(source: MessageSource): HeadRead {
  const reader = new HeadReader();
  const normalizer = new CrlfNormalizer();
  const rest = source.chunks()[Symbol.iterator]();
  for (let next = rest.next(); !next.done; next = rest.next()) {
    const body = reader.push(normalizer.push(next.value));
    if (body !== null) return { head: reader.head as Head, firstBody: body, rest, normalizer };
  }
  const body = reader.push(normalizer.end());
  if (body !== null) return { head: reader.head as Head, firstBody: body, rest, normalizer };
  return { head: reader.end(), firstBody: undefined, rest, normalizer };
}

/**
 * The body into every signer: in one WebAssembly pass per chunk over the raw bytes (src/canon/
 * body.ts) where it can, else normalised in JavaScript and canonicalized by each signer.
 */
function hashBody(
  firstBody: Buffer | undefined,
  rest: Iterator<Buffer>,
  normalizer: CrlfNormalizer,
  dkim: readonly DkimSigner[],
  dk: DomainKeysSigner | undefined,
  separator: boolean,
): void {
  if (firstBody === undefined) return;
  const pass =
    dk?.canonicalization !== 'simple'
      ? SigningBodyPass.create({
          relaxed: (data) => {
            for (const signer of dkim) signer.canonicalBody(data);
          },
          nofws: dk ? (data) => dk.canonicalBody(data) : null,
          separator,
        })
      : null;
  if (pass) {
    // The first body bytes are normalised already (CRLF stays CRLF); the raw bytes after them
    // may start with the LF of a CR that ended the head's chunk.
    pass.push(firstBody);
    let afterCr = normalizer.afterCr;
    for (let next = rest.next(); !next.done; next = rest.next()) {
      pass.push(next.value, afterCr);
      afterCr = false;
    }
    pass.end();
    return;
  }
  const body = (chunk: Buffer): void => {
    for (const signer of dkim) signer.body(chunk);
    dk?.body(chunk);
  };
  body(firstBody);
  for (let next = rest.next(); !next.done; next = rest.next()) body(normalizer.push(next.value));
  const tail = normalizer.end();
  if (tail.length > 0) body(tail);
}

/** The DKIM signer's settings from a control/dkimkeys line's options. */
function signerOptions(options: LineOptions): Omit<DkimOptions, 'key' | 'time'> {
  return {
    ...(options.expireAfter !== undefined ? { expireAfter: options.expireAfter } : {}),
    ...(options.identity !== undefined ? { identity: options.identity } : {}),
    ...(options.oversign !== undefined ? { oversign: options.oversign } : {}),
  };
}

/** DomainKeys only ever with an RSA key, and only where libdomainkeys itself would sign. */
function domainKeysSigner(head: Head, chosen: readonly ChosenKey[], canonicalization: DkCanonicalization, notes: string[]) {
  const rsa = chosen.find((candidate) => candidate.key.type === 'rsa');
  if (!rsa) {
    notes.push('no RSA key: no DomainKey-Signature');
    return undefined;
  }
  const { key, source } = rsa;
  const refusal = domainKeysRefusal(head);
  if (refusal) {
    notes.push(`no DomainKey-Signature: ${refusal}`);
    return undefined;
  }
  return { key, source, signer: new DomainKeysSigner({ key, canonicalization }, head) };
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
