// Where to connect (docs/qmail-remote.md §5): control/smtproutes first, then DNS. The result is the ordered
// list of addresses the connect loop walks through, or the one failure that ends the delivery.
//
// Trusts: the smtproutes lines (written by the operator, already stripped of comments by
// control.ts) and the resolver it is given. Does not trust: the recipient host from argv and
// every DNS answer, which only ever become addresses or report text via noSuchHost().
//
// Differences from netqmail's qmail-remote, on purpose:
//   - IPv6: AAAA records and IPv6 literals are used too; within one MX name the IPv4 addresses
//     come first, then the IPv6 ones, each in answer order (control/ipv6 changes that: family.ts).
//   - RFC 7505 null MX ("MX 0 .") is a bounce of its own (NULL_MX).
//   - An smtproutes entry whose port is not a number in 1..65535 defers the deliveries that use
//     it (READ_CONTROL) instead of connecting to port 0 as scan_ulong() would have it.
//   - An empty relay with a port (`domain::2525`) means "MX lookup, but connect to that port".
//   - A relay may be a bracketed IPv6 literal: `domain:[IPv6:2001:db8::1]:2525`.
//   - The same address reached through two MX names is tried once (at its best preference).
//   - DNS errors: only an answer from DNS is permanent: NXDOMAIN and no data (docs/qmail-remote.md §5.2),
//     a null MX, MX-is-me. Everything else (SERVFAIL, REFUSED, timeout, no server, a reply
//     c-ares cannot parse) is temporary, whatever the host looks like.
//   - Malformed host arguments (see checkedName): a name c-ares will not put into a query
//     (empty, an empty label as in `a..b` or `.a`, a label over 63 bytes, a name over 253
//     bytes, a space or another byte c-ares refuses) can never be looked up by this program,
//     so it is refused permanently (D, "couldn't find any host named") — but only after DNS
//     has answered a query for its nearest name that can be asked (its longest suffix c-ares
//     accepts, else the root): while DNS is unreachable such a host is deferred (Z) like any
//     other, and qmail-send's queuelifetime ends it. qmail asks res_query, which sends such
//     names as they are and bounces on the NXDOMAIN that always comes back.
//   - The host arrives as bytes (one char per byte, see argv.ts). Valid UTF-8 is asked as that
//     text; other bytes are asked as Latin-1 characters (c-ares takes UTF-8 only) and quoted
//     in reports byte for byte.
//   - tcpto (docs/qmail-remote.md §5.4) is applied when connecting, not here: src/delivery/tcpto.ts.
//   - No CNAME rewriting of the host.
import { makeResolver, serverList, type ResolverOptions } from '../common/dns.ts';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describeCause, fail, failure, noSuchHost, ok, type Result } from '../common/failures.ts';
import { dnsFailure } from '../common/dns.ts';

/** The SMTP port when smtproutes names none. */
export const SMTP_PORT = 25;

/** One smtproutes entry, the part after `domain:`. */
export interface SmtpRoute {
  /** Relay host name or IP literal; '' means "look up the MX records as usual". */
  readonly relay: string;
  readonly port: number;
  /**
   * Tom Clegg's AUTH patch (jms1): `domain:relay:port user password`. The user is kept as
   * written, including the leading '-' that means "AUTH without TLS is fine".
   */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Set when the entry is malformed; a delivery that picks it is deferred (READ_CONTROL). */
  readonly problem?: string;
  /**
   * `relay:port/nosign`: mail on this route goes out unsigned and unsealed, for a smarthost
   * that signs itself (and may refuse a message that already carries a DKIM-Signature).
   */
  readonly nosign?: boolean;
}

/**
 * control/smtproutes lines → entries keyed by the lowercased domain (docs/qmail-remote.md §4, §5.1). Lines
 * without ':' are ignored (constmap_init); with duplicate keys the last line wins. Blank lines
 * and '#' comments are skipped here too, so raw file lines can be passed as well.
 */
export function parseSmtproutes(lines: readonly string[]): Map<string, SmtpRoute> {
  const routes = new Map<string, SmtpRoute>();
  for (const raw of lines) {
    const line = raw.replace(/[ \t\r]+$/, '');
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).toLowerCase();
    routes.delete(key); // so that the Map's order shows which line won
    routes.set(key, parseEntry(line.slice(colon + 1)));
  }
  return routes;
}

// `relay[:port][/nosign][ user password]`; the password is the rest of the line, spaces included.
function parseEntry(text: string): SmtpRoute {
  const match = /^(\S*)(?:[ \t]+(\S+)(?:[ \t]+(.+))?)?$/.exec(text);
  if (match === null) return { relay: '', port: 0, problem: 'unparsable entry' };
  const [, written = '', user, pass] = match;
  const nosign = written.endsWith(NOSIGN);
  const target = nosign ? written.slice(0, -NOSIGN.length) : written;
  const entry = parseTarget(target, user, pass);
  return nosign ? { ...entry, nosign } : entry;
}

/** The flag that turns signing off for a route; `/` is in no host name nor port. */
const NOSIGN = '/nosign';

function parseTarget(target: string, user: string | undefined, pass: string | undefined): SmtpRoute {
  const hostPort = splitHostPort(target);
  if (typeof hostPort === 'string') return { relay: target, port: 0, problem: hostPort };
  if (user !== undefined && pass === undefined) {
    return { ...hostPort, problem: 'AUTH needs a user and a password' };
  }
  if (user !== undefined && pass !== undefined) return { ...hostPort, auth: { user, pass } };
  return hostPort;
}

// `name`, `name:port`, `[literal]`, `[literal]:port`; a string is the reason it is malformed.
function splitHostPort(target: string): { relay: string; port: number } | string {
  let relay = target;
  let portText: string | undefined;
  if (target.startsWith('[')) {
    const end = target.indexOf(']');
    if (end < 0) return 'unterminated [ in relay';
    relay = target.slice(0, end + 1);
    const rest = target.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return 'text after ] in relay';
    if (rest !== '') portText = rest.slice(1);
  } else {
    const colon = target.indexOf(':');
    if (colon >= 0) {
      relay = target.slice(0, colon);
      portText = target.slice(colon + 1);
    }
  }
  if (portText === undefined) return { relay, port: SMTP_PORT };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) return `bad port "${portText}"`;
  return { relay, port };
}

/**
 * The entry for host (docs/qmail-remote.md §5.1): `a.b.example`, `.b.example`, `.example`, then `` (the
 * `:relay` default), case-insensitively. The first key present wins, even with an empty relay.
 */
export function findRoute(routes: ReadonlyMap<string, SmtpRoute>, host: string): SmtpRoute | undefined {
  const name = host.toLowerCase();
  for (let i = 0; i <= name.length; i++) {
    if (i !== 0 && i !== name.length && name[i] !== '.') continue;
    const route = routes.get(name.slice(i));
    if (route !== undefined) return route;
  }
  return undefined;
}

export interface Address {
  readonly ip: string;
  readonly family: 4 | 6;
  /** MX preference; 0 for an A/AAAA fallback, an IP literal or a relay. */
  readonly pref: number;
  /** The MX name, relay or host this address came from, for logs. */
  readonly name: string;
}

export interface Destination {
  /** The host shown in reports: the relay when routed, otherwise the recipient host. */
  readonly host: string;
  readonly port: number;
  /** Eligible addresses in the order to try them; never empty. */
  readonly addresses: readonly Address[];
  readonly auth?: { readonly user: string; readonly pass: string };
  readonly relayed: boolean;
}

/** The part of node:dns/promises' Resolver this module uses; tests may pass their own. */
export interface DnsLike {
  resolveMx(name: string): Promise<ReadonlyArray<{ exchange: string; priority: number }>>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface RouteOptions {
  /** Defaults to routingResolver(): QMAILREMOTE_DNS, else the system's servers. */
  readonly resolver?: DnsLike;
  /**
   * The addresses that are "me" (docs/qmail-remote.md §5.3). Replaces the default: 0.0.0.0, :: and every
   * address of os.networkInterfaces(), loopback included.
   */
  readonly localAddresses?: readonly string[];
  /** Orders MX records of equal preference; [0, 1) like Math.random, the default. */
  readonly random?: () => number;
}

/**
 * Where to deliver mail for host (docs/qmail-remote.md §5): the smtproutes relay, an IP literal, or the MX
 * records (falling back to A/AAAA), minus the addresses that are at or after the best
 * preference pointing back at this machine. Never rejects; every outcome is a Result.
 */
export async function resolveDestination(
  hostBytes: string,
  routes: ReadonlyMap<string, SmtpRoute>,
  opts: RouteOptions = {},
): Promise<Result<Destination>> {
  const host = dnsName(hostBytes);
  const route = findRoute(routes, host);
  if (route?.problem !== undefined) return fail(failure('READ_CONTROL'));
  const made = opts.resolver !== undefined ? ok(opts.resolver) : routingResolver();
  if (!made.ok) return made;
  const resolver = made.value;
  const port = route?.port ?? SMTP_PORT;
  const auth = route?.auth !== undefined ? { auth: route.auth } : {};

  // A relay is used even if it is one of our own addresses (qmail's prefme = 300000).
  if (route !== undefined && route.relay !== '') {
    const found = await hostAddresses(route.relay, resolver);
    if (!found.ok) return found;
    return ok({ host: route.relay, port, addresses: found.value, ...auth, relayed: true });
  }

  const found = await mxAddresses(host, resolver, opts.random ?? Math.random);
  if (!found.ok) return found;
  const eligible = withoutMe(found.value, opts.localAddresses ?? defaultLocalAddresses());
  if (eligible.length === 0) return fail(failure('MX_IS_ME'));
  return ok({ host, port, addresses: eligible, ...auth, relayed: false });
}

// A relay: an IP literal or its A/AAAA records, never MX.
async function hostAddresses(name: string, resolver: DnsLike): Promise<Result<Address[]>> {
  const literal = parseIpLiteral(name);
  if (literal !== undefined) return ok([{ ...literal, pref: 0, name }]);
  const found = await lookupAddresses(name, 0, resolver);
  if (found.addresses.length > 0) return ok(found.addresses);
  if (found.soft) return fail(failure('TEMP_DNS', found.cause));
  if (found.badName) return unaskable(name, resolver);
  return fail(noSuchHost(bytesOf(name)));
}

/**
 * A name c-ares refused to send: permanent once DNS has answered for the nearest name that
 * can be asked (so DNS is there, and this name will never be asked), temporary until then.
 */
async function unaskable(name: string, resolver: DnsLike): Promise<Result<never>> {
  let probe = await attempt(() => resolver.resolveMx(askableSuffix(name)));
  if (probe.kind === 'hard' && probe.badName) probe = await attempt(() => resolver.resolveMx('.'));
  if (probe.kind === 'soft') return fail(failure('TEMP_DNS', probe.cause));
  if (probe.kind === 'hard' && probe.badName) return fail(failure('TEMP_DNS', 'c-ares refuses every query'));
  return fail(noSuchHost(bytesOf(name), 'the name cannot be put into a DNS query'));
}

/** The longest suffix of name made of labels c-ares accepts, or the root. */
export function askableSuffix(name: string): string {
  const labels = name.split('.');
  let start = labels.length;
  while (start > 0 && /^[-\w\x80-\uffff]{1,63}$/.test(labels[start - 1] ?? '')) start -= 1;
  const suffix = labels.slice(start).join('.');
  return suffix === '' || suffix.length > 253 ? '.' : suffix;
}

/** The host as DNS is asked about it: its bytes as UTF-8 text when they are UTF-8. */
export function dnsName(hostBytes: string): string {
  if (/[\u0100-\uffff]/.test(hostBytes)) return hostBytes; // already text, not bytes
  const utf8 = Buffer.from(hostBytes, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? hostBytes : utf8;
}

/** The bytes a name is made of, one char per byte, as reports quote it. */
function bytesOf(name: string): string {
  return Buffer.from(name, 'utf8').toString('latin1');
}

// The recipient host: IP literal, else MX records, else (NXDOMAIN or no MX data) A/AAAA.
async function mxAddresses(host: string, resolver: DnsLike, random: () => number): Promise<Result<Address[]>> {
  const literal = parseIpLiteral(host);
  if (literal !== undefined) return ok([{ ...literal, pref: 0, name: host }]);
  const mx = await attempt(() => resolver.resolveMx(host));
  if (mx.kind === 'soft') return fail(failure('TEMP_DNS', mx.cause));
  if (mx.kind === 'hard' && mx.badName) return unaskable(host, resolver);
  const records = mx.kind === 'ok' ? mx.value : [];
  if (records.length === 0) return hostAddresses(host, resolver);

  // RFC 7505 §3: the domain says it accepts no mail. Node reports the root name "." as ''.
  const isNull = (record: { exchange: string }) => record.exchange === '' || record.exchange === '.';
  if (records.every(isNull)) return fail(failure('NULL_MX'));

  const ordered = orderMx(records.filter((record) => !isNull(record)), random);
  const found = await Promise.all(
    ordered.map((record): Lookup | Promise<Lookup> => {
      const literalMx = parseIpLiteral(record.exchange); // qmail allows unbracketed IPs in MX
      if (literalMx !== undefined) {
        return { addresses: [{ ...literalMx, pref: record.priority, name: record.exchange }], soft: false };
      }
      return lookupAddresses(record.exchange, record.priority, resolver);
    }),
  );
  const addresses = uniqueByIp(found.flatMap((one) => one.addresses));
  if (addresses.length > 0) return ok(addresses);
  // Soft failures were skipped but remembered (docs/qmail-remote.md §5.2).
  const soft = found.find((one) => one.soft);
  return fail(soft ? failure('TEMP_DNS', soft.cause) : failure('NO_MX_OR_IP'));
}

/**
 * MX records by preference, lowest first; records of equal preference in random order
 * (RFC 5321 §5.1), as qmail shuffles ties. Each record gets one draw of random().
 */
export function orderMx<T extends { priority: number }>(records: readonly T[], random: () => number): T[] {
  return records
    .map((record) => ({ record, draw: random() }))
    .sort((a, b) => a.record.priority - b.record.priority || a.draw - b.draw)
    .map(({ record }) => record);
}

interface Lookup {
  readonly addresses: Address[];
  /** A temporary failure was met (and may be why there are no addresses). */
  readonly soft: boolean;
  /** c-ares refused to ask about the name. */
  readonly badName?: boolean;
  /** The error behind a temporary failure, for the log. */
  readonly cause?: string;
}

// A, then AAAA, of one name; asked in parallel, IPv4 listed first.
async function lookupAddresses(name: string, pref: number, resolver: DnsLike): Promise<Lookup> {
  const [v4, v6] = await Promise.all([
    attempt(() => resolver.resolve4(name)),
    attempt(() => resolver.resolve6(name)),
  ]);
  const addresses: Address[] = [];
  for (const ip of v4.kind === 'ok' ? v4.value : []) addresses.push({ ip, family: 4, pref, name });
  for (const ip of v6.kind === 'ok' ? v6.value : []) addresses.push({ ip, family: 6, pref, name });
  const soft = [v4, v6].find((one) => one.kind === 'soft');
  const badName = v4.kind === 'hard' && v4.badName && v6.kind === 'hard' && v6.badName;
  return {
    addresses,
    soft: soft !== undefined,
    ...(badName ? { badName } : {}),
    ...(soft?.kind === 'soft' ? { cause: soft.cause } : {}),
  };
}

type Attempt<T> = { kind: 'ok'; value: T } | { kind: 'hard'; badName: boolean } | { kind: 'soft'; cause: string };

// Hard means DNS answered "this name has no such data", for good: NXDOMAIN, no data of that
// type (docs/qmail-remote.md §5.2). EBADNAME is no answer at all (c-ares would not send the query) and
// is told apart: see unaskable(). Everything else (SERVFAIL, REFUSED, timeout, bad reply, no
// server, an error without a code) may pass: soft.
async function attempt<T>(query: () => Promise<T>): Promise<Attempt<T>> {
  try {
    return { kind: 'ok', value: await query() };
  } catch (error) {
    const failure = dnsFailure(error);
    if (failure === 'failed') return { kind: 'soft', cause: describeCause(error) };
    return { kind: 'hard', badName: failure === 'unaskable' };
  }
}

/**
 * An address written as a host: `1.2.3.4`, `[1.2.3.4]`, `[IPv6:2001:db8::1]` (RFC 5321
 * §4.1.3), or a bare or bracketed IPv6 address. Zone ids (`%eth0`) are not addresses here.
 */
export function parseIpLiteral(text: string): { ip: string; family: 4 | 6 } | undefined {
  let inner = text;
  if (text.startsWith('[') && text.endsWith(']')) {
    inner = text.slice(1, -1);
    if (/^ipv6:/i.test(inner)) {
      inner = inner.slice(5);
      return isIPv6(inner) && !inner.includes('%') ? { ip: inner, family: 6 } : undefined;
    }
  }
  if (isIPv4(inner)) return { ip: inner, family: 4 };
  if (isIPv6(inner) && !inner.includes('%')) return { ip: inner, family: 6 };
  return undefined;
}

function uniqueByIp(addresses: readonly Address[]): Address[] {
  const seen = new Set<string>();
  return addresses.filter((address) => {
    const key = `${address.family}/${address.ip.toLowerCase()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** 0.0.0.0 (netqmail's ipme addition), :: and every interface address, loopback included. */
export function defaultLocalAddresses(): string[] {
  const own = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((info) => info.address));
  return ['0.0.0.0', '::', ...own];
}

// docs/qmail-remote.md §5.3: prefme is the best preference at which we find ourselves; only the addresses
// strictly better than that are worth a connection (the rest would loop back to us).
function withoutMe(addresses: readonly Address[], local: readonly string[]): Address[] {
  const me = new BlockList(); // compares addresses, not spellings (::ffff:127.0.0.1, 0:0::1)
  for (const ip of local) {
    if (isIPv4(ip)) me.addAddress(ip, 'ipv4');
    else if (isIPv6(ip)) me.addAddress(ip.replace(/%.*$/, ''), 'ipv6');
  }
  let prefme = Infinity;
  for (const address of addresses) {
    if (me.check(address.ip, address.family === 4 ? 'ipv4' : 'ipv6')) prefme = Math.min(prefme, address.pref);
  }
  return addresses.filter((address) => address.pref < prefme);
}

/**
 * The resolver routing asks: the servers QMAILREMOTE_DNS names (e.g. "127.0.0.1:5353",
 * "[::1]:53", or several, comma separated), else the system's (/etc/resolv.conf). An unusable
 * QMAILREMOTE_DNS is a temporary DNS failure, so mail waits for the operator to fix it.
 */
export function routingResolver(
  env: NodeJS.ProcessEnv = process.env,
  options: Omit<ResolverOptions, 'servers'> = {},
): Result<DnsLike> {
  const resolver = makeResolver({ ...options, servers: serverList(env.QMAILREMOTE_DNS) });
  return resolver ? ok(resolver) : fail(failure('TEMP_DNS'));
}
