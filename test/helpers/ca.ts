// A throwaway certificate authority made by openssl, for tests that verify TLS: leaf
// certificates for given DNS names and IP addresses, expired ones (negative days), and a
// self-signed one that no CA vouches for. Every file lives in one temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  readonly key: Buffer;
  readonly cert: Buffer;
}

export interface Leaf {
  /** DNS subjectAltNames; the first is also the CN. */
  readonly dns?: readonly string[];
  readonly ip?: readonly string[];
  /** Days of validity from now; negative: expired that many days ago. Default 2. */
  readonly days?: number;
}

export interface TestCa {
  /** The CA certificate (PEM): what SSL_CERT_FILE or a tlshosts/ file points at. */
  readonly cert: Buffer;
  /** Its path on disk, for SSL_CERT_FILE. */
  readonly certFile: string;
  issue(leaf: Leaf): KeyPair;
  /** A self-signed certificate for the names: right name, no trusted issuer. */
  selfSigned(leaf: Leaf): KeyPair;
  cleanup(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const run = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });

export function makeTestCa(name = 'qmail-remote-dkim test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'test-ca-'));
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.pem');
  run(['req', '-x509', ...EC, '-keyout', caKey, '-out', certFile, '-days', '3', '-subj', `/CN=${name}`]);
  let serial = 1;
  const extFile = (leaf: Leaf): string => {
    const sans = [...(leaf.dns ?? []).map((n) => `DNS:${n}`), ...(leaf.ip ?? []).map((ip) => `IP:${ip}`)];
    const path = join(dir, `ext-${serial}`);
    writeFileSync(path, `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\n`);
    return path;
  };
  const subject = (leaf: Leaf): string => `/CN=${leaf.dns?.[0] ?? leaf.ip?.[0] ?? 'leaf'}`;
  return {
    cert: readFileSync(certFile),
    certFile,
    issue(leaf) {
      serial += 1;
      const key = join(dir, `${serial}.key`);
      const csr = join(dir, `${serial}.csr`);
      const cert = join(dir, `${serial}.pem`);
      run(['req', ...EC, '-keyout', key, '-out', csr, '-subj', subject(leaf)]);
      run(['x509', '-req', '-in', csr, '-CA', certFile, '-CAkey', caKey, '-set_serial', String(serial),
        '-days', String(leaf.days ?? 2), '-extfile', extFile(leaf), '-out', cert]);
      return { key: readFileSync(key), cert: readFileSync(cert) };
    },
    selfSigned(leaf) {
      serial += 1;
      const key = join(dir, `${serial}.key`);
      const cert = join(dir, `${serial}.pem`);
      run(['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '2', '-subj', subject(leaf),
        '-addext', `subjectAltName=${[...(leaf.dns ?? []).map((n) => `DNS:${n}`), ...(leaf.ip ?? []).map((ip) => `IP:${ip}`)].join(',')}`]);
      return { key: readFileSync(key), cert: readFileSync(cert) };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
