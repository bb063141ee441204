// One log line per delivery, through winston, to a file or to syslog — never to the console,
// because under qmail-rspawn stdout and stderr are the report pipe. Off unless asked for:
// the environment variable QMAILREMOTE_LOG, else the first line of control/dklog, names
//   /path/to/file          append to that file
//   syslog[:host[:port]]   RFC 3164 datagrams over UDP (default 127.0.0.1:514, facility mail)
// winston is loaded only when logging is on: it costs tens of milliseconds to load.
import { readControlLine } from '../common/control.ts';

// How long a delivery waits for its log line to be handed on before it lets the process end.
const LOG_WAIT_MS = 5000;

export type LogTarget = { kind: 'file'; path: string } | { kind: 'syslog'; host: string; port: number };

export interface DeliveryLog {
  readonly host: string;
  readonly ip?: string;
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
    `result=${entry.result}`,
    `ms=${entry.ms}`,
    `report="${safe(entry.report.replace(/\n/g, '/'))}"`,
  ];
  return parts.join(' ');
}

/** Writes one line and resolves when winston has handed it on; failures are swallowed. */
export async function logDelivery(target: LogTarget, entry: DeliveryLog): Promise<void> {
  try {
    const { createLogger, format, transports } = await import('winston');
    const transport =
      target.kind === 'file'
        ? new transports.File({ filename: target.path })
        : new (await import('./log-syslog.ts')).SyslogTransport(target.host, target.port);
    const logger = createLogger({
      level: 'info',
      format: format.printf((info) => `${new Date().toISOString()} qmail-remote-dkim[${process.pid}]: ${String(info.message)}`),
      transports: [transport],
      exitOnError: false,
    });
    await new Promise<void>((resolve) => {
      // A transport that fails (an unwritable file) never finishes: an error ends the wait too,
      // and the timer only bounds it without keeping the process alive.
      logger.on('error', () => resolve());
      transport.on('error', () => resolve());
      logger.on('finish', () => resolve());
      setTimeout(resolve, LOG_WAIT_MS).unref();
      logger.info(formatDelivery(entry));
      logger.end();
    });
  } catch {
    // A log that cannot be written must not change what happens to the mail.
  }
}
