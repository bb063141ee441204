// The signing settings of one run, from the control directory: control/dksign holds one key
// path template per line (docs/qmail-remote.md §7); no file means nothing is signed.
import { controlDir, qmailHome, readControlLines } from '../common/control.ts';
import { ok, type Result } from '../common/failures.ts';
import type { SignConfig } from './sign.ts';

export function loadSignConfig(dir: string = controlDir(), env: NodeJS.ProcessEnv = process.env): Result<SignConfig> {
  const lines = readControlLines(dir, 'dksign');
  if (!lines.ok) return lines;
  return ok({ templates: lines.value ?? [], qmailHome: qmailHome(env) });
}
