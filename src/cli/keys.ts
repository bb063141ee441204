// `qmail-remote-dkim keys`: the key audit (src/keys/audit.ts) for a person or for monitoring. Exit 0
// when nothing is wrong, 1 when there is a problem (warnings alone do not count), 100 for bad
// usage, 111 when control/dksign cannot be read. --json prints one document and nothing else
// on stdout; the human form ends with a one-line summary such as `3 keys, 1 problem`.
import { controlDir } from '../common/control.ts';
import { loadSignConfig } from '../signing/config.ts';
import { isAbsolute, resolve } from 'node:path';
import { auditKeys, auditResolver, type AuditReport, type Finding, type KeyEntry } from '../keys/audit.ts';
import { keyDomain, type SigningTable } from '../signing/table.ts';
import { auditForwarding, type ForwardingAudit } from '../keys/forwarding.ts';
import { emit, say } from './output.ts';
import { EXIT_OK, EXIT_PROBLEMS, EXIT_TEMPORARY, EXIT_USAGE } from './exit-codes.ts';

/** Fewer keys than this finish before a progress line would help. */
const PROGRESS_MIN_KEYS = 50;
const PROGRESS_STEPS = 10;

export interface KeysArgs {
  control?: string;
  dns?: string;
  json?: boolean;
  /** The accounts files to find qmailr and group qmail in, instead of the system's. */
  passwd?: string;
  group?: string;
}

export async function keysCommand(args: KeysArgs): Promise<number> {
  const dir = args.control ?? controlDir();
  const config = loadSignConfig(dir);
  if (!config.ok) {
    say(`qmail-remote-dkim keys: cannot read ${dir}/dksign`);
    return EXIT_TEMPORARY;
  }
  if (args.dns !== undefined && !validServer(args.dns)) {
    say(`qmail-remote-dkim keys: --dns takes an IP address, optionally with a port (127.0.0.1:53, [::1]:53): ${JSON.stringify(args.dns)}`);
    return EXIT_USAGE;
  }
  const table = config.value.table;
  const fromTable = table ? tableKeys(table, config.value.qmailHome) : null;
  const audited = await auditKeys({
    ...config.value,
    ...(fromTable ?? {}),
    ...(args.dns !== undefined ? { dnsServer: args.dns } : {}),
    ...(args.passwd !== undefined ? { passwdFile: args.passwd } : {}),
    ...(args.group !== undefined ? { groupFile: args.group } : {}),
    // Only the DNS lookups take long enough for a progress line to help.
    ...(process.stderr.isTTY && args.dns !== undefined ? { onProgress: progress } : {}),
  });
  const forwarding = auditForwarding(dir, config.value.templates, config.value.qmailHome, table);
  const report = withForwarding(audited, [...forwarding.findings, ...tableProblems(table)]);
  await emit(args.json ? `${JSON.stringify(jsonReport(dir, report, forwarding.sealingKey), null, 2)}\n` : humanReport(dir, fromTable?.templates ?? config.value.templates, report, forwarding));
  return report.problems > 0 ? EXIT_PROBLEMS : EXIT_OK;
}

function withForwarding(report: AuditReport, findings: AuditReport['findings']): AuditReport {
  return {
    ...report,
    findings: [...report.findings, ...findings],
    problems: report.problems + findings.filter((f) => f.severity === 'problem').length,
    warnings: report.warnings + findings.filter((f) => f.severity === 'warning').length,
  };
}

/** The keys control/dkimkeys names, as templates for the audit, with the domain of each fixed path. */
function tableKeys(table: SigningTable, qmailHome: string): { templates: string[]; domainsOf: Map<string, string> } {
  const usable = table.filter((line) => line.problem === undefined && !line.options.nosign);
  const domainsOf = new Map<string, string>();
  for (const line of usable) {
    if (line.keypath.includes('%') || (line.domain === '*' && line.options.d === undefined)) continue;
    domainsOf.set(resolve(isAbsolute(line.keypath) ? line.keypath : resolve(qmailHome, line.keypath)), keyDomain(line, line.domain));
  }
  return { templates: usable.map((line) => line.keypath), domainsOf };
}

function tableProblems(table: SigningTable | undefined): Finding[] {
  return (table ?? []).flatMap((line) =>
    line.problem === undefined ? [] : [{ severity: 'problem' as const, code: 'dkimkeys-line', message: `control/dkimkeys line ${line.number}: ${line.problem} (mail for ${line.domain} waits)` }],
  );
}

function validServer(server: string): boolean {
  return auditResolver(server) !== null;
}

/** A line at every tenth of the way, and only when there are many keys to go through. */
function progress(done: number, total: number): void {
  if (total < PROGRESS_MIN_KEYS || done === total) return;
  const step = Math.ceil(total / PROGRESS_STEPS);
  if (done % step === 0) say(`checked ${done} of ${total} keys…`);
}

/** `sealing`: the key file that ARC-seals forwards, if any. */
function jsonReport(dir: string, report: AuditReport, sealing: string | null) {
  return {
    control: dir,
    keys: report.keys.map((entry) => ({
      domain: entry.domain, selector: entry.selector, path: entry.path, template: entry.template,
      type: entry.type, bits: entry.bits, owner: entry.owner, group: entry.group, mode: entry.mode,
      dns: entry.dns, findings: entry.findings, seals: entry.path === sealing,
    })),
    odd: report.odd,
    findings: report.findings,
    summary: { keys: report.keys.length, problems: report.problems, warnings: report.warnings },
  };
}

function humanReport(dir: string, templates: readonly string[], report: AuditReport, forwarding: ForwardingAudit): string {
  const lines: string[] = [];
  if (templates.length === 0) lines.push(`${dir}/dksign names no keys: nothing is signed`);
  for (const finding of report.findings) lines.push(`${finding.severity}: ${printable(finding.message)}`);
  for (const entry of report.keys) lines.push(...keyLines(entry, entry.path === forwarding.sealingKey));
  for (const note of forwarding.notes) lines.push(`note: ${printable(note)}`);
  for (const odd of report.odd) lines.push(`problem: ${printable(odd.path)}: ${odd.reason}`);
  lines.push(summary(report));
  return `${lines.join('\n')}\n`;
}

function keyLines(entry: KeyEntry, seals: boolean): string[] {
  const algorithm = entry.type ? `${entry.type} ${entry.bits ?? '?'}` : '?';
  const owner = entry.owner !== undefined ? `${entry.owner}:${entry.group ?? '?'} ${entry.mode ?? '?'}` : '?';
  const lines = [`${entry.domain ?? '(any domain)'} ${entry.selector} ${algorithm} ${owner} ${printable(entry.path)}`];
  if (seals) lines.push('  seals forwarded mail (ARC), for control/me');
  for (const finding of entry.findings) lines.push(`  ${finding.severity}: ${printable(finding.message)}`);
  if (entry.dns && !entry.findings.some((f) => f.code.startsWith('dns-'))) lines.push(`  ok: ${entry.dns.name} publishes this key`);
  return lines;
}

export function summary(report: AuditReport): string {
  const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  const parts = [count(report.keys.length, 'key'), count(report.problems, 'problem')];
  if (report.warnings > 0) parts.push(count(report.warnings, 'warning'));
  return parts.join(', ');
}

/** Names found on disk can hold control characters; show them escaped, never raw on a terminal. */
function printable(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    out += code < 0x20 || (code >= 0x7f && code < 0xa0) ? `\\x${code.toString(16).padStart(2, '0')}` : char;
  }
  return out;
}
