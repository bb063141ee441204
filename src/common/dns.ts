// The one way this project makes a DNS resolver: routing (QMAILREMOTE_DNS), the key audit
// (`keys --dns`) and verification all ask through a node:dns/promises Resolver built here, so
// timeouts, retries and the server syntax mean the same everywhere. Queries are sent as given:
// no search list, like qmail's res_query.
import { Resolver } from 'node:dns/promises';

export interface ResolverOptions {
  /** IP addresses with an optional port ("127.0.0.1:5353", "[::1]:53"); the system's when empty. */
  readonly servers?: readonly string[];
  /** Milliseconds before the first retry (c-ares doubles it each try); c-ares' default if unset. */
  readonly timeout?: number;
  /** Attempts per server; c-ares' default if unset. */
  readonly tries?: number;
}

/** A Resolver, or null when a server is not an IP address (with an optional port). */
export function makeResolver(options: ResolverOptions = {}): Resolver | null {
  const resolver = new Resolver({
    ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    ...(options.tries !== undefined ? { tries: options.tries } : {}),
  });
  const servers = options.servers ?? [];
  if (servers.length === 0) return resolver;
  try {
    resolver.setServers([...servers]);
  } catch {
    return null;
  }
  return resolver;
}

/** "a, b,c" → ["a", "b", "c"]: the form QMAILREMOTE_DNS and similar variables take. */
export function serverList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((server) => server.trim())
    .filter((server) => server !== '');
}

/**
 * What a failed query says, the one triage for routing, MTA-STS, the key audit and verification:
 * `none`, DNS answered that the name has no such data (NXDOMAIN, no records of that type),
 * which is final; `unaskable`, c-ares would not even send the query (EBADNAME); `failed`,
 * anything else (SERVFAIL, REFUSED, a timeout, a bad reply, no server, an error without a
 * code), which may pass.
 */
export type DnsFailure = 'none' | 'unaskable' | 'failed';

export function dnsFailure(error: unknown): DnsFailure {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTFOUND' || code === 'ENODATA') return 'none';
  if (code === 'EBADNAME') return 'unaskable';
  return 'failed';
}
