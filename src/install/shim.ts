// Putting qmail-remote-dkim in place of qmail's qmail-remote, and taking it out again.
// qmail-rspawn execs $QMAILHOME/bin/qmail-remote with qmail-send's minimal environment, so the
// shim names an absolute Node and an absolute program. If either has gone missing the shim
// itself reports Z: the shell's own "not found" exit status (127) would make qmail-rspawn
// bounce every remote message.
import { existsSync, readFileSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const SHIM_MARK = '# qmail-remote-dkim shim';
const MIN_NODE = [22, 19] as const;

export interface InstallPlan {
  /** Where the shim goes: $QMAILHOME/bin/qmail-remote, or any path for $QMAILREMOTE. */
  readonly target: string;
  readonly node: string;
  readonly program: string;
  /** Node's compile cache for the qmailr user; empty for none. */
  readonly cacheDir: string;
}

export function shimText(plan: InstallPlan): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const missing = (what: string): string =>
    `printf 'Zqmail-remote-dkim: ${what} is missing; mail stays queued. (#4.3.0)\\n\\0'; exit 0`;
  return [
    '#!/bin/sh',
    `${SHIM_MARK}: written by \`qmail-remote-dkim install\`; the original is qmail-remote.orig.`,
    `[ -x ${q(plan.node)} ] || { ${missing('node')}; }`,
    `[ -r ${q(plan.program)} ] || { ${missing('the program')}; }`,
    ...(plan.cacheDir ? [`NODE_COMPILE_CACHE=${q(plan.cacheDir)}; export NODE_COMPILE_CACHE`] : []),
    `exec ${q(plan.node)} --no-warnings ${q(plan.program)} "$@"`,
    '',
  ].join('\n');
}

export function isShim(path: string): boolean {
  try {
    return readFileSync(path, 'latin1').includes(SHIM_MARK);
  } catch {
    return false;
  }
}

/** The Node at `node` if it is new enough, else why not. */
export function checkNode(node: string): string | null {
  const run = spawnSync(node, ['--version'], { encoding: 'utf8' });
  const match = /^v(\d+)\.(\d+)/.exec(run.stdout ?? '');
  if (run.status !== 0 || !match) return `${node} does not run`;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return null;
  return `${node} is ${run.stdout.trim()}; Node >= ${MIN_NODE.join('.')} is required`;
}

/** Installs the shim; an existing original qmail-remote is kept as qmail-remote.orig. */
export function install(plan: InstallPlan): string[] {
  const done: string[] = [];
  const orig = `${plan.target}.orig`;
  if (existsSync(plan.target) && !isShim(plan.target)) {
    if (existsSync(orig)) throw new Error(`${orig} exists already; not overwriting it`);
    renameSync(plan.target, orig);
    done.push(`kept the original as ${orig}`);
  }
  const temp = `${plan.target}.new`;
  writeFileSync(temp, shimText(plan), { mode: 0o755 });
  chmodSync(temp, 0o755);
  renameSync(temp, plan.target);
  done.push(`wrote ${plan.target}`);
  return done;
}

/** Puts qmail-remote.orig back; refuses to touch a qmail-remote that is not our shim. */
export function uninstall(target: string): string[] {
  const orig = `${target}.orig`;
  if (!isShim(target)) throw new Error(`${target} is not the qmail-remote-dkim shim; leaving it alone`);
  if (!existsSync(orig)) throw new Error(`${orig} is missing; nothing to restore`);
  renameSync(orig, target);
  return [`restored ${target} from ${orig}`];
}

export const defaultTarget = (qmailHome: string): string => join(qmailHome, 'bin', 'qmail-remote');
