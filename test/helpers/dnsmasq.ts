// A real DNS server for tests: dnsmasq on 127.0.0.1, on a free port, serving only the records
// a test gives it. Usage:
//
//   const dns = await startDns({
//     mx: [{ name: 'example.test', host: 'mx.example.test', pref: 10 }],
//     a: [{ name: 'mx.example.test', ip: '192.0.2.1' }],
//     txt: [{ name: 'sel._domainkey.example.test', text: 'v=DKIM1; k=rsa; p=MIIB…' }],
//   });
//   try { … QMAILREMOTE_DNS: dns.server … or dns.resolver() … } finally { await dns.stop(); }
//
// What it answers:
//   - the records given; names are case-insensitive;
//   - NXDOMAIN for any other name in a served zone, NODATA for a type a known name lacks. The
//     served zones are the last label of every record name ("test" for "mx.example.test"),
//     plus "test" and any listed in `zones`;
//   - SERVFAIL for every name in a `servfail` zone (dnsmasq forwards those to a stub upstream
//     in this process that answers SERVFAIL; dnsmasq passes the error on);
//   - nothing at all for a `timeout` zone (forwarded to a stub that never answers), so the
//     client times out;
//   - REFUSED for names outside every zone (dnsmasq has no upstream servers).
// Nothing is cached, so every query reaches the configuration. Needs the dnsmasq binary
// (Debian package dnsmasq-base).
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { freePort } from './ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DnsRecords {
  /** MX records; `host: '.'` gives a null MX too (see also `nullMx`). */
  readonly mx?: readonly { name: string; host: string; pref: number }[];
  readonly a?: readonly { name: string; ip: string }[];
  readonly aaaa?: readonly { name: string; ip: string }[];
  /**
   * TXT records. A string is split into character-strings of at most 255 bytes (RFC 1035
   * §3.3.14), as DKIM keys need; an array gives the character-strings exactly.
   */
  readonly txt?: readonly { name: string; text: string | readonly string[] }[];
  /** Names answering the RFC 7505 null MX, `MX 0 .`. */
  readonly nullMx?: readonly string[];
  /** Zones (and all names below them) answered with SERVFAIL. */
  readonly servfail?: readonly string[];
  /** Zones (and all names below them) never answered. */
  readonly timeout?: readonly string[];
  /** More zones to serve locally (NXDOMAIN for unknown names) besides the automatic ones. */
  readonly zones?: readonly string[];
}

export interface DnsServer {
  readonly port: number;
  /** "127.0.0.1:PORT": the form QMAILREMOTE_DNS and Resolver#setServers take. */
  readonly server: string;
  /** A Resolver that asks this server; short timeouts unless told otherwise. */
  resolver(options?: { timeout?: number; tries?: number }): Resolver;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 5000;
const MAX_STRING_BYTES = 255;

export interface DnsOptions {
  /**
   * Serve each TCP client in a child, as dnsmasq does outside its debug mode. By default
   * (--no-daemon) TCP is served in the one process, so a client that opens a TCP connection
   * and sends nothing, as rspamd's resolver does at start-up, stops all answers.
   */
  readonly forkForTcp?: boolean;
  /**
   * Serve on port 53 of this loopback address (needs root), so that `server` is the address
   * alone, as a site names its resolver: Node's setServers compiles its IPv6 expression for
   * any server given with a port (docs/verify.md). By default: 127.0.0.1, a free port.
   */
  readonly onPort53?: string;
}

export async function startDns(records: DnsRecords = {}, options: DnsOptions = {}): Promise<DnsServer> {
  const stubs: Socket[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'dnsmasq-'));
  try {
    const lines = configLines(records);
    for (const zone of records.servfail ?? []) {
      const stub = await startStub(true);
      stubs.push(stub);
      lines.push(`server=/${checkName(zone)}/${HOST}#${stub.address().port}`);
    }
    for (const zone of records.timeout ?? []) {
      const stub = await startStub(false);
      stubs.push(stub);
      lines.push(`server=/${checkName(zone)}/${HOST}#${stub.address().port}`);
    }
    const conf = join(dir, 'dnsmasq.conf');
    await writeFile(conf, lines.join('\n') + '\n');
    const forkForTcp = options.forkForTcp ?? false;
    const host = options.onPort53 ?? HOST;
    const { child, port } = options.onPort53 === undefined
      ? await spawnOnFreePort(conf, forkForTcp)
      : { child: await spawnDnsmasq(conf, host, 53, forkForTcp), port: 53 };
    return server(child, host, port, async () => {
      await Promise.all(stubs.map((stub) => new Promise<void>((resolve) => stub.close(() => resolve()))));
      await rm(dir, { recursive: true, force: true });
    });
  } catch (error) {
    for (const stub of stubs) stub.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

function server(child: ChildProcess, host: string, port: number, cleanup: () => Promise<void>): DnsServer {
  const address = port === 53 ? host : `${host}:${port}`;
  // If the test process dies without stop(), do not leave dnsmasq running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stopped: Promise<void> | undefined;
  return {
    port,
    server: address,
    resolver(options = {}) {
      const resolver = new Resolver({ timeout: options.timeout ?? 500, tries: options.tries ?? 2 });
      resolver.setServers([address]);
      return resolver;
    },
    stop() {
      stopped ??= (async () => {
        process.removeListener('exit', killOnExit);
        await terminate(child);
        await cleanup();
      })();
      return stopped;
    },
  };
}

/**
 * The dnsmasq.conf lines for the records. A config file, not argv: only the file parser
 * honours "quoted" TXT strings, so commas, quotes and spaces in them survive. Exported for a
 * verifier that must run its own dnsmasq on port 53 (test/helpers/exim.ts).
 */
export function configLines(records: DnsRecords): string[] {
  const lines: string[] = [];
  const names: string[] = [];
  for (const { name, host, pref } of records.mx ?? []) {
    if (!Number.isInteger(pref) || pref < 0 || pref > 65535) throw new Error(`bad MX preference ${pref}`);
    lines.push(`mx-host=${checkName(name)},${host === '.' ? '.' : checkName(host)},${pref}`);
    names.push(name);
  }
  for (const { name, ip } of [...(records.a ?? []), ...(records.aaaa ?? [])]) {
    lines.push(`host-record=${checkName(name)},${checkName(ip)}`);
    names.push(name);
  }
  for (const { name, text } of records.txt ?? []) {
    const strings = typeof text === 'string' ? splitText(text) : text;
    lines.push(`txt-record=${checkName(name)},${strings.map(quote).join(',')}`);
    names.push(name);
  }
  for (const name of records.nullMx ?? []) {
    // RDATA: preference 0 (two bytes), then the root name (one zero byte).
    lines.push(`dns-rr=${checkName(name)},15,000000`);
    names.push(name);
  }
  const zones = new Set(['test', ...(records.zones ?? [])]);
  for (const name of names) zones.add(name.replace(/\.$/, '').split('.').pop() ?? '');
  zones.delete('');
  for (const zone of zones) lines.push(`local=/${checkName(zone)}/`);
  return lines;
}

// Config syntax has no escape for these outside quotes; test names never need them.
function checkName(name: string): string {
  if (name === '' || /[\s,"/#\\]/.test(name)) throw new Error(`name not usable in dnsmasq.conf: ${JSON.stringify(name)}`);
  return name;
}

/** Cuts text into character-strings of at most 255 bytes of UTF-8, never inside a character. */
export function splitText(text: string): string[] {
  const strings: string[] = [];
  let current = '';
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > MAX_STRING_BYTES) {
      strings.push(current);
      current = '';
      bytes = 0;
    }
    current += char;
    bytes += size;
  }
  strings.push(current);
  return strings;
}

// dnsmasq's quoted strings take \\ \" \n \r \t escapes.
function quote(text: string): string {
  if (text.includes('\0')) throw new Error('NUL cannot be put in a dnsmasq TXT record');
  if (Buffer.byteLength(text) > MAX_STRING_BYTES) throw new Error('TXT character-string over 255 bytes');
  const escaped = text.replace(/[\\"\n\r]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r' })[c] ?? c);
  return `"${escaped}"`;
}

// An upstream for dnsmasq to forward to: answers every query with SERVFAIL, or never.
async function startStub(answer: boolean): Promise<Socket> {
  const socket = createSocket('udp4');
  if (answer) {
    socket.on('message', (query, peer) => {
      const reply = servfailFor(query);
      if (reply !== undefined) socket.send(reply, peer.port, peer.address);
    });
  }
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, HOST, () => resolve());
  });
  return socket;
}

// The query's header and question, flagged as a response with RCODE 2 (SERVFAIL).
function servfailFor(query: Buffer): Buffer | undefined {
  let end = 12;
  while (end < query.length && query[end] !== 0) end += (query[end] ?? 0) + 1;
  end += 5; // the root label, QTYPE, QCLASS
  if (query.length < end) return undefined;
  const reply = Buffer.from(query.subarray(0, end));
  reply[2] = 0x80 | ((query[2] ?? 0) & 0x79); // QR, opcode and RD kept
  reply[3] = 0x80 | 2; // RA, SERVFAIL
  reply.writeUInt16BE(1, 4);
  reply.fill(0, 6, 12); // no answer, authority or additional records
  return reply;
}

async function spawnOnFreePort(conf: string, forkForTcp: boolean): Promise<{ child: ChildProcess; port: number }> {
  let lastError: unknown;
  for (let i = 0; i < START_ATTEMPTS; i++) {
    const port = await freePort();
    try {
      return { child: await spawnDnsmasq(conf, HOST, port, forkForTcp), port };
    } catch (error) {
      if ((error as Error).message.startsWith('dnsmasq not found')) throw error;
      lastError = error; // most likely the port was taken meanwhile: try another
    }
  }
  throw lastError;
}

async function spawnDnsmasq(conf: string, host: string, port: number, forkForTcp: boolean): Promise<ChildProcess> {
  const child = spawn(
    'dnsmasq',
    [
      // --keep-in-foreground is the daemon's behaviour without going to the background; its
      // log then goes to stderr only when told.
      ...(forkForTcp ? ['--keep-in-foreground', '--log-facility=-'] : ['--no-daemon']),
      `--port=${port}`,
      `--listen-address=${host}`,
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--pid-file=',
      '--cache-size=0',
      `--conf-file=${conf}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  let done = false;
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT';
      reject(missing ? new Error('dnsmasq not found: install the Debian package dnsmasq-base') : error);
    });
    child.once('exit', (code, signal) => reject(new Error(`dnsmasq exited (${code ?? signal}): ${stderr}`)));
  });
  try {
    await Promise.race([waitUntilAnswering(host, port, () => done), exited]);
    return child;
  } catch (error) {
    await terminate(child);
    throw error;
  } finally {
    done = true;
    exited.catch(() => undefined); // a later exit is stop()'s business
  }
}

// Any DNS answer, even REFUSED, shows the server is up; ECONNREFUSED or silence does not.
async function waitUntilAnswering(host: string, port: number, givenUp: () => boolean): Promise<void> {
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`${host}:${port}`]);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!givenUp()) {
    try {
      await resolver.resolve4('ready.probe.test');
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ECONNREFUSED' && code !== 'ETIMEOUT') return;
    }
    if (Date.now() > deadline) throw new Error(`dnsmasq did not answer on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** SIGTERM, then SIGKILL if the child is still there after 2 s; resolves once it has exited. */
export async function terminate(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await gone;
  clearTimeout(timer);
}
