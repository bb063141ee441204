// All the checks on one message: our DomainKeys verifier and mailauth's DKIM, SPF, DMARC and
// ARC, over the message normalised to CRLF, within the bounds of bounds.ts. check-bounded.ts runs
// them under the deadline: a check the deadline cuts short is a temporary result (temperror,
// DomainKeys F, DKIM K), never a pass.
import type { Resolver } from 'node:dns/promises';
import { normalised, type MessageSource } from '../mail/message.ts';
import { HeadReader, fieldValue, type Head, type HeaderField } from '../mail/header.ts';
import { DomainKeysCheck, type DkResult, type KeyAnswer } from './domainkeys.ts';
import { BODY_HASH_FAILED, checkedSignatures, dkimEntries, type DkimEntry } from './dkim-results.ts';
import { runMailauth, type AuthStatus, type DkimSignatureResult, type MailauthResults, type ResolveFunction } from './mailauth-checks.ts';
import { headerBeyondBounds, limitLookups } from './bounds.ts';
import { mailboxAddresses } from '../mail/sender-domain.ts';
import type { Results } from './auth-results.ts';
import type { DkimLetter } from './letters.ts';
import { dnsFailure } from '../common/dns.ts';

export interface CheckSettings {
  readonly authservId: string;
  /** TCPREMOTEIP; null for local injection. */
  readonly ip: string | null;
  readonly sender: string;
  readonly resolver: Resolver;
}

/** What the caller learns before the checks end: what to report if they are stopped now. */
export interface CheckProgress {
  /** Once the head is read: every result temperror (DomainKeys too unless already known). */
  fallback(results: Results): void;
  /** The DomainKeys result, as soon as it is known. */
  dk(result: DkResult): void;
}

export const UNFINISHED = 'verification deadline passed';

const NO_PROGRESS: CheckProgress = { fallback: () => undefined, dk: () => undefined };

/**
 * Runs every check to its end: the deadline is not kept here but by whoever runs this
 * (check-bounded.ts), with a watchdog outside this process that nothing here can outrun.
 */
export async function checkMessage(source: MessageSource, settings: CheckSettings, progress = NO_PROGRESS): Promise<Results> {
  // mailauth's DNSResolver type promises strings only, but its SPF code asks for MX records and
  // reads the objects Node's resolver gives: the whole answer is passed on, as its own default does.
  const resolve = limitLookups(((name: string, type: string) => settings.resolver.resolve(name, type)) as ResolveFunction);
  const { head, dk } = domainKeysPass(source, (head, dk) => {
    const dkFallback: DkResult = dk.done ?? { ...dk.partial(), letter: 'F', result: 'temperror', comment: UNFINISHED };
    progress.fallback({ dk: dkFallback, ...unchecked(head, 'K', 'temperror', UNFINISHED) });
  });
  const dkResult = (dk.done ? Promise.resolve(dk.done) : lookupKey(resolve, dk.keyName).then((answer) => dk.finish(answer)))
    .then((result) => {
      progress.dk(result);
      return result;
    });
  const beyond = head.oversize ? 'header section too large to check' : headerBeyondBounds(head);
  const mailauth = beyond !== null ? Promise.resolve(notChecked(beyond)) : runMailauth({
    chunks: () => mailauthInput(head, source),
    sender: settings.sender,
    ip: settings.ip,
    helo: settings.ip ? heloFrom(head, settings.ip) : null,
    authservId: settings.authservId,
    resolver: resolve,
  }).then((results) => keysBeforeBodies(results, resolve)).catch((error: unknown) => new MailauthFailure(error));
  const [dkOut, authOut] = await Promise.all([dkResult, mailauth]);
  return {
    dk: dkOut,
    ...(authOut instanceof MailauthFailure ? unchecked(head, 'B', 'permerror', authOut.reason)
      : { ...authOut, dkim: dkimEntries(head, authOut.dkim), dmarc: authorCheck(head, authOut.dmarc) }),
  };
}

/**
 * What mailauth reads: the header section with only the DKIM signatures that are checked
 * (bounds.ts), then the body. A message without an empty line after its head gets only the
 * header fields, which is what the rest of the message reads as anyway: a head with an empty
 * body (mailauth would otherwise keep the whole message in memory, looking for that line).
 * A message with no signature over its body (no DKIM signature checked, no ARC message
 * signature) gets an empty body too: nothing mailauth reports then depends on the body, and a
 * big one would go through mailauth's streams for nothing, copies, collections and all.
 */
function* mailauthInput(head: Head, source: MessageSource): Generator<Buffer> {
  const kept = head.fields.filter((field) => field.key !== 'dkim-signature' || checkedSignatures(head).has(field));
  yield Buffer.concat([...kept.map((field) => field.raw), head.hasSeparator ? CRLF : Buffer.alloc(0)]);
  if (!head.hasSeparator || !kept.some(signsBody)) return;
  let skip = head.fields.reduce((bytes, field) => bytes + field.raw.length, CRLF.length);
  let sinceCollection = 0;
  for (const chunk of normalised(source)) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    // A copy: mailauth's streams may still hold a chunk when the reader reuses its buffer.
    yield Buffer.from(chunk.subarray(skip));
    skip = 0;
    sinceCollection += chunk.length;
    if (sinceCollection >= COLLECT_EVERY_BYTES) {
      collectYoung();
      sinceCollection = 0;
    }
  }
}

/** A field whose signature mailauth checks against a hash of the body. */
const signsBody = (field: HeaderField): boolean => field.key === 'dkim-signature' || field.key === 'arc-message-signature';

/**
 * How much body goes to mailauth between two young-generation collections. Each copy above, and
 * mailauth's own per chunk, is garbage at once, but V8 frees buffers only when a collection
 * runs, and starts one for them only after tens of MiB: a 100 MiB message peaked at 150 MiB of
 * RSS, 76 MiB for 2 KiB. Every 2 MiB it peaks near 95 MiB, for no more CPU (a collection of a
 * young generation this small takes about a millisecond; every 512 KiB cost 10 % more CPU).
 */
const COLLECT_EVERY_BYTES = 2 << 20;

type Collect = (options: { type: 'minor' }) => void;
let collect: Collect | null | undefined;

/**
 * A young-generation collection. V8 gives `gc` to a context made after --expose-gc is set, so
 * the flag is set and one small context made, on the first call (only a body past
 * COLLECT_EVERY_BYTES gets here). Where a Node does not honour the flag there is no `gc` and
 * memory is what V8 makes it.
 */
function collectYoung(): void {
  if (collect === undefined) {
    process.getBuiltinModule('node:v8').setFlagsFromString('--expose-gc');
    const gc: unknown = process.getBuiltinModule('node:vm').runInNewContext('typeof gc === "function" ? gc : null');
    collect = typeof gc === 'function' ? (gc as Collect) : null;
  }
  collect?.({ type: 'minor' });
}

const CRLF = Buffer.from('\r\n');

/*
 * mailauth judges the body hash before it asks for the key, so a DNS outage reads as a
 * permanent body-hash failure. RFC 6376 §6.1.2 fetches the key first: for each signature whose
 * body hash failed, the key is looked up here, and a lookup that fails temporarily is the
 * result (temperror), one that finds no key is "no key".
 */
async function keysBeforeBodies(results: MailauthResults, resolve: ResolveFunction): Promise<MailauthResults> {
  const dkim = await Promise.all(results.dkim.map(async (row): Promise<DkimSignatureResult> => {
    if (row.status.comment !== BODY_HASH_FAILED || !row.selector || !row.signingDomain) return row;
    const answer = await lookupKey(resolve, `${row.selector}._domainkey.${row.signingDomain}`);
    if (!('error' in answer)) return row;
    const status: AuthStatus = answer.error === 'temporary'
      ? { result: 'temperror', comment: 'key lookup failed' }
      : { result: 'neutral', comment: 'no key' };
    return { ...row, status: { ...row.status, ...status } };
  }));
  return { ...results, dkim };
}

/**
 * RFC 7489 §6.6.1: a message with several From: fields, or several author domains, has no one
 * Author Domain; mailauth then reports none. Such a message is a permerror here (a fail stays a
 * fail), never a "none" that a filter would read as "no policy to apply".
 */
function authorCheck(head: Head, dmarc: AuthStatus): AuthStatus {
  if (dmarc.result === 'fail') return dmarc;
  const froms = head.fields.filter((field) => field.key === 'from');
  if (froms.length > 1) return { result: 'permerror', comment: 'more than one From: field' };
  const domains = new Set(froms.flatMap((field) => mailboxAddresses(fieldValue(field).toString('utf8')).map((box) => box.domain.toLowerCase())));
  if (domains.size > 1) return { result: 'permerror', comment: 'more than one author domain' };
  return dmarc;
}

/** Reads the head and feeds the body to the DomainKeys check, in one synchronous pass. */
function domainKeysPass(source: MessageSource, onHead: (head: Head, dk: DomainKeysCheck) => void): { head: Head; dk: DomainKeysCheck } {
  const reader = new HeadReader();
  const chunks = normalised(source)[Symbol.iterator]();
  let head: Head | null = null;
  let dk: DomainKeysCheck | null = null;
  for (let next = chunks.next(); !next.done; next = chunks.next()) {
    if (dk) {
      dk.body(next.value);
      continue;
    }
    const body = reader.push(next.value);
    if (body === null) continue;
    head = reader.head as Head;
    dk = new DomainKeysCheck(head);
    onHead(head, dk);
    if (dk.done) break;
    dk.body(body);
  }
  if (!dk) {
    head = reader.end();
    dk = new DomainKeysCheck(head);
    onHead(head, dk);
  }
  return { head: head ?? reader.end(), dk };
}

async function lookupKey(resolve: ResolveFunction, name: string): Promise<KeyAnswer> {
  try {
    return { records: (await resolve(name, 'TXT')) as string[][] };
  } catch (error) {
    return { error: dnsFailure(error) === 'none' ? 'nokey' : 'temporary' };
  }
}

/**
 * The HELO name from qmail-smtpd's own Received: field, the first of the message:
 * "from REMOTEHOST (HELO helo) (info@IP)", where "(HELO ...)" is left out when the HELO name
 * was the remote host name. Only believed when its IP is TCPREMOTEIP.
 */
function heloFrom(head: Head, ip: string): string | null {
  const first = head.fields[0] as HeaderField | undefined;
  if (first?.key !== 'received') return null;
  const match = /^Received: from (\S+)(?: \(HELO ([^()]*)\))? \((?:[^()@]*@)?([^()\s]*)\)\r\n/.exec(first.raw.toString('latin1'));
  if (!match || match[3] !== ip) return null;
  const helo = match[2] ?? match[1] ?? '';
  return helo === '' || helo === 'unknown' ? null : helo;
}

/**
 * mailauth threw (a message it cannot parse): unrecoverable for this message, so a permerror
 * (DKIM letter B), not a temporary failure that would have the sender retry the same bytes
 * until its queue lifetime ends.
 */
class MailauthFailure {
  readonly reason: string;
  constructor(error: unknown) {
    this.reason = `verifier error: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** A head past the bounds: nothing of it is given to mailauth. */
function notChecked(reason: string): MailauthResults {
  const why: AuthStatus = { result: 'permerror', comment: reason };
  return { dkim: [], spf: why, dmarc: why, arc: why };
}

/** Every result the same, for checks that did not finish: each DKIM signature gets `letter`. */
function unchecked(head: Head, letter: DkimLetter, result: string, why: string): Omit<Results, 'dk'> {
  const dkim = dkimEntries(head, []).map((entry): DkimEntry =>
    entry.letter === 'N' ? entry : { ...entry, letter, result, comment: why });
  const status: AuthStatus = { result, comment: why };
  return { dkim, spf: status, dmarc: status, arc: status };
}

export type { DkResult };
