// `qmail-remote-dkim keys rotate DOMAIN` (docs/keys.md, "Rotate"): a new key beside the one
// that signs DOMAIN now, switched to only once DNS serves its record, so no receiver ever
// fetches a record that does not match what it checks.
//
// First run: the new key is made (selector `--selector`, else `sYYYYMMDD`), and its name kept in
// `.rotate-<old selector>` beside the old key, so that a run again reuses it rather than making
// another. Every run prints the record and checks it at the domain's authoritative name servers
// (or the one server named); when each serves it exactly, control/dkimkeys is written to use the
// new key for DOMAIN (made from control/dksign when there is no table yet, with the same
// effect for every other domain) and the old key is left in place, its record to be withdrawn
// once no mail signed with it can still be queued.
import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { readControlLines } from '../common/control.ts';
import { dnsFailure } from '../common/dns.ts';
import { parentDomains } from '../mail/domain.ts';
import { chooseKeys, type ChosenKey } from '../signing/choose.ts';
import { loadSignConfig } from '../signing/config.ts';
import { parseKey, type KeyType } from '../signing/keys.ts';
import { linesFor, type SigningTable, type TableLine } from '../signing/table.ts';
import { auditResolver, checkDns, type Finding, type KeyEntry } from './audit.ts';
import { bindRecord, keyRecord } from './key-record.ts';
import { checkKeySpec, generateKey, writeKeyFile } from './keygen.ts';

export interface RotateOptions {
  readonly controlDir: string;
  readonly domain: string;
  readonly qmailHome: string;
  /** Check the record at this server only; else at the domain's authoritative servers. */
  readonly dnsServer?: string;
  readonly selector?: string;
  readonly type?: KeyType;
  readonly bits?: number;
  /** Seconds since the epoch. */
  readonly now: number;
  readonly groupFile?: string;
}

export type RotateOutcome =
  | { readonly status: 'switched' | 'waiting' | 'problem' | 'temporary'; readonly lines: readonly string[] };

const DEFAULT_QUEUE_LIFETIME = 604800;

export async function rotate(options: RotateOptions): Promise<RotateOutcome> {
  const config = loadSignConfig(options.controlDir);
  if (!config.ok) return { status: 'temporary', lines: [`cannot read ${options.controlDir}`] };
  const choice = chooseKeys(options.domain, config.value);
  if (!choice.ok) return { status: 'problem', lines: [choice.error.cause ?? choice.error.code] };
  const current = choice.value.keys[0];
  if (current === undefined) return { status: 'problem', lines: [`no key signs ${options.domain} now: nothing to rotate (make one with keygen)`] };

  const pending = pendingKey(current, options);
  if (!pending.ok) return { status: 'problem', lines: [pending.reason] };
  const { path, selector, key, made } = pending;
  const name = `${selector}._domainkey.${current.key.domain}`;
  const lines = [
    `${made ? 'made' : 'kept'} the new key ${path}; publish:`,
    bindRecord(`${name}.`, keyRecord(key)).trimEnd(),
  ];

  const served = await servedEverywhere(name, current.key.domain, selector, key, options.dnsServer);
  if (served.status !== 'served') return { status: served.status, lines: [...lines, ...served.lines, `not switched: run this again once ${name} is served`] };

  const written = switchTo(config.value.table ?? null, config.value.templates, options, current, path);
  if (!written.ok) return { status: 'problem', lines: [...lines, written.reason] };
  unlinkQuietly(stateFile(current));
  const lifetime = queueLifetime(options.controlDir);
  const until = new Date((options.now + lifetime + 86400) * 1000).toISOString().slice(0, 10);
  return {
    status: 'switched',
    lines: [
      ...lines,
      ...served.lines,
      `switched ${options.domain} to ${selector} in ${written.file}`,
      `keep ${current.key.selector}._domainkey.${current.key.domain} published until ${until} (the queue lifetime and a day), then withdraw it; ${current.key.path} stays until then`,
    ],
  };
}

/** The file that names the key being rotated in. */
const stateFile = (current: ChosenKey): string => join(dirname(current.key.path), `.rotate-${current.key.selector}`);

type Pending = { ok: true; path: string; selector: string; key: KeyObject; made: boolean } | { ok: false; reason: string };

/** The key named in the state file, or a new one. */
function pendingKey(current: ChosenKey, options: RotateOptions): Pending {
  const state = stateFile(current);
  if (existsSync(state)) {
    const selector = readFileSync(state, 'latin1').trim();
    const path = join(dirname(current.key.path), selector);
    const parsed = existsSync(path) ? parseKey(readFileSync(path)) : 'missing';
    if (typeof parsed === 'string') return { ok: false, reason: `${state} names ${path}, which is not a usable key (${parsed}): remove ${state} to start again` };
    return { ok: true, path, selector, key: parsed.key, made: false };
  }
  const selector = options.selector ?? `s${new Date(options.now * 1000).toISOString().slice(0, 10).replaceAll('-', '')}`;
  if (selector === current.key.selector) return { ok: false, reason: `the new selector is the current one (${selector}): choose another with --selector` };
  const spec = checkKeySpec(options.type ?? current.key.type, options.bits);
  if (!spec.ok) return { ok: false, reason: spec.reason };
  const path = join(dirname(current.key.path), selector);
  const generated = generateKey(spec.spec);
  const written = writeKeyFile(path, generated.pem, options.groupFile ? { groupFile: options.groupFile } : {});
  if (!written.ok) return { ok: false, reason: `${path}: ${written.reason}` };
  writeFileSync(state, `${selector}\n`, { mode: 0o640 });
  return { ok: true, path, selector, key: generated.key, made: true };
}

interface Served {
  readonly status: 'served' | 'waiting' | 'temporary';
  readonly lines: string[];
}

/** Whether every server to ask serves the record of `key` at `name`, exactly. */
async function servedEverywhere(name: string, domain: string, selector: string, key: KeyObject, dnsServer?: string): Promise<Served> {
  const servers = dnsServer !== undefined ? [dnsServer] : await authoritativeServers(domain);
  if (servers.length === 0) return { status: 'temporary', lines: [`cannot find the name servers of ${domain}: name one with --dns`] };
  const lines: string[] = [];
  let status: Served['status'] = 'served';
  for (const server of servers) {
    const resolver = auditResolver(server);
    if (resolver === null) return { status: 'temporary', lines: [`not a DNS server address: ${server}`] };
    const entry: KeyEntry = { path: '', template: '', domain, selector, findings: [] };
    await checkDns(resolver, entry, key);
    const problems = entry.findings.filter((f: Finding) => f.severity === 'problem');
    if (problems.length === 0) lines.push(`ok: ${server} serves ${name}`);
    for (const p of problems) {
      lines.push(`${server}: ${p.message}`);
      if (status === 'served') status = p.code === 'dns-error' ? 'temporary' : 'waiting';
    }
  }
  return { status, lines };
}

/** The addresses of the name servers of the zone `domain` is in (its NS records, or a parent's). */
async function authoritativeServers(domain: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  for (const zone of parentDomains(domain)) {
    let hosts: string[];
    try {
      hosts = await resolver.resolveNs(zone);
    } catch (error) {
      if (dnsFailure(error) === 'none') continue;
      return [];
    }
    const addresses = await Promise.all(hosts.slice(0, 13).map((host) => resolver.resolve4(host).catch(() => [] as string[])));
    return [...new Set(addresses.flat())];
  }
  return [];
}

/**
 * control/dkimkeys with DOMAIN's lines using the new key where they used the old one: the lines
 * that chose DOMAIN's keys are copied as DOMAIN's own (a `*` or parent line stays for the
 * rest); without a table, one is made from control/dksign that signs every other domain as
 * before. Returns the file written, or why not.
 */
function switchTo(
  table: SigningTable | null,
  templates: readonly string[],
  options: RotateOptions,
  current: ChosenKey,
  newPath: string,
): { ok: true; file: string } | { ok: false; reason: string } {
  const file = join(options.controlDir, 'dkimkeys');
  const chosen = chooseKeys(options.domain, { templates, ...(table ? { table } : {}), qmailHome: options.qmailHome });
  if (!chosen.ok) return { ok: false, reason: chosen.error.cause ?? chosen.error.code };
  const own = chosen.value.keys.map((k) => `${options.domain}:${k.key.path === current.key.path ? newPath : k.key.path}${optionText(k, table)}`);
  const text = table
    ? withOwnLines(readFileSync(file, 'latin1'), table, options.domain, own)
    : [
        '# made by qmail-remote-dkim keys rotate from control/dksign, which is no longer read',
        ...own,
        ...templates.map((template) => `*:${absolute(template, options.qmailHome)}`),
      ].join('\n') + '\n';
  const temp = `${file}.rotate-${process.pid}`;
  try {
    writeFileSync(temp, text, { mode: 0o644 });
    renameSync(temp, file);
  } catch (error) {
    unlinkQuietly(temp);
    return { ok: false, reason: `cannot write ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  return { ok: true, file };
}

/** The options of the table line a key came from, written back; none from dksign. */
function optionText(chosen: ChosenKey, table: SigningTable | null): string {
  const number = /line (\d+)$/.exec(chosen.source)?.[1];
  const line = table?.find((l) => String(l.number) === number);
  return line ? lineOptions(line) : '';
}

/**
 * The file as it was, comments and other domains' lines included, with DOMAIN's own lines (if
 * it had any) replaced by `own`, where the first of them was; else `own` goes first.
 */
function withOwnLines(raw: string, table: SigningTable, domain: string, own: readonly string[]): string {
  const matched = linesFor(table, domain);
  const numbers = new Set(matched?.matched === domain ? matched.lines.map((line) => line.number) : []);
  const lines = raw.replace(/\n$/, '').split('\n');
  const first = numbers.size > 0 ? Math.min(...numbers) : 1;
  const out: string[] = [];
  lines.forEach((line, index) => {
    if (index + 1 === first) out.push(...own);
    if (!numbers.has(index + 1)) out.push(line);
  });
  if (lines.length < first) out.push(...own);
  return `${out.join('\n')}\n`;
}

function lineOptions(line: TableLine): string {
  const o = line.options;
  const parts = [
    o.algorithm, o.dk === false ? 'dk=no' : undefined, o.expireAfter !== undefined ? `x=${o.expireAfter}` : undefined,
    o.identity !== undefined ? `i=${o.identity}` : undefined, o.oversign ? `oversign=${o.oversign.join(':')}` : undefined,
    o.d !== undefined ? `d=${o.d}` : undefined, o.nosign ? 'nosign' : undefined,
  ].filter((part): part is string => part !== undefined);
  return parts.length > 0 ? `:${parts.join(',')}` : '';
}

const absolute = (path: string, home: string): string => (isAbsolute(path) ? path : resolve(home, path));

function queueLifetime(controlDir: string): number {
  const lines = readControlLines(controlDir, 'queuelifetime');
  const value = lines.ok && lines.value ? Number(lines.value[0]) : NaN;
  return Number.isInteger(value) && value > 0 ? value : DEFAULT_QUEUE_LIFETIME;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
