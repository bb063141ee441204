// What one address's TLS session must be, and how a finished handshake measured up to it. The
// policy (tlshosts/, a smarthost with credentials or on port 465, an MTA-STS policy) is decided
// before connecting (policy.ts); the session itself is always set up the same way, with
// rejectUnauthorized off, and judged here once the handshake is over and before any command
// that matters (AUTH, MAIL) is sent. So a failed check never puts credentials or an envelope on
// the wire, and an opportunistic session behaves exactly as before.
import type { TLSSocket } from 'node:tls';
import type { TlsLog, TlsPolicyApplied, TlsResultType } from '../log.ts';

/** Verify the certificate for `name` against `ca` (the system store, or a tlshosts/ file). */
export interface VerifiedTls {
  readonly kind: 'verified';
  readonly policy: Exclude<TlsPolicyApplied, 'none' | 'sts-testing'>;
  /** The name the certificate must match: the MX or relay name, or an IP address (its IP SANs). */
  readonly name: string;
  /** PEM certificates; 'system' is the system's store, loaded when the session starts. */
  readonly ca: 'system' | string;
}

/** Opportunistic TLS; under sts-testing the certificate is still checked, for the log only. */
export interface OpportunisticTls {
  readonly kind: 'opportunistic';
  readonly policy: 'none' | 'sts-testing';
  readonly name: string;
}

export type TlsRequirement = VerifiedTls | OpportunisticTls;

/** A handshake's facts, read from the TLS socket nodemailer ended up with. */
export interface TlsFacts {
  readonly version: string | null;
  readonly authorized: boolean;
  /** OpenSSL's verify code or Node's name-check code, when not authorized. */
  readonly error?: string;
}

export function tlsFacts(socket: unknown): TlsFacts {
  const tls = socket as Partial<TLSSocket> | null;
  if (!tls || tls.encrypted !== true || typeof tls.getProtocol !== 'function') return { version: null, authorized: false };
  const error = tls.authorizationError;
  return {
    version: tls.getProtocol() ?? 'TLS',
    authorized: tls.authorized === true,
    ...(error ? { error: String((error as unknown as { code?: string }).code ?? error) } : {}),
  };
}

/** The RFC 8460 result type of a session: success, or why its TLS falls short of verified. */
export function resultType(facts: TlsFacts): TlsResultType {
  if (facts.version === null) return 'starttls-not-supported';
  if (facts.authorized) return 'success';
  const code = facts.error ?? '';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'certificate-expired';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /altname|hostname/i.test(code)) return 'certificate-host-mismatch';
  if (/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY_LEAF|CERT_UNTRUSTED|CERT_REJECTED/.test(code)) return 'certificate-not-trusted';
  return 'validation-failure';
}

/** The log's view of a session held to a requirement. */
export function tlsLog(requirement: TlsRequirement, facts: TlsFacts): TlsLog {
  const result = resultType(facts);
  // Opportunistic TLS that did not verify is still a success by its own rules (RFC 8460 §4.3
  // counts failures only against a policy that asks for more).
  const counted = requirement.policy === 'none' && facts.version !== null ? 'success' : result;
  return { version: facts.version, verified: facts.authorized, policy: requirement.policy, result: counted };
}

/** Whether the session may carry AUTH and a mail transaction under its requirement. */
export function satisfies(requirement: TlsRequirement, facts: TlsFacts): boolean {
  return requirement.kind === 'opportunistic' || (facts.version !== null && facts.authorized);
}

/**
 * The options nodemailer passes to tls.connect for STARTTLS or SMTPS: SNI with the name (never
 * an IP address, which RFC 6066 forbids and Node warns about on stderr, the report pipe), and
 * the CAs to verify against when verification is asked for. rejectUnauthorized stays off: the
 * verdict is read after the handshake (see the header), and Node still checks the name.
 *
 * Under MTA-STS testing TLS is opportunistic and the CAs only tell the log whether the
 * certificate verified: they are a getter, read when nodemailer copies these options into
 * tls.connect's (Object.assign, at the handshake), so a server without STARTTLS costs no read
 * of the system store. A store that cannot be read then verifies nothing, which testing logs.
 */
export function tlsOptions(requirement: TlsRequirement, isIp: boolean, systemCa: () => string[]): Record<string, unknown> {
  const sni = isIp ? {} : { servername: requirement.name };
  if (requirement.kind === 'verified') {
    return { rejectUnauthorized: false, ca: requirement.ca !== 'system' ? requirement.ca : systemCa(), ...sni };
  }
  if (requirement.policy !== 'sts-testing') return { rejectUnauthorized: false, ...sni };
  return {
    rejectUnauthorized: false,
    ...sni,
    get ca(): string[] {
      try {
        return systemCa();
      } catch {
        return [];
      }
    },
  };
}
