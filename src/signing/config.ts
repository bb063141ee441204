// The signing settings of one run, from the control directory: control/dksign holds one key
// path template per line (docs/qmail-remote.md §7); control/dkimkeys, when present, is the
// signing table read instead (table.ts); neither file means nothing is signed.
import { controlDir, qmailHome, readControl, readControlLines } from '../common/control.ts';
import { ok, type Result } from '../common/failures.ts';
import type { SignConfig } from './sign.ts';
import { parseTable, type SigningTable } from './table.ts';

export function loadSignConfig(dir: string = controlDir(), env: NodeJS.ProcessEnv = process.env): Result<SignConfig> {
  const lines = readControlLines(dir, 'dksign');
  if (!lines.ok) return lines;
  const table = loadTable(dir);
  if (!table.ok) return table;
  return ok({ templates: lines.value ?? [], qmailHome: qmailHome(env), ...(table.value ? { table: table.value } : {}) });
}

/**
 * control/dkimkeys parsed, or null when there is none. A bad line is kept with its reason, not
 * an error here. Every line is passed on, comments too, so that line numbers are the file's.
 */
export function loadTable(dir: string): Result<SigningTable | null> {
  const text = readControl(dir, 'dkimkeys');
  if (!text.ok) return text;
  return ok(text.value === null ? null : parseTable(text.value.split('\n')));
}
