// The source address of the connection, as multi-IP qmail hosts set it (indimail's and
// notqmail's outgoingip, indimail's domainbindings and helohostbyip):
//
//   control/domainbindings   sender-domain:address a line; the envelope sender's domain, then
//                            each parent, the most specific line winning
//   control/outgoingip       one address, for every other sender (bounces included)
//   control/helohostbyip     address:helohost a line; the name EHLO/HELO gives when bound there
//
// An address of one family cannot reach the other: the addresses of the other family are
// left out (family.ts defers a host left with none). An address this host does not have is
// found at bind time and defers the mail (BIND_FAILED), never bounces it.
import { isIP } from 'node:net';
import { fail, failure, ok, type Result } from '../common/failures.ts';
import { canonicalDomain, parentDomains } from '../mail/domain.ts';

export interface Binding {
  readonly address: string;
  readonly family: 4 | 6;
  /** From control/helohostbyip, when it names the address. */
  readonly helohost?: string;
  /** Which file chose it, for the log. */
  readonly source: string;
}

export interface BindingFiles {
  readonly outgoingip: string | null;
  readonly domainbindings: readonly string[];
  readonly helohostbyip: readonly string[];
}

/** The binding for mail from `sender`, null when none is set, READ_CONTROL for a line that is not one. */
export function chooseBinding(files: BindingFiles, sender: string): Result<Binding | null> {
  const bindings = new Map<string, string>();
  for (const line of files.domainbindings) {
    const colon = line.indexOf(':');
    const domain = canonicalDomain(line.slice(0, colon).trim());
    const address = unbracket(line.slice(colon + 1).trim());
    if (colon < 0 || domain === null || isIP(address) === 0) return bad('domainbindings', line);
    if (!bindings.has(domain)) bindings.set(domain, address);
  }
  const at = sender.lastIndexOf('@');
  const senderDomain = at < 0 ? null : canonicalDomain(sender.slice(at + 1));
  const bound = senderDomain === null ? undefined : parentDomains(senderDomain).find((d) => bindings.has(d));
  let address: string;
  let source: string;
  if (bound !== undefined) {
    address = bindings.get(bound) as string;
    source = `control/domainbindings ${bound}`;
  } else if (files.outgoingip) {
    address = unbracket(files.outgoingip.trim());
    source = 'control/outgoingip';
    if (isIP(address) === 0) return bad('outgoingip', files.outgoingip);
    // The outgoingip patch's "any address": no binding at all.
    if (address === '0.0.0.0' || address === '::') return ok(null);
  } else return ok(null);
  const helohost = heloFor(files.helohostbyip, address);
  if (typeof helohost === 'object') return helohost;
  return ok({ address, family: isIP(address) === 6 ? 6 : 4, source, ...(helohost ? { helohost } : {}) });
}

/** The helohostbyip name for `address`; split at the last ':' since an IPv6 address has many. */
function heloFor(lines: readonly string[], address: string): string | undefined | Result<never> {
  for (const line of lines) {
    const colon = line.lastIndexOf(':');
    const ip = unbracket(line.slice(0, colon).trim());
    const name = line.slice(colon + 1).trim();
    if (colon < 0 || isIP(ip) === 0 || canonicalDomain(name) === null) return bad('helohostbyip', line);
    if (sameAddress(ip, address)) return name;
  }
  return undefined;
}

const unbracket = (text: string): string => (text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text);
const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function bad(file: string, line: string): Result<never> {
  return fail(failure('READ_CONTROL', `control/${file}: not an address line: ${JSON.stringify(line.slice(0, 80))}`));
}
