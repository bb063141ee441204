// Making signing keys as dknewkey did (`openssl genrsa`, PKCS#1 PEM), plus Ed25519 (RFC 8463,
// PKCS#8 PEM), and writing them where qmail-remote can read them and nobody else can: mode
// 0640, and group qmail when root writes it, so qmailr reads it through its group (as the
// bltweb patch's instructions have it: `chown root:qmail; chmod 640`). An existing file is never overwritten: it may be the key a
// published record belongs to.
import { closeSync, fchmodSync, fchownSync, openSync, unlinkSync } from 'node:fs';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { KeyType } from '../signing/keys.ts';
import { findGroup, GROUP_FILE, readGroups } from './accounts.ts';
import { DEFAULT_RSA_BITS, KEY_MODE, MAX_RSA_BITS, MIN_RSA_BITS, QMAIL_GROUP, WEAK_RSA_BITS } from './policy.ts';
import { writeAll } from '../common/sync-io.ts';


export interface KeySpec {
  readonly type: KeyType;
  readonly bits: number;
}

export type SpecCheck = { ok: true; spec: KeySpec; warning?: string } | { ok: false; reason: string };

/** The key to make for -t and -b, a warning for weak but usable sizes, or why not. */
export function checkKeySpec(type: KeyType = 'rsa', bits?: number): SpecCheck {
  if (type === 'ed25519') {
    if (bits !== undefined && bits !== 256) return { ok: false, reason: 'ed25519 keys are always 256 bits; leave out -b' };
    return { ok: true, spec: { type, bits: 256 } };
  }
  const size = bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(size) || size < MIN_RSA_BITS) return { ok: false, reason: `RSA keys need at least ${MIN_RSA_BITS} bits` };
  if (size > MAX_RSA_BITS) return { ok: false, reason: `RSA keys over ${MAX_RSA_BITS} bits are not verified everywhere (RFC 8301)` };
  if (size < WEAK_RSA_BITS) {
    return { ok: true, spec: { type, bits: size }, warning: `${size}-bit RSA keys are weak; many verifiers ignore signatures made with them (RFC 8301 asks for ${WEAK_RSA_BITS} or more)` };
  }
  return { ok: true, spec: { type, bits: size } };
}

/** A new private key and its PEM text. */
export function generateKey(spec: KeySpec): { key: KeyObject; pem: string } {
  if (spec.type === 'ed25519') {
    const { privateKey } = generateKeyPairSync('ed25519');
    return { key: privateKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: spec.bits, publicExponent: 0x10001 });
  return { key: privateKey, pem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() };
}

export interface WriteOptions {
  /** Where the qmail group is looked up. */
  readonly groupFile?: string;
  /** Whether to give the file to the qmail group; by default, when running as root. */
  readonly asRoot?: boolean;
}

export type WriteResult =
  | { ok: true; group?: string }
  | { ok: false; exists: boolean; reason: string };

/** Creates `path` with the PEM in it, mode 0640, group qmail when root; never replaces a file. */
export function writeKeyFile(path: string, pem: string, options: WriteOptions = {}): WriteResult {
  let fd: number;
  try {
    fd = openSync(path, 'wx', KEY_MODE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return { ok: false, exists: true, reason: 'file exists; not overwriting it (remove it first, or choose a new selector)' };
    return { ok: false, exists: false, reason: `cannot create it (${code ?? 'error'})` };
  }
  try {
    // The umask may have taken bits off the mode given to open; set exactly 0640.
    fchmodSync(fd, KEY_MODE);
    const group = giveToQmailGroup(fd, options);
    writeAll(fd, Buffer.from(pem, 'ascii'));
    closeSync(fd);
    return group === undefined ? { ok: true } : { ok: true, group };
  } catch (error) {
    closeSync(fd);
    unlinkSync(path);
    return { ok: false, exists: false, reason: `cannot write it (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
}

/** The group name set, if any. Only root may chown; others leave the file in their own group. */
function giveToQmailGroup(fd: number, options: WriteOptions): string | undefined {
  const asRoot = options.asRoot ?? process.getuid?.() === 0;
  if (!asRoot) return undefined;
  const group = findGroup(readGroups(options.groupFile ?? GROUP_FILE), QMAIL_GROUP);
  if (!group) return undefined;
  fchownSync(fd, process.getuid?.() ?? 0, group.gid);
  return group.name;
}

