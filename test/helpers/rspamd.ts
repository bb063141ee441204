// rspamd's own DKIM verdict on a message: a real rspamd (Debian's package) started with a
// configuration of its DKIM module alone, asking a dnsmasq of its own for keys, and a message
// posted to its normal worker's /checkv2 as rspamc does. Its symbols name each signature:
// R_DKIM_ALLOW "example.com:s=sel" for a pass, R_DKIM_REJECT for a failed one, R_DKIM_PERMFAIL
// and R_DKIM_TEMPFAIL for keys that are broken or could not be fetched.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDns, terminate, type DnsRecords } from './dnsmasq.ts';
import { freePort } from './ports.ts';

export const RSPAMD = '/usr/bin/rspamd';
const READY_TIMEOUT_MS = 30_000;
const CHECK_TIMEOUT_MS = 20_000;

export const rspamdMissing: string | undefined = existsSync(RSPAMD) ? undefined : 'rspamd is not installed (Debian package rspamd)';

/** The R_DKIM_* symbols of one check, each with its options ("domain:s=selector"). */
export type RspamdDkim = Readonly<Record<string, readonly string[]>>;

export interface Rspamd {
  check(message: Buffer): Promise<RspamdDkim>;
  stop(): Promise<void>;
}

const config = (dir: string, port: number, dnsServer: string): string => `options {
  pidfile = "${dir}/rspamd.pid";
  dbdir = "${dir}/db";
  filters = "dkim";
  dns { nameserver = ["${dnsServer}"]; timeout = 1s; retransmits = 2; }
}
logging { type = "console"; level = "error"; }
worker "normal" { bind_socket = "127.0.0.1:${port}"; count = 1; task_timeout = 10s; }
dkim { }
`;

/**
 * Starts rspamd on a free loopback port, with `records` served to it alone: its resolver holds
 * a TCP connection to its server open, which the tests' usual dnsmasq cannot share.
 */
export async function startRspamd(records: DnsRecords): Promise<Rspamd> {
  const dns = await startDns(records, { forkForTcp: true });
  const dir = mkdtempSync(join(tmpdir(), 'rspamd-'));
  mkdirSync(join(dir, 'db'));
  const port = await freePort();
  writeFileSync(join(dir, 'rspamd.conf'), config(dir, port, dns.server));
  // As root rspamd must be told whom to run as; -i lets that be root, for a test.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'root', '-g', 'root', '-i'] : [];
  const child = spawn(RSPAMD, ['-f', '-c', join(dir, 'rspamd.conf'), ...asRoot, `--var=DBDIR=${dir}/db`, `--var=RUNDIR=${dir}`, `--var=LOGDIR=${dir}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH, TMPDIR: dir },
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    await dns.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(port, child, () => stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    async check(message) {
      const reply = JSON.parse((await post(port, '/checkv2', message, CHECK_TIMEOUT_MS)).toString()) as { symbols?: Record<string, { options?: string[] }> };
      const dkim: Record<string, readonly string[]> = {};
      for (const [name, symbol] of Object.entries(reply.symbols ?? {})) if (name.startsWith('R_DKIM_')) dkim[name] = symbol.options ?? [];
      return dkim;
    },
    stop,
  };
}

async function waitUntilReady(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`rspamd exited (${child.exitCode ?? child.signalCode}): ${log()}`);
    try {
      if ((await post(port, '/ping', Buffer.alloc(0), 1000)).toString().startsWith('pong')) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`rspamd did not answer on port ${port}: ${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function post(port: number, path: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: body.length > 0 ? 'POST' : 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`rspamd ${path}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`rspamd ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
