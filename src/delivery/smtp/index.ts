// One delivery over SMTP, as qmail-remote's smtp() does it (docs/qmail-remote.md §5.4, §6): the
// addresses in order until one connects, each with the TLS its requirement asks for; a failed
// opportunistic handshake earns one plaintext retry. The dialogue itself is in dialogue.ts,
// the envelope in envelope.ts, replies in reply.ts and nodemailer in wire.ts, the one file that
// touches its internals. Never throws, never prints: every outcome is a catalogued report.
import { failure } from '../../common/failures.ts';
import type { TlsRequirement } from '../tls/requirement.ts';
import { BIND_FAILED, connectTcp, milliseconds, TIMED_OUT } from './connect.ts';
import { checkEnvelope, type Envelope } from './envelope.ts';
import { session, type Session } from './dialogue.ts';
import { result } from './result.ts';
import type { Delivery, DeliveryResult } from './types.ts';

export type { Delivery, DeliveryAddress, DeliveryResult, Ending, Stage } from './types.ts';
export { addrmangle } from './envelope.ts';
export { internalsOf, type Internals } from './wire.ts';

export async function deliver(d: Delivery): Promise<DeliveryResult> {
  try {
    return await attempt(d);
  } catch (error) {
    return result([], failure('INTERNAL', error), 'connect');
  }
}

const OPPORTUNISTIC: TlsRequirement = { kind: 'opportunistic', policy: 'none', name: '' };

async function attempt(d: Delivery): Promise<DeliveryResult> {
  const envelope = checkEnvelope(d);
  if ('refused' in envelope) return envelope.refused;
  // A session that TLS could not make safe enough ends before MAIL; under a requirement the
  // next address is tried (RFC 8461 §5: the next MX), and the last such ending is reported.
  let unsafe: DeliveryResult | null = null;
  for (const address of d.addresses) {
    const requirement = address.tls ?? OPPORTUNISTIC;
    // qmail's tcpto: a host that timed out twice lately is not tried (tcpto.ts).
    if (d.tcpto?.skip(address.ip)) continue;
    const socket = await connectTcp(address.ip, d.port, milliseconds(d.timeoutConnect), d.localAddress);
    if (socket === BIND_FAILED) return result([], failure('BIND_FAILED', `${d.localAddress ?? ''} to ${address.ip}`), 'connect');
    d.tcpto?.record(address.ip, socket === TIMED_OUT);
    if (socket === null || socket === TIMED_OUT) continue;
    const options = { startTls: true, retry: false, requirement, implicit: d.implicitTls === true };
    const first = await session(socket, address.ip, d, envelope, options);
    if (first.ending.code === 'TLS_UNVERIFIED') {
      unsafe = sessionResult(first, address.ip);
      continue;
    }
    // Only opportunistic STARTTLS earns a plaintext retry; required TLS is never given up.
    if (first.ending.code !== 'TLS_FAILED' || options.implicit || requirement.kind === 'verified') return sessionResult(first, address.ip);
    return retryWithoutTls(address.ip, d, envelope, first, requirement);
  }
  return unsafe ?? result([], failure('NO_CONNECTION'), 'connect');
}

/**
 * A failed TLS handshake gets one more connection to the same address in plaintext, as
 * Postfix's "may" level does: opportunistic TLS must not cost deliverability. But a refusal
 * that may only mean "not without TLS" must not bounce the mail either: on this retry a 530
 * anywhere, and any 5xx to MAIL or RCPT, defers (see softOnly).
 */
async function retryWithoutTls(ip: string, d: Delivery, envelope: Envelope, first: Session, requirement: TlsRequirement): Promise<DeliveryResult> {
  const socket = await connectTcp(ip, d.port, milliseconds(d.timeoutConnect), d.localAddress);
  if (socket === null || socket === BIND_FAILED || socket === TIMED_OUT) return sessionResult(first, ip);
  return sessionResult(await session(socket, ip, d, envelope, { startTls: false, retry: true, requirement, implicit: false }), ip);
}

function sessionResult(s: Session, ip: string): DeliveryResult {
  return { ...result(s.recipients, s.ending, s.stage), ip, ...(s.tls ? { tls: s.tls } : {}) };
}

