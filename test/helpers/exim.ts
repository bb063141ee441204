// A real Exim for the tests (Debian's exim4-daemon-light), two ways:
// - verifyWithExim(): Exim's own DKIM verdict on a message, as an Exim MX reaches it: `exim4 -bh`
//   runs a whole SMTP session from a client address without delivering anything, and the DKIM
//   ACL of a small configuration logs each signature's result (the Exim manual, "Verifying DKIM
//   signatures in incoming mail");
// - startEximServer(): Exim answering SMTP on a loopback port, one `exim4 -bs` per connection,
//   which queues what it accepts in a spool of its own and delivers nothing, for qmail-remote to
//   talk to.
//
// Exim asks the system resolver for keys and has no setting that names another server, so the
// session runs in new mount and network namespaces (`unshare`, root, as CI is): there
// /etc/resolv.conf is a bind mount naming 127.0.0.1, where a dnsmasq of the test's own, started
// inside, serves the records on port 53. The host's resolver and ports are never touched.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configLines, type DnsRecords } from './dnsmasq.ts';

export const EXIM = '/usr/sbin/exim4';
const UNSHARE = '/usr/bin/unshare';
const TIMEOUT_MS = 60_000;

/** Why Exim cannot be run here, or undefined when it can. */
export const eximMissing: string | undefined = !existsSync(EXIM)
  ? 'exim4 is not installed (Debian package exim4-daemon-light)'
  : process.getuid?.() !== 0
    ? 'Exim runs in its own network namespace, which needs root'
    : !existsSync(UNSHARE)
      ? 'unshare is not installed'
      : !['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].some((path) => existsSync(path))
        ? 'ip is not installed (Debian package iproute2)'
        : undefined;

export type EximSignature = {
  domain: string;
  selector: string;
  algorithm: string;
  /** Exim's $dkim_verify_status: pass, fail, invalid or none. */
  status: string;
  /** Exim's $dkim_verify_reason when not a pass, e.g. bodyhash_mismatch, signature_incorrect. */
  reason: string;
};

/**
 * Exim's verdict on each signature of `message` (wire bytes: CRLF, not dot-stuffed), keys and
 * other records served from `records`. One entry per signature, in Exim's order.
 */
export async function verifyWithExim(message: Buffer, records: Pick<DnsRecords, 'txt'>): Promise<EximSignature[]> {
  const dir = mkdtempSync(join(tmpdir(), 'exim-'));
  try {
    writeFileSync(join(dir, 'exim.conf'), CONFIG(dir, '10M', true));
    const [file, args] = withDnsOfItsOwn(dir, records, ['-C', join(dir, 'exim.conf'), '-bh', '192.0.2.1']);
    const output = await new Promise<string>((resolve, reject) => {
      const child = execFile(file, args, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
        error ? reject(new Error(`exim -bh: ${error.message}\n${stderr}`)) : resolve(`${stdout}${stderr}`),
      );
      child.stdin?.end(smtpSession(message));
    });
    if (!/^250 OK id=/m.test(output)) throw new Error(`exim did not accept the message:\n${output}`);
    return dkimResults(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The client's side of one transaction, the message dot-stuffed (RFC 5321 §4.5.2).
function smtpSession(message: Buffer): Buffer {
  const body = message.toString('latin1').replace(/^\./gm, '..');
  const end = body.endsWith('\r\n') ? '' : '\r\n';
  return Buffer.from(
    `EHLO client.test\r\nMAIL FROM:<sender@client.test>\r\nRCPT TO:<rcpt@receiver.test>\r\nDATA\r\n${body}${end}.\r\nQUIT\r\n`,
    'latin1',
  );
}

export interface EximServer {
  readonly port: number;
  /** Exim's main log so far: the ACLs' MAIL-PARAMS and DKIM-RESULT lines, a `<=` line per message. */
  mainlog(): string;
  /** The bodies Exim has queued, as its spool keeps them (LF line ends). */
  bodies(): Buffer[];
  close(): Promise<void>;
}

// Both ways' configuration: the ACLs log what the tests read; with `dkim`, every signature.
const CONFIG = (dir: string, sizeLimit: string, dkim: boolean): string => `primary_hostname = mx.receiver.test
exim_user = root
exim_group = root
keep_environment =
spool_directory = ${dir}/spool
log_file_path = ${dir}/%slog
log_selector = +8bitmime +received_recipients
message_size_limit = ${sizeLimit}
smtputf8_advertise_hosts = *
tls_advertise_hosts =
chunking_advertise_hosts =
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
${dkim ? 'acl_smtp_dkim = acl_dkim\ndkim_verify_hashes = sha256 : sha1\ndkim_verify_keytypes = ed25519 : rsa\n' : ''}begin acl
acl_mail:
  warn logwrite = MAIL-PARAMS size=$message_size smtputf8=$message_smtputf8
  accept
acl_rcpt:
  accept
acl_dkim:
  warn logwrite = DKIM-RESULT d=$dkim_domain s=$dkim_selector a=$dkim_algo status=$dkim_verify_status reason=$dkim_verify_reason
  accept
`;

// Exim with DNS of its own: $1 the directory (dnsmasq.conf, resolv.conf), the rest Exim's
// arguments. dnsmasq without --no-daemon returns once its socket is bound (its parent waits for
// the daemon's start-up), so Exim never asks before it can answer. Exim is a child, not exec'd,
// so that the trap stops dnsmasq after it; each run's pid file is named after its shell and
// removed by the trap.
const WITH_DNS = `set -e
dir=$1
shift
ip link set lo up
mount --bind "$dir/resolv.conf" /etc/resolv.conf
dnsmasq --conf-file="$dir/dnsmasq.conf" --no-resolv --no-hosts --listen-address=127.0.0.1 --bind-interfaces --port=53 --pid-file="$dir/dnsmasq-$$.pid" --user=root --cache-size=0
trap 'kill "$(cat "$dir/dnsmasq-$$.pid")"; rm -f "$dir/dnsmasq-$$.pid"' EXIT
${EXIM} "$@"
`;

/** The command that runs Exim with `eximArgs` in new namespaces whose DNS serves `records`. */
function withDnsOfItsOwn(dir: string, records: Pick<DnsRecords, 'txt'>, eximArgs: readonly string[]): [string, string[]] {
  writeFileSync(join(dir, 'dnsmasq.conf'), `${configLines(records).join('\n')}\n`);
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  return [UNSHARE, ['--mount', '--net', '/bin/sh', '-c', WITH_DNS, 'exim-with-dns', dir, ...eximArgs]];
}

/**
 * Exim on a free loopback port: each connection is handed to `exim4 -bs` as from 192.0.2.1
 * (-oMa, which root may set), and -odq keeps what it accepts in its spool. No TLS, no CHUNKING;
 * SIZE (`message_size_limit`, default 10M), 8BITMIME and SMTPUTF8 offered. With `dkim`, Exim
 * also verifies every DKIM signature as it receives the message, keys from those records, and
 * logs a DKIM-RESULT line for each (it then runs in namespaces of its own, as verifyWithExim()).
 */
export async function startEximServer(options: { sizeLimit?: string; dkim?: Pick<DnsRecords, 'txt'> } = {}): Promise<EximServer> {
  const dir = mkdtempSync(join(tmpdir(), 'exim-server-'));
  writeFileSync(join(dir, 'exim.conf'), CONFIG(dir, options.sizeLimit ?? '10M', options.dkim !== undefined));
  const exim = ['-C', join(dir, 'exim.conf'), '-bs', '-odq', '-oMa', '192.0.2.1'];
  const command: [string, string[]] = options.dkim ? withDnsOfItsOwn(dir, options.dkim, exim) : [EXIM, exim];
  const children = new Set<ChildProcess>();
  const server: Server = createServer((socket: Socket) => {
    const child = spawn(command[0], command[1], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.add(child);
    socket.pipe(child.stdin);
    child.stdout.pipe(socket);
    socket.on('error', () => child.kill('SIGKILL'));
    child.stdin.on('error', () => socket.destroy());
    child.on('exit', () => {
      children.delete(child);
      socket.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    mainlog: () => (existsSync(join(dir, 'mainlog')) ? readFileSync(join(dir, 'mainlog'), 'utf8') : ''),
    // A -D file is its own name ("<id>-D") on a line, then the body.
    bodies: () => {
      const input = join(dir, 'spool', 'input');
      const files = existsSync(input) ? readdirSync(input).filter((name) => name.endsWith('-D')) : [];
      return files.map((name) => {
        const data = readFileSync(join(input, name));
        return data.subarray(data.indexOf(0x0a) + 1);
      });
    },
    async close() {
      // Exim ends by itself after QUIT, and its shell then stops the connection's dnsmasq. One
      // still running after a while is killed, which skips the shell's trap: every dnsmasq
      // named by a pid file is stopped here too, so none outlives the test.
      await Promise.all([...children].map((child) => exited(child, CLOSE_WAIT_MS)));
      for (const child of children) child.kill('SIGKILL');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const name of readdirSync(dir).filter((file) => /^dnsmasq-\d+\.pid$/.test(file))) {
        const pid = Number(readFileSync(join(dir, name), 'utf8').trim());
        if (Number.isInteger(pid) && pid > 1) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLOSE_WAIT_MS = 5000;

/** Resolves when `child` has exited, or after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Exim runs the DKIM ACL once for each name in $dkim_signers (d= and i= both), so one
// signature can be logged twice: kept once.
/** The DKIM-RESULT lines of Exim's output or main log, one entry per signature. */
export function dkimResults(output: string): EximSignature[] {
  const seen = new Map<string, EximSignature>();
  // A logged line: "LOG: <id> DKIM-RESULT …" from -bh, "<date> <time> <id> DKIM-RESULT …" in a
  // main log; -bh's debug output also echoes the ACL line unexpanded, which must not count.
  const line = /^(?:LOG: \S+|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+) DKIM-RESULT d=(\S*) s=(\S*) a=(\S*) status=(\S*) reason=(\S*)$/gm;
  for (const match of output.matchAll(line)) {
    const [, domain = '', selector = '', algorithm = '', status = '', reason = ''] = match;
    seen.set(`${domain} ${selector} ${algorithm}`, { domain, selector, algorithm, status, reason });
  }
  return [...seen.values()];
}
