// qmail control files (docs/qmail-remote.md §4). The directory is /var/qmail/control unless QMAILHOME or
// CONTROLDIR (absolute, or relative to QMAILHOME) says otherwise; both are set in the qmail rc
// script, the only environment qmail-rspawn passes on. A file that is absent takes its default;
// one that exists but cannot be read is an error, never a silent default (control.c).
// "Cannot be read" includes what stock qmail would hang on or choke on: a FIFO, a device, a
// file over MAX_CONTROL_BYTES (see read-bounded.ts).
import { isAbsolute, join } from 'node:path';
import { failure, fail, ok, type Result } from './failures.ts';
import { readBounded } from './read-bounded.ts';

/**
 * The largest control file read: far beyond any real one (an smtproutes of ten thousand
 * routes is about 400 KB), small enough that reading it costs nothing.
 */
export const MAX_CONTROL_BYTES = 1 << 20;

export const DEFAULT_QMAILHOME = '/var/qmail';

export function qmailHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.QMAILHOME || DEFAULT_QMAILHOME;
}

export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = qmailHome(env);
  const dir = env.CONTROLDIR;
  if (!dir) return join(home, 'control');
  return isAbsolute(dir) ? dir : join(home, dir);
}

/** The file's bytes, null when it does not exist, or an error for anything else. */
export function readControl(dir: string, name: string): Result<string | null> {
  try {
    return ok(readBounded(join(dir, name), MAX_CONTROL_BYTES).toString('latin1'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return ok(null);
    return fail(failure('READ_CONTROL'));
  }
}

/** control_readline: the first line, trailing spaces, tabs and CR stripped. */
export function readControlLine(dir: string, name: string): Result<string | null> {
  const text = readControl(dir, name);
  if (!text.ok) return text;
  if (text.value === null) return ok(null);
  const first = text.value.split('\n', 1)[0] ?? '';
  return ok(first.replace(/[ \t\r]+$/, ''));
}

/** control_readfile: every line, trailing white space stripped, blanks and # comments dropped. */
export function readControlLines(dir: string, name: string): Result<string[] | null> {
  const text = readControl(dir, name);
  if (!text.ok) return text;
  if (text.value === null) return ok(null);
  const lines = text.value
    .split('\n')
    .map((line) => line.replace(/[ \t\r]+$/, ''))
    .filter((line) => line !== '' && !line.startsWith('#'));
  return ok(lines);
}

/** control_readint: a number, or the default when the file is absent or not a number. */
export function readControlInt(dir: string, name: string, fallback: number): Result<number> {
  const line = readControlLine(dir, name);
  if (!line.ok) return line;
  if (line.value === null) return ok(fallback);
  const digits = /^\s*(\d+)/.exec(line.value);
  return ok(digits?.[1] !== undefined ? Number(digits[1]) : fallback);
}
