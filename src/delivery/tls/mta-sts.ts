// MTA-STS (RFC 8461) for mail routed through MX: the policy a recipient domain publishes, kept
// in an on-disk cache that every delivery shares, so that the policy is fetched once per
// max_age (or when its TXT id changes) and not once per message.
//
// Each delivery asks DNS for the `_mta-sts.<domain>` TXT record (one query, beside the MX
// lookup). Then:
//   - a cached policy that has not expired and whose id is the published one is used as it is:
//     no fetch, and mailauth is not loaded (mxAllowed() below matches the `mx:` patterns);
//   - no TXT record, or no answer from DNS: a cached policy that has not expired still applies
//     (RFC 8461 §5.1), otherwise there is no policy;
//   - anything else (no cache, an expired one, a new id) loads mailauth's getPolicy(), which
//     fetches https://mta-sts.<domain>/.well-known/mta-sts.txt (no redirects, at most 64 KB,
//     the certificate verified against the system store), bounded here by timeoutconnect.
//     A failed fetch with a cached enforce or testing policy keeps that policy (expired or not);
//     with none it is no policy, and mailauth's "do not retry this id for an hour" marker is
//     cached so that a broken policy host is not asked once per message.
//
// The cache: $QMAILHOME/mta-sts/<domain>.json (made by `install`: owned by qmailr, mode 0700).
// <domain> is checked to be a lowercase A-label name before it is spliced into a path; files
// are read up to MAX_CACHE_BYTES and checked field by field (anyone who can write there can
// only choose among valid policies); they are written whole to a temporary file and renamed,
// so a reader never sees half of one. Concurrent deliveries to one domain fetch once: the first
// takes <domain>.lock (O_EXCL), the others wait for the policy it writes, up to the fetch
// bound. Without the directory each delivery fetches for itself.
import { closeSync, openSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import { join } from 'node:path';
import { describeCause } from '../../common/failures.ts';
import { readBounded } from '../../common/read-bounded.ts';
import { systemCertificates } from './trust.ts';
import { dnsFailure } from '../../common/dns.ts';
import { loadLater } from '../../common/load-later.ts';
import type * as MailauthMtaSts from 'mailauth/lib/mta-sts.js';
import type * as Tls from 'node:tls';

/** A policy file is at most 64 KB (RFC 8461 §3.3); its cached form a little more. */
const MAX_CACHE_BYTES = 96 * 1024;
/** How often a delivery waiting for another's fetch looks at the cache. */
const WAIT_POLL_MS = 25;
/** A lock older than the fetch bound plus this was left by a process that died. */
const STALE_LOCK_GRACE_MS = 5000;
/** RFC 8461 §3.2: max_age is at most 31557600 seconds. */
const MAX_AGE_LIMIT_S = 31557600;

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  /** The TXT id the policy was fetched under. */
  readonly id: string;
  readonly mode: StsMode;
  /** The `mx:` patterns, lowercase: `mx.example.com` or `*.example.com`. */
  readonly mx: readonly string[];
  /** When the policy expires (ms since the epoch). */
  readonly expires: number;
  readonly maxAge: number;
}

/** What applies to one delivery, and how it was found (for the log). */
export interface StsLookup {
  readonly policy: StsPolicy | null;
  /** cached: no fetch; fetched: a fetch succeeded; errored: a fetch or DNS failed (see error). */
  readonly source: 'none' | 'cached' | 'fetched' | 'errored';
  readonly error?: string;
  /** The policy could not be fetched (RFC 8460 sts-policy-fetch-error) or parsed (sts-policy-invalid). */
  readonly failure?: 'sts-policy-fetch-error' | 'sts-policy-invalid';
}

/** The DNS queries this module and mailauth's fetch need; node:dns/promises' Resolver has them. */
export interface StsResolver {
  resolveTxt(name: string): Promise<string[][]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface StsOptions {
  /** $QMAILHOME/mta-sts; null: no cache. */
  readonly cacheDir: string | null;
  readonly resolver: StsResolver;
  /** The fetch bound (control/timeoutconnect), in milliseconds. */
  readonly timeoutMs: number;
  readonly now?: () => number;
}

/** The lowercase A-label form of a domain, or null when it is not a name a file may be named after. */
export function stsDomain(domain: string): string | null {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '')).toLowerCase();
  const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
  const name = new RegExp(`^(?=.{1,253}$)${label}(?:\\.${label})+$`);
  return name.test(ascii) ? ascii : null;
}

/** The policy that applies to mail for domain, never throwing: a failure is no policy or the cached one. */
export async function lookupPolicy(domain: string, opts: StsOptions): Promise<StsLookup> {
  const name = stsDomain(domain);
  if (name === null) return { policy: null, source: 'none' };
  const now = opts.now ?? Date.now;
  const cache = opts.cacheDir === null ? null : new PolicyCache(opts.cacheDir, name);
  const [txt, cached] = await Promise.all([bounded(publishedId(name, opts.resolver), opts.timeoutMs), Promise.resolve(cache?.read() ?? null)]);
  const fresh = cached !== null && cached.expires > now() ? cached : null;
  if (fresh !== null && (txt.kind !== 'id' || txt.id === fresh.id)) return { policy: usable(fresh), source: 'cached' };
  if (txt.kind === 'absent') return { policy: null, source: 'none' };
  if (txt.kind === 'error') {
    // No answer: RFC 8461 §5.1 has an expired enforce policy rather than none at all.
    return { policy: cached !== null ? usable(cached) : null, source: 'errored', error: txt.error, failure: 'sts-policy-fetch-error' };
  }
  return fetchShared(name, txt.id, cached, cache, opts);
}

/** A policy of mode none (mailauth's marker for "fetch failed, retry later") enforces nothing. */
function usable(policy: StsPolicy): StsPolicy | null {
  return policy.mode === 'none' ? null : policy;
}

type Published = { kind: 'id'; id: string } | { kind: 'absent' } | { kind: 'error'; error: string };

/**
 * The TXT answer, or an error once timeoutconnect has passed: DNS that does not answer for
 * `_mta-sts` must not hold a delivery longer than a connection attempt may.
 */
async function bounded(query: Promise<Published>, ms: number): Promise<Published> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Published>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'error', error: 'no answer for the _mta-sts TXT record in time' }), ms);
  });
  try {
    return await Promise.race([query, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The id of the `_mta-sts` TXT record, parsed as leniently as mailauth's default mode does. */
async function publishedId(domain: string, resolver: StsResolver): Promise<Published> {
  let records: string[][];
  try {
    records = await resolver.resolveTxt(`_mta-sts.${domain}`);
  } catch (error) {
    if (dnsFailure(error) === 'none') return { kind: 'absent' };
    return { kind: 'error', error: describeCause(error) };
  }
  const sts = records.map((parts) => parts.join('')).filter((text) => /^v=STSv1[ \t]*;/i.test(text.trim()));
  if (sts.length === 0) return { kind: 'absent' };
  if (sts.length > 1) return { kind: 'error', error: 'several _mta-sts TXT records' };
  const id = /(?:^|;)[ \t]*id[ \t]*=[ \t]*([^; \t]+)/i.exec(sts[0] ?? '')?.[1];
  return id === undefined ? { kind: 'absent' } : { kind: 'id', id };
}

/** One fetch per domain at a time across processes; the others read what it wrote. */
async function fetchShared(domain: string, id: string, cached: StsPolicy | null, cache: PolicyCache | null, opts: StsOptions): Promise<StsLookup> {
  const now = opts.now ?? Date.now;
  const deadline = Date.now() + opts.timeoutMs + STALE_LOCK_GRACE_MS;
  while (cache !== null && !cache.lock(opts.timeoutMs + STALE_LOCK_GRACE_MS)) {
    if (Date.now() > deadline) return fetchPolicy(domain, cached, null, opts);
    await sleep(WAIT_POLL_MS);
    const written = cache.read();
    if (written !== null && written.id === id && written.expires > now()) return { policy: usable(written), source: 'cached' };
  }
  try {
    // Another delivery may have fetched it between our read and the lock.
    const written = cache?.read() ?? null;
    if (written !== null && written.id === id && written.expires > now()) return { policy: usable(written), source: 'cached' };
    return await fetchPolicy(domain, written ?? cached, cache, opts);
  } finally {
    cache?.unlock();
  }
}

/** mailauth's getPolicy() with the cached policy, bounded from outside; its result is cached. */
async function fetchPolicy(domain: string, known: StsPolicy | null, cache: PolicyCache | null, opts: StsOptions): Promise<StsLookup> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getPolicy } = loadLater('mailauth/lib/mta-sts.js') as typeof MailauthMtaSts;
    const tls = loadLater('node:tls') as typeof Tls;
    // The policy host's certificate is checked against the system store (trust.ts), as for SMTP.
    tls.setDefaultCACertificates(systemCertificates());
    const knownForMailauth = known === null ? null : { ...known, expires: new Date(known.expires).toISOString(), mx: [...known.mx] };
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('policy fetch timed out')), opts.timeoutMs + 1000);
    });
    const result = await Promise.race([
      getPolicy(domain, knownForMailauth, { resolver: mailauthResolver(opts.resolver), timeout: opts.timeoutMs }),
      bound,
    ]);
    const policy = fromMailauth(result.policy);
    const error = result.policy.error;
    if (policy !== null) cache?.write(policy);
    if (result.status === 'errored') {
      const code = (error as { code?: string } | undefined)?.code ?? '';
      const failure = /^invalid_sts|policy_too_large/.test(code) ? 'sts-policy-invalid' : 'sts-policy-fetch-error';
      return { policy: policy && usable(policy), source: 'errored', error: describeCause(error), failure };
    }
    return { policy: policy && usable(policy), source: result.status === 'found' ? 'fetched' : result.status === 'renewed' ? 'cached' : 'none' };
  } catch (error) {
    const fallback = known !== null && known.mode !== 'none' ? known : null;
    return { policy: fallback, source: 'errored', error: describeCause(error), failure: 'sts-policy-fetch-error' };
  } finally {
    clearTimeout(timer);
  }
}

/** mailauth asks `resolver(name, type)` like dns.promises.resolve. */
function mailauthResolver(resolver: StsResolver): (name: string, type: string) => Promise<string[] | string[][]> {
  return (name, type) => {
    if (type === 'TXT') return resolver.resolveTxt(name);
    if (type === 'A') return resolver.resolve4(name);
    if (type === 'AAAA') return resolver.resolve6(name);
    return Promise.reject(Object.assign(new Error(`no ${type} queries here`), { code: 'ENODATA' }));
  };
}

/** A policy as mailauth returns it, or as the cache holds it, checked field by field. */
function fromMailauth(raw: unknown): StsPolicy | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const p = raw as Record<string, unknown>;
  const id = p.id;
  const mode = p.mode;
  const expires = typeof p.expires === 'number' ? p.expires : Date.parse(String(p.expires));
  const maxAge = typeof p.maxAge === 'number' ? p.maxAge : 0;
  const mx = Array.isArray(p.mx) ? p.mx : [];
  if (typeof id !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(id)) return null;
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return null;
  if (!Number.isFinite(expires) || !(maxAge >= 0 && maxAge <= MAX_AGE_LIMIT_S)) return null;
  if (mx.length > 1000 || !mx.every((m): m is string => typeof m === 'string' && /^(\*\.)?[a-z0-9._-]{1,253}$/.test(m))) return null;
  return { id, mode, mx, expires, maxAge };
}

/**
 * Whether an MX host name is one the policy lists (RFC 8461 §4.1): equal, or `*.` matching
 * exactly one left-most label. The same rule as mailauth's validateMx(), which is not loaded
 * for a cached policy (test/delivery/mta-sts.test.ts holds the two together).
 */
export function mxAllowed(mx: string, policy: StsPolicy): boolean {
  const host = domainToASCII(mx.trim().replace(/\.$/, '')).toLowerCase();
  if (host === '' || host.includes('*')) return false;
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === host;
    const suffix = pattern.slice(1);
    const label = host.slice(0, host.length - suffix.length);
    return host.length > suffix.length && host.endsWith(suffix) && !label.includes('.');
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** $QMAILHOME/mta-sts/<domain>.json and its lock; every failure is "no cache", never an error. */
class PolicyCache {
  private readonly file: string;
  private readonly lockFile: string;
  private locked = false;

  constructor(dir: string, domain: string) {
    this.file = join(dir, `${domain}.json`);
    this.lockFile = join(dir, `${domain}.lock`);
  }

  read(): StsPolicy | null {
    try {
      return fromMailauth(JSON.parse(readBounded(this.file, MAX_CACHE_BYTES).toString('utf8')));
    } catch {
      return null;
    }
  }

  write(policy: StsPolicy): void {
    const temp = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(temp, JSON.stringify(policy), { mode: 0o600, flag: 'w' });
      renameSync(temp, this.file);
    } catch {
      try {
        unlinkSync(temp);
      } catch {
        // nothing was written
      }
    }
  }

  /** true when this process now holds the lock, or when there is no directory to lock in. */
  lock(staleMs: number): boolean {
    try {
      closeSync(openSync(this.lockFile, 'wx', 0o600));
      this.locked = true;
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') return true; // no directory, or not ours to write: fetch alone
    }
    try {
      if (Date.now() - statSync(this.lockFile).mtimeMs > staleMs) unlinkSync(this.lockFile);
    } catch {
      // gone already
    }
    return false;
  }

  unlock(): void {
    if (!this.locked) return;
    this.locked = false;
    try {
      unlinkSync(this.lockFile);
    } catch {
      // a stale-lock breaker removed it
    }
  }
}
