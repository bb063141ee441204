// Putting qmail-remote-dkim in place of qmail's qmail-remote, and taking it out again.
// qmail-rspawn execs $QMAILHOME/bin/qmail-remote with qmail-send's minimal environment, so the
// shim names an absolute Node and an absolute program. If either has gone missing the shim
// itself reports Z: the shell's own "not found" exit status (127) would make qmail-rspawn
// bounce every remote message. The program (bin/qmail-remote) refuses a Node that is too old
// with a Z of its own.
//
// qmail-rspawn may start a delivery at any moment, so there is never a moment without a
// bin/qmail-remote: the original is kept under its second name by a hard link, and the shim,
// written whole under a temporary name, is renamed over it. A step that fails undoes the ones
// before it: the files are as they were.
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

export const SHIM_MARK = '# qmail-remote-dkim shim';
/** package.json's engines, as the launchers check it (bin/node-version.cjs, its one home). */
export const MIN_NODE = (createRequire(import.meta.url)('../../bin/node-version.cjs') as { required: string }).required.split('.').map(Number) as [number, number];

export interface InstallPlan {
  /** Where the shim goes: $QMAILHOME/bin/qmail-remote, or any path for $QMAILREMOTE. */
  readonly target: string;
  readonly node: string;
  readonly program: string;
  /** Node's compile cache for the qmailr user; empty for none. */
  readonly cacheDir: string;
  /**
   * qmail's home as the administrator named it: qmail has its home compiled in and passes no
   * QMAILHOME, so the shim carries it for the control files (unless the rc script sets one).
   */
  readonly qmailHome: string;
  /** Refuse when there is no qmail-remote to replace (not for a shim of its own, for $QMAILREMOTE). */
  readonly replacing: boolean;
}

/** Why an install or uninstall changed nothing, in one line that says what to do. */
export class InstallError extends Error {}

export function shimText(plan: Pick<InstallPlan, 'node' | 'program' | 'cacheDir' | 'qmailHome'>): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const missing = (what: string): string =>
    `printf 'Zqmail-remote-dkim: ${what} is missing; mail stays queued. (#4.3.0)\\n\\0'; exit 0`;
  return [
    '#!/bin/sh',
    `${SHIM_MARK}: written by \`qmail-remote-dkim install\`; the original is qmail-remote.orig.`,
    `[ -x ${q(plan.node)} ] || { ${missing('node')}; }`,
    `[ -r ${q(plan.program)} ] || { ${missing('the program')}; }`,
    `[ -n "$QMAILHOME" ] || QMAILHOME=${q(plan.qmailHome)}; export QMAILHOME`,
    ...(plan.cacheDir ? [`NODE_COMPILE_CACHE=${q(plan.cacheDir)}; export NODE_COMPILE_CACHE`] : []),
    `exec ${q(plan.node)} --no-warnings ${q(plan.program)} "$@"`,
    '',
  ].join('\n');
}

export function isShim(path: string): boolean {
  const text = readOrNull(path);
  return text !== null && isShimText(text);
}

const isShimText = (bytes: Buffer): boolean => bytes.toString('latin1').includes(SHIM_MARK);

/** The Node at `node` if it is new enough, else why not. */
export function checkNode(node: string): string | null {
  const run = spawnSync(node, ['--version'], { encoding: 'utf8' });
  const match = /^v(\d+)\.(\d+)/.exec(run.stdout ?? '');
  if (run.status !== 0 || !match) return `${node} does not run`;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return null;
  return `${node} is ${run.stdout.trim()}; Node >= ${MIN_NODE.join('.')} is required`;
}

/** Code cached there is run by every delivery: no one but its owner may write to it. */
export function safeCacheDir(dir: string): boolean {
  try {
    const stat = statSync(dir);
    return stat.isDirectory() && (stat.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Installs the shim; an original qmail-remote is kept as qmail-remote.orig. */
export function install(plan: InstallPlan): string[] {
  const { target } = plan;
  const orig = `${target}.orig`;
  const current = readOrNull(target);
  if (current === null && plan.replacing) {
    throw new InstallError(`${target} does not exist: set QMAILHOME to qmail's home, or give --to for a shim of its own`);
  }
  const text = shimText(plan);
  if (current !== null && current.toString('latin1') === text) return [`${target} is the shim already; nothing changed`];
  const keep = current !== null && !isShimText(current);
  const saved = keep ? readOrNull(orig) : null;
  if (saved !== null && current !== null && !saved.equals(current)) {
    throw new InstallError(`${orig} exists and differs from ${target}: move one of them away, then install again`);
  }
  const temp = `${target}.new`;
  attempt(temp, () => {
    writeFileSync(temp, text, { mode: 0o755 });
    chmodSync(temp, 0o755);
  });
  const done: string[] = [];
  const linked = keep && saved === null;
  try {
    if (linked) attempt(orig, () => linkSync(target, orig));
    attempt(target, () => renameSync(temp, target));
  } catch (error) {
    removeQuietly(temp);
    if (linked) removeQuietly(orig);
    throw error;
  }
  if (keep) done.push(`kept the original as ${orig}`);
  done.push(`wrote ${target}`);
  return done;
}

/** Puts qmail-remote.orig back; refuses to touch a qmail-remote that is not our shim. */
export function uninstall(target: string): string[] {
  const orig = `${target}.orig`;
  if (!isShim(target)) throw new InstallError(`${target} is not the qmail-remote-dkim shim; leaving it alone`);
  if (readOrNull(orig) === null) throw new InstallError(`${orig} is missing; nothing to restore (remove the shim by hand if qmail-remote is elsewhere)`);
  attempt(target, () => renameSync(orig, target));
  return [`restored ${target} from ${orig}`];
}

/**
 * $QMAILHOME/mta-sts, the MTA-STS policy cache every delivery shares (src/delivery/tls/mta-sts.ts):
 * mode 0700, owned by the user deliveries run as (qmailr), so no other user can plant a
 * policy. An existing directory is given the same owner and mode. `owner` null: left as is, and
 * said so (without the directory each delivery fetches policies for itself).
 */
export function makeStsCache(qmailHome: string, owner: { uid: number; gid: number; name: string } | null): string[] {
  const dir = join(qmailHome, 'mta-sts');
  attempt(dir, () => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    chmodSync(dir, 0o700);
    if (owner !== null) chownSync(dir, owner.uid, owner.gid);
  });
  if (owner === null) return [`made ${dir} (mode 0700); no user qmailr: chown it to the user qmail-remote runs as`];
  return [`made ${dir} (mode 0700, owner ${owner.name}) for MTA-STS policies`];
}

export const defaultTarget = (qmailHome: string): string => join(qmailHome, 'bin', 'qmail-remote');

/** Runs a step on `path`; a failure becomes an InstallError that says what to do. */
export function attempt(path: string, step: () => void): void {
  try {
    step();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const dir = dirname(path);
    if (code === 'EROFS') throw new InstallError(`${dir} is on a read-only file system: remount it read-write, then install again`);
    if (code === 'EACCES' || code === 'EPERM') throw new InstallError(`cannot write in ${dir} (${code}): run this as root, or as the owner of ${dir}`);
    throw new InstallError(`cannot write ${path} (${code})`);
  }
}

function readOrNull(path: string): Buffer | null {
  try {
    return statSync(path).isFile() ? readFileSync(path) : null;
  } catch {
    return null;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Nothing there: nothing to undo.
  }
}
