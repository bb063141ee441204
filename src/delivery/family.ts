// control/ipv6: which address families a delivery may use, and which first. Without the file
// the order is routing's own (IPv4 first within each MX name, then IPv6), as before.
//
//   prefer-ipv4   the same, said out loud
//   prefer-ipv6   IPv6 first within each MX name (the MX order is kept)
//   ipv4-only     never connect over IPv6 (Gmail refuses IPv6 senders without a matching PTR)
//   ipv6-only     never connect over IPv4
//
// A host that has addresses only of the family left out is deferred (Z), never bounced: the
// setting is ours, and changing it delivers the mail. The same holds for a source address
// (binding.ts): it reaches only its own family.
import { fail, failure, ok, type Result } from '../common/failures.ts';
import type { Address, Destination } from './route.ts';

export type FamilyPolicy = 'prefer-ipv4' | 'prefer-ipv6' | 'ipv4-only' | 'ipv6-only';

const POLICIES: readonly FamilyPolicy[] = ['prefer-ipv4', 'prefer-ipv6', 'ipv4-only', 'ipv6-only'];

/** The first line of control/ipv6; null when absent. Anything else defers (READ_CONTROL). */
export function parseFamilyPolicy(line: string | null): Result<FamilyPolicy | null> {
  if (line === null || line === '') return ok(null);
  const policy = POLICIES.find((p) => p === line.trim().toLowerCase());
  return policy ? ok(policy) : fail(failure('READ_CONTROL', `control/ipv6: not one of ${POLICIES.join(', ')}: ${JSON.stringify(line.slice(0, 40))}`));
}

/** The destination's addresses as the policy wants them. */
export function withFamilies(destination: Destination, policy: FamilyPolicy | null): Result<Destination> {
  if (policy === null || policy === 'prefer-ipv4') return ok(destination);
  if (policy === 'prefer-ipv6') return ok({ ...destination, addresses: ipv6First(destination.addresses) });
  const family = policy === 'ipv4-only' ? 4 : 6;
  const addresses = destination.addresses.filter((address) => address.family === family);
  if (addresses.length === 0) return fail(failure('NO_ADDRESS_IN_FAMILY', `${policy}: ${destination.host} has only IPv${family === 4 ? 6 : 4} addresses`));
  return ok({ ...destination, addresses });
}

/** Within each run of addresses of one MX name and preference, IPv6 before IPv4, each in its order. */
function ipv6First(addresses: readonly Address[]): Address[] {
  const out: Address[] = [];
  let run: Address[] = [];
  const flush = (): void => {
    out.push(...run.filter((a) => a.family === 6), ...run.filter((a) => a.family === 4));
    run = [];
  };
  for (const address of addresses) {
    const last = run[run.length - 1];
    if (last !== undefined && (last.name !== address.name || last.pref !== address.pref)) flush();
    run.push(address);
  }
  flush();
  return out;
}

/** Only the addresses a socket bound to an address of `family` can reach. */
export function reachableFrom(destination: Destination, family: 4 | 6, why: string): Result<Destination> {
  const addresses = destination.addresses.filter((address) => address.family === family);
  if (addresses.length === 0) return fail(failure('NO_ADDRESS_IN_FAMILY', `${why} is IPv${family}: ${destination.host} has only IPv${family === 4 ? 6 : 4} addresses`));
  return ok({ ...destination, addresses });
}
