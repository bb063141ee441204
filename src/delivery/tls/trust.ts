// Trust anchors for TLS sessions that must be verified (a smarthost that gets credentials, an
// SMTPS relay, a tlshosts/ host, an MX under an MTA-STS enforce policy). Opportunistic TLS
// verifies nothing and loads none of this: every delivery that needs no verified session starts
// exactly as before.
//
// - The system's CA store, as OpenSSL on the host sees it: SSL_CERT_FILE and SSL_CERT_DIR when
//   set, else the distribution's store (Node's tls.getCACertificates('system'), which reads it
//   through OpenSSL). Node's bundled list is not used: an administrator who adds a private CA to
//   the system store, or points SSL_CERT_FILE at one, expects every TLS client to trust it.
//   Reading the store costs about 90 ms (Debian's store, Node 24), so it is read once, on first
//   use, and only by a delivery that needs a verified session, or that logs whether one was
//   (MTA-STS testing): there only when a handshake starts, so a server that offers no STARTTLS
//   costs nothing.
// - control/tlshosts/<host>.pem, as in qmail's TLS patch: when it exists, TLS to <host> is
//   mandatory and its certificate must verify against the CAs in that file only. <host> is the
//   lowercase MX or relay name (an IP literal as written, without brackets); it comes from DNS
//   or from smtproutes, so it is checked before it becomes part of a path.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { readBounded } from '../../common/read-bounded.ts';
import { fail, failure, ok, type Result } from '../../common/failures.ts';

/** A PEM file of CAs is a few KB; a whole distribution store is about 200 KB. */
const MAX_PEM_BYTES = 1 << 20;

/** Where Node looks for the hashed CA directory on Linux when SSL_CERT_DIR is not set. */
const DEFAULT_CERT_DIR = '/etc/ssl/certs';

let systemStore: string[] | undefined;

/**
 * The system's CA certificates (PEM), read on first use and kept for the process. Synchronous,
 * so that it can be read at the moment a handshake starts (requirement.ts); node:tls is loaded
 * then, not before.
 */
export function systemCertificates(): string[] {
  if (systemStore === undefined) {
    const tls = process.getBuiltinModule('node:tls');
    systemStore = withoutMissingCertDir(() => tls.getCACertificates('system'));
  }
  return systemStore;
}

/**
 * Node prints "Cannot open directory … to load OpenSSL certificates." on stderr (the report
 * pipe) when the CA directory it is told about, or its default one, is not there. A directory
 * that is not there holds no CA anyway: it is left out (SSL_CERT_DIR empty) for the one read.
 */
function withoutMissingCertDir<T>(read: () => T): T {
  const dir = process.env.SSL_CERT_DIR;
  if (isDirectory(dir ?? DEFAULT_CERT_DIR)) return read();
  process.env.SSL_CERT_DIR = '';
  try {
    return read();
  } finally {
    if (dir === undefined) delete process.env.SSL_CERT_DIR;
    else process.env.SSL_CERT_DIR = dir;
  }
}

function isDirectory(path: string): boolean {
  if (path === '') return true; // empty: no directory, and nothing printed
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// A DNS name as a file name: LDH labels (and '_', which some MX names carry), no empty label,
// no leading or trailing dot. Nothing here can climb out of tlshosts/ or name a hidden file.
const HOST_FILE_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * The name a host's tlshosts/ file is looked up under: the lowercase name without a trailing
 * dot, or the IP address without brackets (an IPv6 one in its canonical lowercase form). null
 * for a name no file may be named after.
 */
export function tlshostsName(host: string): string | null {
  let name = host.trim().toLowerCase().replace(/\.$/, '');
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1).replace(/^ipv6:/, '');
  if (isIP(name) !== 0) return name.includes('/') ? null : name;
  return HOST_FILE_NAME.test(name) ? name : null;
}

/**
 * The CAs of control/tlshosts/<host>.pem: null when there is no such file (or the name cannot
 * have one), READ_CONTROL when it exists but cannot be read or holds no certificate.
 */
export function tlshostsCertificates(controlDir: string, host: string): Result<string | null> {
  const name = tlshostsName(host);
  if (name === null) return ok(null);
  let pem: string;
  try {
    pem = readBounded(join(controlDir, 'tlshosts', `${name}.pem`), MAX_PEM_BYTES).toString('latin1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return ok(null);
    return fail(failure('READ_CONTROL', error));
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return fail(failure('READ_CONTROL', `tlshosts/${name}.pem holds no certificate`));
  return ok(pem);
}
