// All the checks on one message, within one deadline: our DomainKeys verifier and mailauth's
// DKIM, SPF, DMARC and ARC, over the message normalised to CRLF. A check the deadline cuts
// short is a temporary result (temperror, DomainKeys F, DKIM K), never a pass.
import type { Resolver } from 'node:dns/promises';
import { normalised, type MessageSource } from '../mail/message.ts';
import { HeadReader, type Head, type HeaderField } from '../mail/header.ts';
import { DomainKeysCheck, type DkResult, type KeyAnswer } from './domainkeys.ts';
import { dkimEntries, type DkimEntry } from './dkim-results.ts';
import { runMailauth, type AuthStatus, type MailauthResults } from './mailauth-checks.ts';
import type { Results } from './auth-results.ts';
import type { DkimLetter } from './letters.ts';

export interface CheckSettings {
  readonly authservId: string;
  /** TCPREMOTEIP; null for local injection. */
  readonly ip: string | null;
  readonly sender: string;
  readonly resolver: Resolver;
  readonly deadlineMs: number;
}

const TIMED_OUT = Symbol('timed out');

export async function checkMessage(source: MessageSource, settings: CheckSettings): Promise<Results> {
  const { head, dk } = domainKeysPass(source);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), settings.deadlineMs);
  });
  try {
    const dkResult = dk.done ? Promise.resolve(dk.done) : lookupKey(settings.resolver, dk.keyName).then((answer) => dk.finish(answer));
    const mailauth = head.oversize ? Promise.resolve(oversize()) : runMailauth({
      chunks: () => (head.hasSeparator ? copies(normalised(source)) : [Buffer.concat(head.fields.map((field) => field.raw))]),
      sender: settings.sender,
      ip: settings.ip,
      helo: settings.ip ? heloFrom(head, settings.ip) : null,
      authservId: settings.authservId,
      resolver: (name, type) => settings.resolver.resolve(name, type),
    }).catch((error: unknown) => new MailauthFailure(error));
    const [dkOut, authOut] = await Promise.all([Promise.race([dkResult, deadline]), Promise.race([mailauth, deadline])]);
    return {
      dk: dkOut === TIMED_OUT ? { ...dk.partial(), letter: 'F', result: 'temperror', comment: 'verification deadline passed' } : dkOut,
      ...(authOut === TIMED_OUT ? unchecked(head, 'K', 'temperror', 'verification deadline passed')
        : authOut instanceof MailauthFailure ? unchecked(head, 'B', 'permerror', authOut.reason)
          : { ...authOut, dkim: dkimEntries(head, authOut.dkim) }),
    };
  } finally {
    clearTimeout(timer);
  }
}

/*
 * mailauth keeps everything before the first empty line in memory and scans it byte by byte.
 * A message without one (hostile, or a body that starts without the separator) would be
 * read whole that way: it is given only the header fields, which is what the rest of the
 * message reads as anyway, a head with an empty body.
 */

/** Reads the head and feeds the body to the DomainKeys check, in one synchronous pass. */
function domainKeysPass(source: MessageSource): { head: Head; dk: DomainKeysCheck } {
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
    if (dk.done) break;
    dk.body(body);
  }
  if (!dk) {
    head = reader.end();
    dk = new DomainKeysCheck(head);
  }
  return { head: head ?? reader.end(), dk };
}

function* copies(chunks: Iterable<Buffer>): Generator<Buffer> {
  for (const chunk of chunks) yield Buffer.from(chunk);
}

async function lookupKey(resolver: Resolver, name: string): Promise<KeyAnswer> {
  try {
    return { records: await resolver.resolveTxt(name) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { error: code === 'ENOTFOUND' || code === 'ENODATA' ? 'nokey' : 'temporary' };
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

function oversize(): MailauthResults {
  const why: AuthStatus = { result: 'permerror', comment: 'header section too large to check' };
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
