// One log line per delivery, through winston, to a file or to syslog — never to the console,
// because under qmail-rspawn stdout and stderr are the report pipe. Off unless asked for:
// the environment variable QMAILREMOTE_LOG, else the first line of control/dklog, names
//   /path/to/file          append to that file
//   syslog[:host[:port]]   RFC 3164 datagrams over UDP (default 127.0.0.1:514, facility mail)
// winston is loaded only when logging is on: it costs tens of milliseconds to load.
//
// A log target must never hold the delivery: the file is opened here, without waiting
// (O_NONBLOCK: a FIFO with no reader fails at once with ENXIO), and used only if it is a
// regular file; its directory must exist (a missing one is not created: a typo in dklog should
// not make directories as the qmailr user). Any of these failures drops the line; the report
// was written before, and the process ends within a bound whatever the log does.
import { closeSync, constants, createWriteStream, fstatSync, openSync, writeSync } from 'node:fs';
import { readControlLine } from '../common/control.ts';
import { loadLater } from '../common/load-later.ts';
import type * as Winston from 'winston';

// How long a delivery waits for its log line to be handed on before it lets the process end.
const LOG_WAIT_MS = 5000;

export type LogTarget = { kind: 'file'; path: string } | { kind: 'syslog'; host: string; port: number };

/**
 * The TLS policy a delivery was held to: none (opportunistic), an MTA-STS policy in testing or
 * enforce mode, a control/tlshosts/ file, or a smarthost that gets credentials or is reached
 * over SMTPS (its certificate must verify for the relay name).
 */
export type TlsPolicyApplied = 'none' | 'sts-testing' | 'sts-enforce' | 'tlshosts' | 'smarthost';

/**
 * How the TLS side of a session went, in the result types of RFC 8460 §4.3 (what a TLS-RPT
 * report counts), plus `success`.
 */
export type TlsResultType =
  | 'success'
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

export interface TlsLog {
  /** The protocol version negotiated ("TLSv1.3"), or null for a plaintext session. */
  readonly version: string | null;
  /** Whether the certificate verified for the name the policy asks (the MX or relay name). */
  readonly verified: boolean;
  readonly policy: TlsPolicyApplied;
  readonly result: TlsResultType;
}

export interface DeliveryLog {
  readonly host: string;
  readonly ip?: string;
  /** The TLS side of the session the reports talk about, when a connection was made. */
  readonly tls?: TlsLog;
  readonly sender: string;
  readonly recips: readonly string[];
  /** "dkim d=example.com s=default a=rsa-sha256", one per signature. */
  readonly signatures: readonly string[];
  readonly notes: readonly string[];
  readonly result: string;
  readonly report: string;
  readonly ms: number;
}

export function logTarget(dir: string, env: NodeJS.ProcessEnv = process.env): LogTarget | null {
  let spec = env.QMAILREMOTE_LOG;
  if (spec === undefined) {
    const line = readControlLine(dir, 'dklog');
    spec = line.ok && line.value !== null ? line.value : '';
  }
  spec = spec.trim();
  if (spec === '' || spec === 'off') return null;
  if (spec === 'syslog' || spec.startsWith('syslog:')) {
    const [, host, port] = spec.split(':');
    return { kind: 'syslog', host: host || '127.0.0.1', port: Number(port) || 514 };
  }
  return { kind: 'file', path: spec };
}

/** Printable ASCII only: these fields come from strangers and must not forge log lines. */
const safe = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?');

export function formatDelivery(entry: DeliveryLog): string {
  const parts = [
    `host=${safe(entry.host)}`,
    `ip=${entry.ip ?? '-'}`,
    `sender=<${safe(entry.sender)}>`,
    `recips=${entry.recips.map((r) => `<${safe(r)}>`).join(',')}`,
    ...(entry.signatures.length ? entry.signatures.map((s) => `sig=[${safe(s)}]`) : ['unsigned']),
    ...entry.notes.map((n) => `note=[${safe(n)}]`),
    ...(entry.tls ? formatTls(entry.tls) : []),
    `result=${entry.result}`,
    `ms=${entry.ms}`,
    `report="${safe(entry.report.replace(/\n/g, '/'))}"`,
  ];
  return parts.join(' ');
}

/** `tls=TLSv1.3 cert=verified policy=sts-enforce tls-result=success`; `tls=none` for plaintext. */
function formatTls(tls: TlsLog): string[] {
  return [
    `tls=${tls.version === null ? 'none' : safe(tls.version)}`,
    `cert=${tls.version === null ? '-' : tls.verified ? 'verified' : 'unverified'}`,
    `policy=${tls.policy}`,
    `tls-result=${tls.result}`,
  ];
}

const LOG_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY;
const LOG_MODE = 0o640;

/** The log file open for appending, or null when it is not a regular file that can be opened. */
export function openLogFile(path: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, LOG_FLAGS, LOG_MODE);
  } catch {
    return null;
  }
  try {
    if (fstatSync(fd).isFile()) return fd;
  } catch {
    // fall through: not usable
  }
  closeSync(fd);
  return null;
}

/**
 * After a crash there is no time for winston: the process ends as soon as the Z is out. The
 * cause still matters to the administrator, so a file log gets the line in one synchronous
 * append (the file is regular and opened without waiting, so the write cannot block for
 * long); a syslog target gets nothing. Failures are swallowed.
 */
export function logCrashSync(target: LogTarget, entry: DeliveryLog): void {
  if (target.kind !== 'file') return;
  const fd = openLogFile(target.path);
  if (fd === null) return;
  try {
    writeSync(fd, `${new Date().toISOString()} qmail-remote-dkim[${process.pid}]: ${formatDelivery(entry)}\n`);
  } catch {
    // A log that cannot be written must not change what happens to the mail.
  } finally {
    closeSync(fd);
  }
}

/** Writes one line and resolves when it has been handed on; failures are swallowed. */
export async function logDelivery(target: LogTarget, entry: DeliveryLog): Promise<void> {
  let fd: number | null = null;
  if (target.kind === 'file') {
    fd = openLogFile(target.path);
    if (fd === null) return;
  }
  try {
    const { createLogger, format, transports } = loadLater('winston') as typeof Winston;
    const file = fd === null ? null : createWriteStream('', { fd, autoClose: true });
    const transport = file
      ? new transports.Stream({ stream: file })
      : target.kind === 'syslog'
        ? new (await import('./log-syslog.ts')).SyslogTransport(target.host, target.port)
        : null;
    if (!transport) return;
    const logger = createLogger({
      level: 'info',
      format: format.printf((info) => `${new Date().toISOString()} qmail-remote-dkim[${process.pid}]: ${String(info.message)}`),
      transports: [transport],
      exitOnError: false,
    });
    await new Promise<void>((resolve) => {
      // A transport that fails never finishes: an error ends the wait too, and the timer only
      // bounds it without keeping the process alive.
      logger.on('error', () => resolve());
      transport.on('error', () => resolve());
      file?.on('error', () => resolve());
      logger.on('finish', () => (file ? file.end(() => resolve()) : resolve()));
      setTimeout(resolve, LOG_WAIT_MS).unref();
      logger.info(formatDelivery(entry));
      logger.end();
    });
  } catch {
    // A log that cannot be written must not change what happens to the mail.
  }
}
