// The key audit behind `qmail-remote-dkim keys`: every key file the control/dksign templates
// can reach, and what is wrong with each — who can read it, who could replace it, whether it
// is a key at all, and (with a DNS server) whether the published record matches it.
//
// What it trusts: the templates (the administrator wrote them) and nothing found on disk. The
// search pattern is the template with `%` as `*` and every other glob character escaped; a
// name the `*` matched is taken only if it is exactly a domain qmail-remote-dkim could look up
// (lowercase LDH labels, src/mail/domain.ts), and never goes into another pattern, so a directory
// called `*` or `{a,b}` can neither widen the search nor crash it. Key bytes never leave here.
import fg from 'fast-glob';
import { readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import type { Resolver } from 'node:dns/promises';
import { makeResolver } from '../common/dns.ts';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { canonicalDomain } from '../mail/domain.ts';
import { isSelector, parseKey, type KeyType } from '../signing/keys.ts';
import { parseKeyRecord, publicKeyData, recordMismatch } from './key-record.ts';
import { WEAK_RSA_BITS, QMAIL_GROUP, QMAIL_REMOTE_USER } from './policy.ts';
import { dnsFailure } from '../common/dns.ts';
import {
  findGroup, findUser, groupIds, groupName, readAccounts, userName, GROUP_FILE, PASSWD_FILE, type Accounts,
} from './accounts.ts';

const DNS_TIMEOUT_MS = 3000;
const DNS_TRIES = 2;
/** Lookups in flight at once: enough for thousands of domains, little load on the server. */
const DNS_CONCURRENCY = 8;

export type Severity = 'problem' | 'warning';

export interface Finding {
  readonly severity: Severity;
  /** Stable, for monitoring: e.g. other-readable, short-key, dns-mismatch. */
  readonly code: string;
  readonly message: string;
}

export interface KeyEntry {
  readonly path: string;
  readonly template: string;
  /** What `%` stood for; null for a template without `%` (one key for every domain). */
  readonly domain: string | null;
  readonly selector: string;
  type?: KeyType;
  bits?: number;
  owner?: string;
  group?: string;
  /** Permission bits in octal, e.g. "0640". */
  mode?: string;
  /** The TXT record looked up, and what it said. */
  dns?: { name: string; record?: string };
  readonly findings: Finding[];
}

/** Something the template's `*` matched that qmail-remote-dkim would never look up. */
export interface OddEntry {
  readonly path: string;
  readonly template: string;
  readonly reason: string;
}

export interface AuditReport {
  readonly keys: KeyEntry[];
  readonly odd: OddEntry[];
  /** About the whole run rather than one key. */
  readonly findings: Finding[];
  readonly problems: number;
  readonly warnings: number;
}

export interface AuditOptions {
  readonly templates: readonly string[];
  readonly qmailHome: string;
  readonly passwdFile?: string;
  readonly groupFile?: string;
  /** The user qmail-remote runs as, and its group. */
  readonly user?: string;
  readonly group?: string;
  /** "ADDRESS" or "ADDRESS:PORT": check each key's record there. */
  readonly dnsServer?: string;
  /** The domain of a key path without `%` (a control/dkimkeys line for one domain), by absolute path. */
  readonly domainsOf?: ReadonlyMap<string, string>;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Who must be able to read the keys: uid -1 stands for "any member of the group". */
interface Reader {
  readonly name: string;
  readonly uid: number;
  readonly gids: ReadonlySet<number>;
}

export async function auditKeys(options: AuditOptions): Promise<AuditReport> {
  const accounts = readAccounts(options.passwdFile ?? PASSWD_FILE, options.groupFile ?? GROUP_FILE);
  const findings: Finding[] = [];
  const reader = findReader(accounts, options, findings);
  const resolver = options.dnsServer === undefined ? undefined : (auditResolver(options.dnsServer) ?? undefined);
  const { candidates, odd } = await findKeys(options, findings);
  const dirs = new Map<string, Stats | null>();
  const keys: KeyEntry[] = [];
  const parsed = new Map<KeyEntry, KeyObject>();
  for (const candidate of candidates) {
    const { entry, key } = inspectKey(candidate, accounts, reader, dirs);
    keys.push(entry);
    if (key) parsed.set(entry, key);
  }
  let done = 0;
  await eachLimited(keys, DNS_CONCURRENCY, async (entry) => {
    if (resolver && entry.domain !== null) await checkDns(resolver, entry, parsed.get(entry));
    options.onProgress?.(++done, keys.length);
  });
  const all = [...findings, ...keys.flatMap((entry) => entry.findings)];
  return {
    keys,
    odd,
    findings,
    problems: all.filter((f) => f.severity === 'problem').length + odd.length,
    warnings: all.filter((f) => f.severity === 'warning').length,
  };
}

function findReader(accounts: Accounts, options: AuditOptions, findings: Finding[]): Reader | null {
  const userLabel = options.user ?? QMAIL_REMOTE_USER;
  const groupLabel = options.group ?? QMAIL_GROUP;
  const user = findUser(accounts, userLabel);
  if (user) return { name: `user ${user.name}`, uid: user.uid, gids: groupIds(accounts, user) };
  const group = findGroup(accounts, groupLabel);
  const where = options.passwdFile ?? PASSWD_FILE;
  if (group) {
    findings.push(warning('no-qmailr', `no ${userLabel} user in ${where}: checking that group ${groupLabel} can read the keys instead`));
    return { name: `group ${group.name}`, uid: -1, gids: new Set([group.gid]) };
  }
  findings.push(warning('no-qmailr', `no ${userLabel} user in ${where} and no ${groupLabel} group: cannot check that qmail-remote can read the keys`));
  return null;
}

interface Candidate {
  readonly path: string;
  readonly template: string;
  readonly domain: string | null;
}

async function findKeys(options: AuditOptions, findings: Finding[]): Promise<{ candidates: Candidate[]; odd: OddEntry[] }> {
  const candidates: Candidate[] = [];
  const odd: OddEntry[] = [];
  const seen = new Set<string>();
  const templates = new Set(options.templates.map((line) => resolve(isAbsolute(line) ? line : resolve(options.qmailHome, line))));
  for (const template of templates) {
    let found = false;
    const take = (path: string, domain: string | null): void => {
      found = true;
      // Two lines naming the same file sign once (src/signing/sign.ts); list it once.
      if (!seen.has(path)) candidates.push({ path, template, domain });
      seen.add(path);
    };
    if (!template.includes('%')) {
      if (exists(template)) take(template, options.domainsOf?.get(template) ?? null);
    } else {
      for (const path of await globTemplate(template, findings)) {
        const match = matchTemplate(template, path);
        if (typeof match === 'string') odd.push({ path, template, reason: match });
        else take(path, match.domain);
      }
    }
    if (!found) findings.push(warning('no-keys', `no key files for the dksign line ${template}`));
  }
  return { candidates, odd };
}

/** What the template could name: `%` as `*`, everything else literal. */
async function globTemplate(template: string, findings: Finding[]): Promise<string[]> {
  const pattern = template.split('%').map((part) => fg.escapePath(part)).join('*');
  try {
    // dot: a hidden entry is still something `%` could match, so it is reported, not hidden.
    const paths = await fg(pattern, { dot: true, onlyFiles: false, followSymbolicLinks: true, unique: true });
    return paths.sort();
  } catch (error) {
    findings.push(problem('search-failed', `cannot search for keys of ${template} (${(error as NodeJS.ErrnoException).code ?? 'error'})`));
    return [];
  }
}

/** The domain `path` is the key of under `template`, or why qmail-remote-dkim would never read it. */
export function matchTemplate(template: string, path: string): { domain: string } | string {
  const parts = template.split('%').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const match = new RegExp(`^${parts.join('([^/]*)')}$`, 's').exec(path);
  if (!match) return 'does not fit the dksign line';
  const names = new Set(match.slice(1));
  if (names.size !== 1) return 'the parts standing for % differ';
  const name = match[1] ?? '';
  const domain = canonicalDomain(name);
  if (domain === null) return 'not a domain name: never used';
  if (domain !== name) return `never used: keys are looked up as ${domain}`;
  return { domain };
}

function inspectKey(candidate: Candidate, accounts: Accounts, reader: Reader | null, dirs: Map<string, Stats | null>): { entry: KeyEntry; key?: KeyObject } {
  const selector = basename(candidate.path);
  const entry: KeyEntry = { ...candidate, selector, findings: [] };
  const add = (finding: Finding): void => void entry.findings.push(finding);
  if (!isSelector(selector)) add(problem('bad-selector', `${JSON.stringify(selector)} is not a valid selector: the key is refused`));
  let st: Stats;
  try {
    st = statSync(candidate.path);
  } catch (error) {
    add(problem('missing', `cannot reach the file (${(error as NodeJS.ErrnoException).code ?? 'error'}): a broken link?`));
    return { entry };
  }
  entry.owner = userName(accounts, st.uid);
  entry.group = groupName(accounts, st.gid);
  entry.mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (!st.isFile()) {
    add(problem('not-a-file', 'not a regular file: mail from this domain would stay queued'));
    return { entry };
  }
  checkPermissions(entry, st, reader, add);
  checkDirectories(candidate.path, reader, dirs, add);
  const key = readKeyFile(candidate.path, add);
  if (!key) return { entry };
  entry.type = key.type;
  entry.bits = key.bits;
  if (key.type === 'rsa' && key.bits < WEAK_RSA_BITS) {
    add(problem('short-key', `${key.bits}-bit RSA: below ${WEAK_RSA_BITS} bits verifiers may ignore the signature (RFC 8301)`));
  }
  return { entry, key: key.key };
}

function checkPermissions(entry: KeyEntry, st: Stats, reader: Reader | null, add: (f: Finding) => void): void {
  const mode = entry.mode ?? '';
  if (st.mode & 0o004) add(problem('other-readable', `readable by others (mode ${mode}): anyone on this host can sign as this domain`));
  if (st.mode & 0o002) add(problem('other-writable', `writable by others (mode ${mode})`));
  if (reader && !canAccess(st, reader, 0o4)) {
    add(problem('qmailr-cannot-read', `${reader.name} cannot read it (${entry.owner}:${entry.group} ${mode}): mail would stay queued`));
  }
}

/** OpenDKIM's RequireSafeKeys, for every directory up to /; and qmailr must be able to pass them. */
function checkDirectories(path: string, reader: Reader | null, dirs: Map<string, Stats | null>, add: (f: Finding) => void): void {
  let dir = dirname(realPath(path));
  for (;;) {
    if (!dirs.has(dir)) dirs.set(dir, statOrNull(dir));
    const st = dirs.get(dir);
    if (st) {
      // With the sticky bit (/tmp) others may add entries but not replace ours.
      if (st.mode & 0o002 && !(st.mode & 0o1000)) add(problem('unsafe-directory', `${dir} is writable by others: anyone could replace the key`));
      if (reader && !canAccess(st, reader, 0o1)) add(problem('qmailr-cannot-reach', `${reader.name} cannot enter ${dir}`));
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

function readKeyFile(path: string, add: (f: Finding) => void): { type: KeyType; bits: number; key: KeyObject } | undefined {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    add(problem('unreadable', `cannot read it here (${(error as NodeJS.ErrnoException).code ?? 'error'}): run the audit as root`));
    return undefined;
  }
  const parsed = parseKey(pem);
  if (typeof parsed === 'string') {
    add(problem('unparseable', `${parsed}: mail from this domain would stay queued`));
    return undefined;
  }
  return parsed;
}

/** POSIX access: the owner's bits for the owner, else the group's for a member, else the others'. */
function canAccess(st: Stats, reader: Reader, bit: number): boolean {
  if (reader.uid === 0) return true;
  if (st.uid === reader.uid) return ((st.mode >> 6) & bit) !== 0;
  if (reader.gids.has(st.gid)) return ((st.mode >> 3) & bit) !== 0;
  return (st.mode & bit) !== 0;
}

/** Looks up the record of `entry`'s key and adds what is wrong with it to its findings. */
export async function checkDns(resolver: Resolver, entry: KeyEntry, key: KeyObject | undefined): Promise<void> {
  const name = `${entry.selector}._domainkey.${entry.domain}`;
  const add = (finding: Finding): void => void entry.findings.push(finding);
  entry.dns = { name };
  let records: string[];
  try {
    // A record split into several strings is one value (RFC 6376 §3.6.2.2).
    records = (await resolver.resolveTxt(name)).map((strings) => strings.join(''));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (dnsFailure(error) === 'none') add(problem('dns-missing', `no TXT record at ${name}: publish it, or verifiers fail every signature`));
    else add(problem('dns-error', `lookup of ${name} failed (${code})`));
    return;
  }
  const [text] = records;
  if (text === undefined) return add(problem('dns-missing', `no TXT record at ${name}`));
  entry.dns.record = text;
  if (records.length > 1) add(problem('dns-several', `${records.length} TXT records at ${name}: verifiers may use any of them (RFC 6376 §3.6.2.2)`));
  const record = parseKeyRecord(text);
  if (typeof record === 'string') return add(problem('dns-syntax', `${name} is not a DKIM key record: ${record}`));
  if (record.flags.includes('y')) add(warning('dns-testing', `${name} is in testing mode (t=y): verifiers treat failures as unsigned mail`));
  if (!record.services.includes('*') && !record.services.includes('email')) add(problem('dns-service', `${name} is not for email (s=)`));
  if (record.hashes !== null && !record.hashes.includes('sha256')) add(problem('dns-hash', `${name} does not allow sha256 (h=)`));
  if (record.p === '') return add(problem('dns-revoked', `${name} is revoked (empty p=) but this key still signs`));
  if (!key) return;
  const mine = publicKeyData(key).k;
  if (record.k !== mine) return add(problem('dns-key-type', `${name} has k=${record.k} but the key is ${mine}`));
  const mismatch = recordMismatch(record, key);
  if (mismatch) add(problem('dns-mismatch', `${name}: ${mismatch}`));
}

async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function exists(path: string): boolean {
  return statOrNull(path) !== null;
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export const problem = (code: string, message: string): Finding => ({ severity: 'problem', code, message });
const warning = (code: string, message: string): Finding => ({ severity: 'warning', code, message });

/** A Resolver asking only `server`, or null if it is not an address (with an optional port). */
export function auditResolver(server: string): Resolver | null {
  return makeResolver({ servers: [server], timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
}
