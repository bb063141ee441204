// $QMAILHOME/control/entrykey, the secret qmail-dkverify and qmail-remote share to mark mail that
// came in from outside (src/mail/entry-mark.ts; docs/signing.md, "Forwarded mail"). Only the
// two programs may read it: owned by the user qmail-smtpd runs as (qmaild) and the group of the
// user qmail-remote runs as (qmailr's, qmail), mode 0440. A local user who could read it could
// mark a spoof as entered with dkim=pass and have it sealed.
//
// An existing key is kept (marks on queued mail stay good) and only given that owner and mode.
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ENTRY_KEY_FILE } from '../mail/entry-mark.ts';
import { attempt } from './shim.ts';

export interface KeyOwner {
  /** qmail-smtpd's user (qmaild), or null when there is none. */
  readonly smtpd: { readonly name: string; readonly uid: number } | null;
  /** qmail-remote's user (qmailr), whose group gets read access; null when there is none. */
  readonly remote: { readonly name: string; readonly gid: number } | null;
}

const MODE = 0o440;

/** Makes or keeps the key; returns what was done, a line each. A failure is an InstallError saying what to do. */
export function makeEntryKey(qmailHome: string, owner: KeyOwner): string[] {
  const path = join(qmailHome, 'control', ENTRY_KEY_FILE);
  let made = false;
  attempt(path, () => {
    mkdirSync(join(qmailHome, 'control'), { recursive: true, mode: 0o755 });
    made = !exists(path);
    if (made) write(path);
    chmodSync(path, MODE);
    if (owner.smtpd !== null && owner.remote !== null) chownSync(path, owner.smtpd.uid, owner.remote.gid);
  });
  if (owner.smtpd !== null && owner.remote !== null) {
    return [`${made ? 'made' : 'kept'} ${path} (mode 0440, owner ${owner.smtpd.name}, group of ${owner.remote.name})`];
  }
  const missing = [owner.smtpd ? null : 'qmaild', owner.remote ? null : 'qmailr'].filter(Boolean).join(' and ');
  return [`${made ? 'made' : 'kept'} ${path} (mode 0440); no user ${missing}: make it readable by the users qmail-smtpd and qmail-remote run as, and nobody else`];
}

/** A new key; O_EXCL, so never written through a link someone put there. */
function write(path: string): void {
  const fd = openSync(path, 'wx', 0o400);
  try {
    writeSync(fd, `${randomBytes(32).toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
}

function exists(path: string): boolean {
  try {
    readFileSync(path, { flag: 'r' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
