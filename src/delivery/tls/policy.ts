// Which TLS each address of a delivery must have, decided before connecting:
//   1. control/tlshosts/<name>.pem exists (qmail's TLS patch): TLS is mandatory and the
//      certificate must verify for <name> against the CAs in that file only;
//   2. an smtproutes entry with `user password`, or on port 465 (SMTPS): the certificate must
//      verify for the relay (or MX) name against the system store, so credentials never go to
//      a server nobody checked;
//   3. an MX of a domain with an MTA-STS policy (relays are out of policy, as in Postfix):
//      enforce: only MX hosts the policy lists, each verified for its name against the system
//      store; testing: as today, with the outcome logged;
//   4. anything else: opportunistic TLS, as before.
// A tlshosts/ file only narrows whom to trust: under enforce an unlisted MX stays excluded.
import { isIP } from 'node:net';
import { fail, ok, type Failure, type Result } from '../../common/failures.ts';
import { mxAllowed, type StsLookup } from './mta-sts.ts';
import { tlshostsCertificates, tlshostsName } from './trust.ts';
import type { TlsRequirement } from './requirement.ts';

/** smtproutes port 465: the session starts with the TLS handshake (RFC 8314 implicit TLS). */
export const SMTPS_PORT = 465;

export interface PolicyContext {
  readonly controlDir: string;
  /** Routed through smtproutes to a relay (never under MTA-STS). */
  readonly relayed: boolean;
  readonly port: number;
  /** The relay gets credentials (smtproutes `user password`). */
  readonly auth: boolean;
  /** The recipient domain's MTA-STS lookup; null when relayed or not looked up. */
  readonly sts: StsLookup | null;
}

/** An address left out: the enforce policy does not list its MX name. */
export interface Excluded {
  readonly excluded: string;
}

/** The requirement for one MX or relay name, an exclusion, or READ_CONTROL for an unreadable tlshosts/ file. */
export function requirementFor(name: string, ctx: PolicyContext): Result<TlsRequirement | Excluded, Failure> {
  const sts = ctx.relayed ? null : ctx.sts?.policy ?? null;
  if (sts?.mode === 'enforce' && !mxAllowed(name, sts)) return ok({ excluded: `${name} is not listed in the MTA-STS policy` });
  const pinned = tlshostsCertificates(ctx.controlDir, name);
  if (!pinned.ok) return fail(pinned.error);
  // The name the certificate must match, as tlshosts/ files are named (an address without brackets).
  const checkedName = tlshostsName(name) ?? name.toLowerCase();
  if (pinned.value !== null) return ok({ kind: 'verified', policy: 'tlshosts', name: checkedName, ca: pinned.value });
  if (ctx.auth || ctx.port === SMTPS_PORT) return ok({ kind: 'verified', policy: 'smarthost', name: checkedName, ca: 'system' });
  if (sts?.mode === 'enforce') return ok({ kind: 'verified', policy: 'sts-enforce', name: checkedName, ca: 'system' });
  return ok({ kind: 'opportunistic', policy: sts?.mode === 'testing' ? 'sts-testing' : 'none', name: checkedName });
}

export const excluded = (r: TlsRequirement | Excluded): r is Excluded => 'excluded' in r;

/** Whether the name is an IP address (verified against the certificate's IP SANs, no SNI). */
export const isAddressName = (name: string): boolean => isIP(name) !== 0;
