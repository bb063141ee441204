// qmail's table of hosts that timed out (qmail-tcpto(8), qmail-tcpok(8)), read and written as
// qmail-remote does, so that the stock qmail-tcpto lists what we recorded and qmail-tcpok
// clears it (docs/reliability.md, "tcpto").
//
// $QMAILHOME/queue/lock/tcpto: 64 records of 16 bytes. A record is the IPv4 address (bytes
// 0-3), the number of timeouts (byte 4, at most 10) and the time of the last one (bytes 8-11,
// seconds, little-endian). The rules are qmail's:
//   - a host with two timeouts or more, the last less than (60 + pid % 32) × 64 seconds ago
//     (about 64 to 97 minutes), is skipped;
//   - a timeout counts only 120 seconds or more after the previous one;
//   - a connection that is made, or refused, clears the count of a host that has a record;
//   - a new host takes the first record with no count, else the one whose time plus
//     count × 1024 is oldest.
// IPv6 hosts go in queue/lock/tcpto6 (qmail's records hold IPv4 only): 64 records of 32 bytes,
// the address family at byte 0, count and time as above, the address at bytes 16-31, the
// layout of the common IPv6 patch. `install` makes it; the lock directory is not qmailr's.
//
// Locking: qmail takes flock(2) on the file, opened for writing, around every read and
// write. Node has no flock; the flock(1) program locks an open file description it inherits
// as fd 3, and the lock stays with that description, so ours, until we close it. Writes take
// the lock that way. The read before a connection takes none: it is one read(2) of the whole
// file, which POSIX makes atomic with a writer's 16-byte write(2), and skipping the lock
// spares every delivery a process. Without the files, write access or flock(1), nothing is
// recorded and nothing is skipped: tcpto never fails a delivery.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';

const V4 = { file: 'tcpto', size: 16, addressAt: 0, addressBytes: 4 } as const;
const V6 = { file: 'tcpto6', size: 32, addressAt: 16, addressBytes: 16 } as const;
type Layout = typeof V4 | typeof V6;
const RECORDS = 64;
const AF_INET6 = 10;
const MAX_COUNT = 10;
const RECOUNT_AFTER = 120;
const FLOCK = '/usr/bin/flock';
/** How long to wait for another delivery's lock before giving up on recording. */
const LOCK_WAIT_SECONDS = '5';

export interface Tcpto {
  /** Whether qmail's rule says not to try this address now. */
  skip(ip: string): boolean;
  /** After a connection attempt: a timeout, or a connection made or refused. */
  record(ip: string, timedOut: boolean): void;
}

export function tcptoTable(qmailHome: string, now: () => number = () => Math.floor(Date.now() / 1000), pid = process.pid): Tcpto {
  const dir = join(qmailHome, 'queue', 'lock');
  const seen = new Set<string>();
  return {
    skip(ip) {
      const layout = layoutOf(ip);
      const table = readTable(join(dir, layout.file), layout);
      const at = table === null ? -1 : find(table, layout, ip);
      if (table === null || at < 0) return false;
      seen.add(ip);
      const record = table.subarray(at * layout.size);
      return record[4] as number >= 2 && now() - record.readUInt32LE(8) < (60 + (pid & 31)) << 6;
    },
    record(ip, timedOut) {
      // qmail: a host that had no record is not looked for again after a success.
      if (!timedOut && !seen.has(ip)) return;
      const layout = layoutOf(ip);
      withLock(join(dir, layout.file), layout, (fd, table) => update(fd, table, layout, ip, timedOut, now()));
    },
  };
}

const layoutOf = (ip: string): Layout => (isIPv4(ip) ? V4 : V6);

/** The whole table, or null when it cannot be read. */
function readTable(path: string, layout: Layout): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const buffer = Buffer.alloc(RECORDS * layout.size);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, n - (n % layout.size));
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function addressBytes(ip: string, layout: Layout): Buffer {
  if (layout === V4) return Buffer.from(ip.split('.').map(Number));
  // An IPv4 tail (::ffff:192.0.2.1) is two groups.
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  const text = dotted ? `${dotted[1]}${((Number(dotted[2]) << 8) | Number(dotted[3])).toString(16)}:${((Number(dotted[4]) << 8) | Number(dotted[5])).toString(16)}` : ip;
  const halves = text.toLowerCase().split('::');
  const groups = (part: string | undefined): string[] => (part ? part.split(':') : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const all = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16) || 0, i * 2));
  return out;
}

function find(table: Buffer, layout: Layout, ip: string): number {
  const address = addressBytes(ip, layout);
  for (let i = 0; i * layout.size < table.length; i++) {
    const record = table.subarray(i * layout.size, (i + 1) * layout.size);
    if (layout === V6 && record[0] !== AF_INET6) continue;
    if (record.subarray(layout.addressAt, layout.addressAt + layout.addressBytes).equals(address)) return i;
  }
  return -1;
}

/** qmail's tcpto_err(): the record changed, written back in place. */
function update(fd: number, table: Buffer, layout: Layout, ip: string, timedOut: boolean, when: number): void {
  const n = table.length / layout.size;
  const at = find(table, layout, ip);
  const recordAt = (i: number): Buffer => table.subarray(i * layout.size, (i + 1) * layout.size);
  if (at >= 0) {
    const record = recordAt(at);
    if (!timedOut) record[4] = 0;
    else {
      if (record[4] !== 0 && when < RECOUNT_AFTER + record.readUInt32LE(8)) return;
      record[4] = Math.min((record[4] as number) + 1, MAX_COUNT);
      record.writeUInt32LE(when >>> 0, 8);
    }
    writeSync(fd, record, 0, layout.size, at * layout.size);
    return;
  }
  if (!timedOut || n === 0) return;
  let slot = -1;
  for (let i = 0; i < n && slot < 0; i++) if (recordAt(i)[4] === 0) slot = i;
  if (slot < 0) {
    let oldest = Infinity;
    for (let i = 0; i < n; i++) {
      const record = recordAt(i);
      const age = record.readUInt32LE(8) + ((record[4] as number) << 10);
      if (age < oldest) {
        oldest = age;
        slot = i;
      }
    }
  }
  const record = recordAt(slot);
  record.fill(0);
  if (layout === V6) record[0] = AF_INET6;
  addressBytes(ip, layout).copy(record, layout.addressAt);
  record[4] = 1;
  record.writeUInt32LE(when >>> 0, 8);
  writeSync(fd, record, 0, layout.size, slot * layout.size);
}

/** Runs `work` with the file locked as qmail locks it (flock on a descriptor open for writing). */
function withLock(path: string, layout: Layout, work: (fd: number, table: Buffer) => void): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return; // no table, or not ours to write: nothing recorded
  }
  try {
    // Loaded here, not at start-up: node:child_process brings a dozen modules every delivery
    // would pay for, and only a timeout or a recorded host gets this far.
    const { spawnSync } = process.getBuiltinModule('node:child_process');
    const locked = spawnSync(FLOCK, ['-x', '-w', LOCK_WAIT_SECONDS, '3'], { stdio: ['ignore', 'ignore', 'ignore', fd], timeout: 10_000 });
    if (locked.status !== 0) return;
    const buffer = Buffer.alloc(RECORDS * layout.size);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    work(fd, buffer.subarray(0, n - (n % layout.size)));
  } catch {
    // a table we cannot use is no table
  } finally {
    closeSync(fd); // releases the lock
  }
}
