// $QMAILHOME/queue/lock/tcpto6, the table of IPv6 hosts that timed out (src/delivery/tcpto.ts),
// beside qmail's own queue/lock/tcpto and made the way qmail's install makes that one: zeros,
// owner qmailr, group qmail, mode 0644. Only in a qmail home that has queue/lock; an existing
// file is left as it is.
import { chmodSync, chownSync, closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { attempt } from './shim.ts';

const SIZE = 64 * 32;

export function makeTcpto6(qmailHome: string, owner: { uid: number; gid: number; name: string } | null): string[] {
  const lock = join(qmailHome, 'queue', 'lock');
  const path = join(lock, 'tcpto6');
  if (!existsSync(lock)) return [];
  if (existsSync(path)) return [`kept ${path}`];
  attempt(path, () => {
    const fd = openSync(path, 'wx', 0o644);
    try {
      writeSync(fd, Buffer.alloc(SIZE));
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o644);
    if (owner !== null) chownSync(path, owner.uid, owner.gid);
  });
  return [`made ${path} (the IPv6 hosts that timed out${owner ? `, owner ${owner.name}` : '; no user qmailr: chown it to qmailr'})`];
}
