// ARC sealing of forwarded mail (RFC 8617; docs/signing.md, "Forwarded mail"): a message that
// came in from outside (origin.ts) and now leaves gets one ARC set on top of everything else,
// our own DKIM and DomainKeys signatures included. The set is made by mailauth's createSeal(),
// loaded here and only here, when a message is to be sealed: other mail never loads it.
//
// What the set says is what qmail-dkverify recorded on entry: the ARC-Authentication-Results
// payload is its field (authserv-id and results), and cv= follows its arc= result: none for a
// first set, pass only when the chain passed on entry, fail otherwise. mailauth refuses what no
// validator would accept (a 51st set, sealing over a cv=fail, cv=pass without a chain): then the
// message goes unsealed, and the log says why.
import { Readable } from 'node:stream';
import { normalised, type MessageSource } from '../mail/message.ts';
import { lookupKey, type KeyLookup, type ReadFile, readKeyFile } from './keys.ts';
import type { Origin } from './origin.ts';
import type { Signed } from './sign.ts';
import { keyDomain, linesFor, type SigningTable } from './table.ts';
import { canonicalDomain } from '../mail/domain.ts';
import { describeCause, fail, failure, ok, type Result } from '../common/failures.ts';
import { loadLater } from '../common/load-later.ts';
import type * as MailauthArc from 'mailauth/lib/arc/index.js';

type Outside = Extract<Origin, { kind: 'outside' }>;

/**
 * The sealing key: the one control/dksign's first line gives for control/me's domain, parents
 * tried; with control/dkimkeys, the key of its first line for that domain.
 */
export function sealingKey(templates: readonly string[], me: string, qmailHome: string, table?: SigningTable, read: ReadFile = readKeyFile): KeyLookup {
  if (table) {
    const domain = canonicalDomain(me);
    const line = domain === null ? undefined : linesFor(table, domain)?.lines.find((l) => l.problem === undefined && !l.options.nosign);
    if (domain === null || line === undefined) return { kind: 'none', reason: `no usable control/dkimkeys line for ${me}` };
    return lookupKey(line.keypath, keyDomain(line, domain), qmailHome, read);
  }
  const template = templates[0];
  if (template === undefined) return { kind: 'none', reason: 'no control/dksign: no ARC seal' };
  return lookupKey(template, me, qmailHome, read);
}

export type SealOutcome = { readonly sealed: true; readonly fields: Buffer; readonly note: string } | { readonly sealed: false; readonly note: string };

/** cv= from the chain's state on entry (RFC 8617 §5.1.1): pass only over a chain that passed. */
export function chainValidation(arcOnEntry: string): 'pass' | 'fail' | undefined {
  if (arcOnEntry === 'none') return undefined; // mailauth writes none for i=1, and refuses any later set
  return arcOnEntry === 'pass' ? 'pass' : 'fail';
}

/**
 * The ARC set for the message as it will go out: `prefix` (our signatures) above the message.
 * The fields end in CRLF, ready to go above `prefix`.
 */
export async function sealForward(
  origin: Outside,
  key: Extract<KeyLookup, { kind: 'found' }>['key'],
  prefix: Buffer,
  source: MessageSource,
  time: number,
): Promise<SealOutcome> {
  const { createSeal } = loadLater('mailauth/lib/arc/index.js') as typeof MailauthArc;
  const cv = chainValidation(origin.claims.arc);
  const result = await createSeal(Readable.from(wireCopy(prefix, source)), {
    seal: {
      signingDomain: key.domain,
      selector: key.selector,
      privateKey: key.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      authResults: origin.results.replace(/\r?\n/g, '\r\n'),
      signTime: new Date(time * 1000),
      ...(cv !== undefined ? { cv } : {}),
    },
  });
  if (result.headers.length === 0) {
    const why = result.errors.map((e) => (e.err as Error | undefined)?.message ?? 'refused').join('; ');
    return { sealed: false, note: `no ARC seal: ${why || 'mailauth made none'}` };
  }
  const fields = Buffer.from(`${result.headers.map((h) => h.replace(/\r?\n/g, '\r\n')).join('\r\n')}\r\n`, 'latin1');
  return { sealed: true, fields, note: `arc seal d=${key.domain} s=${key.selector} cv=${cv ?? 'none'}` };
}

/** The message as sent, each chunk copied: the stream may hold several at once. */
function* wireCopy(prefix: Buffer, source: MessageSource): Generator<Buffer> {
  if (prefix.length > 0) yield prefix;
  for (const chunk of normalised(source)) yield Buffer.from(chunk);
}

export interface SealConfig {
  /** control/dksign's lines: the first gives the sealing key. */
  readonly templates: readonly string[];
  /** control/dkimkeys, which gives it instead when present. */
  readonly table?: SigningTable;
  /** control/me: the sealing domain, or a name under it. */
  readonly me: string;
  readonly qmailHome: string;
  /** t= of the seal, seconds since the epoch. */
  readonly time: number;
}

/**
 * The fields to put above the message: an ARC set over our signatures when the message is a
 * forward, else our signatures alone. An unusable sealing key is READ_KEY (the mail waits, as for
 * an unusable signing key); a seal that cannot be made lets the mail go unsealed, with a note.
 */
export async function sealIfForwarded(signed: Signed, source: MessageSource, config: SealConfig): Promise<Result<{ prefix: Buffer; notes: string[] }>> {
  if (signed.origin.kind !== 'outside') return ok({ prefix: signed.prefix, notes: [] });
  // mailauth's parsers are quadratic in some headers a stranger can write: never hand it those.
  if (signed.origin.unsealable) return ok({ prefix: signed.prefix, notes: [`no ARC seal: ${signed.origin.unsealable}`] });
  const key = sealingKey(config.templates, config.me, config.qmailHome, config.table);
  if (key.kind === 'error') return fail(failure('READ_KEY', `${key.path}: ${key.reason}`));
  if (key.kind === 'none') return ok({ prefix: signed.prefix, notes: [`no ARC seal: ${key.reason}`] });
  try {
    const seal = await sealForward(signed.origin, key.key, signed.prefix, source, config.time);
    return ok({ prefix: seal.sealed ? Buffer.concat([seal.fields, signed.prefix]) : signed.prefix, notes: [seal.note] });
  } catch (error) {
    return ok({ prefix: signed.prefix, notes: [`no ARC seal: ${describeCause(error)}`] });
  }
}
