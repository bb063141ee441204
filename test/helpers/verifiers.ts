// Runs the independent verifiers in test/verify/ on a message: Perl Mail::DKIM
// (DomainKeys and DKIM), dkimpy (DKIM, including ed25519-sha256) and OpenDKIM's test mode.
// `message` must be the bytes as they go on the wire: CRLF line ends, no
// dot-stuffing. `dnsServer` is "127.0.0.1:PORT", the only server asked for keys.
//
// Known limits of the verifiers, not of what they check:
// - Mail::DKIM (1.20230212) has no ed25519: such a signature is reported
//   `invalid (unsupported algorithm ed25519-sha256)`; use dkimpy for those.
// - Mail::DKIM's DomainKeys identity (Sender:, else From:) is read from the
//   first line of the last such header only (DkCommon.pm matches `(.*)$`
//   without /s) and is Mail::Address's first entry. A folded From:, a first
//   line whose comment or display name holds another domain, or group syntax
//   give `invalid (bad identity)` for a correct DK signature.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type VerifierSignature = {
  type: 'dk' | 'dkim';
  domain: string;
  selector: string;
  algorithm: string;
  // Mail::DKIM: pass, fail, invalid, temperror, none.
  // dkimpy: pass, fail, invalid, temperror.
  result: string;
  detail: string;
};

export type VerifierReport = {
  signatures: VerifierSignature[];
  // Set when the verifier could not parse the message at all.
  error?: string;
};

// The Debian packages (libmail-dkim-perl, python3-dkim) install into the
// system interpreters; a perl or python3 found earlier in PATH (perlbrew,
// pyenv, a venv) would not see them.
const PERL = '/usr/bin/perl';
const PYTHON = '/usr/bin/python3';
const TIMEOUT_MS = 60_000;

const script = (name: string): string => fileURLToPath(new URL(`./reference/${name}`, import.meta.url));

/**
 * `dkIdentity`: the sender domain as an RFC 5322 parser reads it, for messages whose From: or
 * Sender: Mail::DKIM's own DomainKeys identity parsing gets wrong (see test/helpers/reference/mail-dkim.pl).
 */
export function verifyWithMailDkim(message: Buffer, dnsServer: string, dkIdentity?: string): Promise<VerifierReport> {
  return runVerifier(PERL, script('mail-dkim.pl'), message, dnsServer, dkIdentity ? ['--dk-identity', dkIdentity] : []);
}

export function verifyWithDkimpy(message: Buffer, dnsServer: string): Promise<VerifierReport> {
  return runVerifier(PYTHON, script('dkimpy.py'), message, dnsServer);
}

// Runs `interpreter file args...` with `input` on stdin; resolves with stdout,
// rejects on a non-zero exit or any output on stderr (a warning from a
// verifier is a finding, not noise).
export function runScript(interpreter: string, file: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(interpreter, [file, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const errText = Buffer.concat(stderr).toString();
      if (code !== 0 || errText !== '') {
        reject(new Error(`${file} exited ${code ?? signal}: ${errText}`));
      } else {
        resolve(Buffer.concat(stdout));
      }
    });
    // The child may exit before reading everything (e.g. a usage error);
    // its exit status is the error to report, not EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

async function runVerifier(interpreter: string, file: string, message: Buffer, dnsServer: string, extra: string[] = []): Promise<VerifierReport> {
  const out = await runScript(interpreter, file, ['--dns', dnsServer, ...extra], message);
  return parseReport(out.toString());
}

function parseReport(text: string): VerifierReport {
  const report: unknown = JSON.parse(text);
  if (typeof report !== 'object' || report === null || !Array.isArray((report as VerifierReport).signatures)) {
    throw new Error(`verifier printed no report: ${text}`);
  }
  return report as VerifierReport;
}

export const interpreters = { perl: PERL, python: PYTHON };

export const OPENDKIM = '/usr/sbin/opendkim';

/**
 * OpenDKIM's own verdict on a message: `opendkim -t` (test mode, Debian's opendkim package)
 * with the given key records as its TestPublicKeys, so no DNS is asked. Resolves with the
 * line it prints: "... verification (s=…, d=…, …) succeeded" or "... failed: …".
 */
export async function verifyWithOpenDkim(message: Buffer, records: Readonly<Record<string, string>>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'opendkim-'));
  try {
    writeFileSync(join(dir, 'keys'), Object.entries(records).map(([name, record]) => `${name} ${record}\n`).join(''));
    writeFileSync(join(dir, 'opendkim.conf'), `Mode v\nTestPublicKeys ${join(dir, 'keys')}\nSyslog no\n`);
    writeFileSync(join(dir, 'message.eml'), message);
    const out = await new Promise<string>((resolve, reject) => {
      execFile(OPENDKIM, ['-x', join(dir, 'opendkim.conf'), '-t', join(dir, 'message.eml')], { timeout: TIMEOUT_MS }, (error, stdout, stderr) =>
        error ? reject(error) : resolve(`${stdout}${stderr}`),
      );
    });
    return out.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
