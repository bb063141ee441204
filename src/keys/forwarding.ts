// What the key audit says about forwarded mail (docs/signing.md, "Forwarded mail"): which key
// ARC-seals forwards (control/dksign's first line for control/me's domain, as src/signing/seal.ts
// finds it; its DNS record is checked with the other keys), and whether control/entrykey, the
// secret that tells a forward from local mail, is there and unreadable by other users.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { readControlLine } from '../common/control.ts';
import { ENTRY_KEY_FILE } from '../mail/entry-mark.ts';
import { sealingKey } from '../signing/seal.ts';
import type { SigningTable } from '../signing/table.ts';
import { problem, type Finding } from './audit.ts';

export interface ForwardingAudit {
  /** The key file that seals forwards, or null when none does. */
  readonly sealingKey: string | null;
  /** Problems only: a site that receives no mail needs neither the entry key nor a seal. */
  readonly findings: Finding[];
  /** How forwards are treated here, a line each, for the human report; none without control/entrykey. */
  readonly notes: string[];
}

export function auditForwarding(controlDir: string, templates: readonly string[], qmailHome: string, table?: SigningTable): ForwardingAudit {
  const findings: Finding[] = [];
  const notes: string[] = [];
  const entryKey = join(controlDir, ENTRY_KEY_FILE);
  let stat;
  try {
    stat = lstatSync(entryKey);
  } catch {
    // No entry key: this site does not tell forwards from local mail, and nothing more is said.
    return { sealingKey: null, findings, notes };
  }
  if (!stat.isFile()) findings.push(problem('entry-key-not-file', `${entryKey} is not a regular file`));
  else if ((stat.mode & 0o007) !== 0) findings.push(problem('entry-key-readable', `${entryKey} is open to other users, who could mark a spoof as authenticated: chmod 0440`));
  const me = readControlLine(controlDir, 'me');
  const domain = me.ok ? me.value : null;
  if (!domain) return { sealingKey: null, findings, notes };
  const key = sealingKey(templates, domain, qmailHome, table);
  if (key.kind === 'found') return { sealingKey: key.key.path, findings, notes };
  if (key.kind === 'error') findings.push(problem('sealing-key-unusable', `the ARC sealing key ${key.path}: ${key.reason}`));
  else notes.push(`no key for ${domain} (control/me) or its parent domains: forwarded mail is not ARC-sealed`);
  return { sealingKey: null, findings, notes };
}
