// Transport security end to end: the real bin/qmail-remote against TLS servers on loopback
// whose certificates come from a test CA made here by openssl (good, wrong name, self-signed,
// expired), DNS from dnsmasq, and a real MTA-STS policy host on port 443. The CA is trusted
// the way an administrator trusts a private one: SSL_CERT_FILE. Every server records every
// byte it receives, decrypted, so "the credentials never left" is checked on what arrived.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Homes } from '../helpers/qmail-remote-rig.ts';
import { run as runCommand, runNode, type Run, type RunOptions } from '../helpers/run.ts';
import { startScriptServer, type Script, type ScriptServer, type TlsIdentity } from '../helpers/script-server.ts';
import { startDns, type DnsRecords, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeTestCa, type TestCa } from '../helpers/ca.ts';
import { enforcePolicy, policyHostIp, startPolicyHost } from '../helpers/policy-host.ts';

const DOC = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));
const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const PASSWORD = 's3cret-never-on-the-wire';
const work = mkdtempSync(join(tmpdir(), 'qrd-tls-'));
const noCaDir = join(work, 'no-ca-dir');
let ca: TestCa;
let stranger: TestCa;

before(() => {
  mkdirSync(noCaDir);
  ca = makeTestCa();
  stranger = makeTestCa('some other CA');
});
after(() => {
  ca.cleanup();
  stranger.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The classes of docs/reliability.md's "TLS policy" table, in its order. */
const CLASSES = ['Smarthost credentials over STARTTLS', 'Relays written as addresses, SMTPS', 'tlshosts/ and no rule', 'MTA-STS enforce and testing', 'MTA-STS policy cache'] as const;
type Class = (typeof CLASSES)[number];
const cases: Class[] = [];
const passed: Class[] = [];

/** One case of the table: registered under its class, counted once it has passed. */
function tcase(cls: Class, name: string, body: () => Promise<void>): void {
  cases.push(cls);
  test(name, async () => {
    await body();
    passed.push(cls);
  });
}

const homes = new Homes('qrd-tls-homes-');
/** A qmail home (test/helpers/qmail-remote-rig.ts) with control/tlshosts/ and, unless told otherwise, mta-sts/. */
function home(files: Record<string, string> = {}, withCache = true): string {
  const dir = homes.home(files);
  mkdirSync(join(dir, 'control', 'tlshosts'), { recursive: true });
  if (withCache) mkdirSync(join(dir, 'mta-sts'), { mode: 0o700 });
  return dir;
}

/** When set, each run goes under strace and the files it opened are written to this path. */
let tracing: string | null = null;

async function qmailRemote(qmailHome: string, dns: DnsServer, host = 'example.net'): Promise<{ run: Run; log: string }> {
  const fd = openSync(SIMPLE, 'r');
  const logFile = join(qmailHome, `log-${Math.random()}`);
  try {
    const strace = tracing === null ? [] : ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', tracing, process.execPath];
    const run = await (tracing === null ? runNode : (script: string, args: string[], o: RunOptions) => runCommand('/usr/bin/strace', [...strace, script, ...args], o))(
      QMAIL_REMOTE, [host, 'alice@example.com', 'bob@example.net'], {
      stdin: fd,
      env: {
        PATH: process.env.PATH ?? '', QMAILHOME: qmailHome, QMAILREMOTE_DNS: dns.server, QMAILREMOTE_LOG: logFile,
        SSL_CERT_FILE: ca.certFile, SSL_CERT_DIR: noCaDir,
      },
    });
    assert.equal(run.stderr, '', 'nothing on fd 2');
    assert.equal(run.status, 0);
    // Every case here is one where mail must be delivered or kept: never a bounce.
    assert.match(run.stdout, /^(?:r\0K|Z)/, 'K or Z, never D or h');
    let log = '';
    try {
      log = readFileSync(logFile, 'latin1');
    } catch {
      // no line
    }
    return { run, log };
  } finally {
    closeSync(fd);
  }
}

async function withDns<T>(records: DnsRecords, body: (dns: DnsServer) => Promise<T>): Promise<T> {
  const dns = await startDns(records);
  try {
    return await body(dns);
  } finally {
    await dns.stop();
  }
}

const STARTTLS_EHLO = '250-script.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS';
/** A server that offers STARTTLS with this identity (and AUTH PLAIN), or none at all. */
function tlsScript(identity: TlsIdentity | null): Script {
  if (identity === null) return { replies: { EHLO: '250-script.test\r\n250 AUTH PLAIN LOGIN' } };
  return {
    replies: {
      EHLO: [STARTTLS_EHLO, '250-script.test\r\n250 AUTH PLAIN LOGIN'],
      STARTTLS: { reply: '220 go ahead', startTls: identity },
      AUTH: '235 2.7.0 ok',
    },
  };
}

const received = (server: ScriptServer): string => server.sessions.map((s) => s.received.toString('latin1')).join('');
const commands = (server: ScriptServer): string[] => server.sessions.flatMap((s) => s.commands.map((c) => c.split(' ')[0] ?? ''));

/** What a failed check must leave behind: a Z, no AUTH, no MAIL, and not a byte of the password. */
function assertNothingSent(server: ScriptServer, run: Run): void {
  assert.match(run.stdout, /^Z/);
  const verbs = commands(server);
  assert.ok(!verbs.includes('AUTH') && !verbs.includes('MAIL') && !verbs.includes('RCPT'), verbs.join(' '));
  assert.ok(!received(server).includes(PASSWORD) && !received(server).includes(Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')));
}

// ---------------------------------------------------------------------------------------------
// Smarthost credentials

const RELAY = 'relay.example.test';
const relayDns = (ip = '127.0.0.1'): DnsRecords => ({ a: [{ name: RELAY, ip }] });

async function toRelay(identity: TlsIdentity | null, route = (port: number) => `:${RELAY}:${port} alice ${PASSWORD}\n`) {
  const server = await startScriptServer(tlsScript(identity));
  try {
    const result = await withDns(relayDns(), (dns) => qmailRemote(home({ smtproutes: route(server.port) }), dns));
    await server.idle();
    return { ...result, server };
  } finally {
    await server.close();
  }
}

tcase('Smarthost credentials over STARTTLS', 'credentials go to a relay whose certificate verifies for its name, with SNI', async () => {
  const { run, server, log } = await toRelay(ca.issue({ dns: [RELAY] }));
  assert.match(run.stdout, /^r\0K127\.0\.0\.1 accepted message\./);
  assert.deepEqual(commands(server), ['EHLO', 'STARTTLS', 'EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
  assert.equal(server.sessions[0]?.servername, RELAY);
  assert.match(log, / tls=TLSv1\.[23] cert=verified policy=smarthost tls-result=success /);
});

for (const [name, identity, result] of [
  ['a certificate for another name', () => ca.issue({ dns: ['other.example.test'] }), 'certificate-host-mismatch'],
  ['a self-signed certificate', () => ca.selfSigned({ dns: [RELAY] }), 'certificate-not-trusted'],
  ['a certificate from a CA nobody trusts', () => stranger.issue({ dns: [RELAY] }), 'certificate-not-trusted'],
  ['an expired certificate', () => ca.issue({ dns: [RELAY], days: -1 }), 'certificate-expired'],
  ['no STARTTLS', () => null, 'starttls-not-supported'],
] as const) {
  tcase('Smarthost credentials over STARTTLS', `credentials and relay with ${name}: Z, no AUTH, no MAIL, the password never sent`, async () => {
    const { run, server, log } = await toRelay(identity());
    assertNothingSent(server, run);
    assert.match(run.stdout, /^ZConnected to 127\.0\.0\.1 but TLS is required and could not be verified\. \(#4\.7\.5\)\n\0$/);
    assert.equal(server.sessions.length, 1, 'no plaintext retry');
    assert.match(log, new RegExp(`policy=smarthost tls-result=${result} `));
  });
}

tcase('Relays written as addresses, SMTPS', 'a relay written as an IP address is verified against the certificate\'s IP addresses', async () => {
  const route = (port: number) => `:[127.0.0.1]:${port} alice ${PASSWORD}\n`;
  const good = await toRelay(ca.issue({ dns: ['relay.example.test'], ip: ['127.0.0.1'] }), route);
  assert.match(good.run.stdout, /^r\0K/);
  assert.equal(good.server.sessions[0]?.servername, '', 'no SNI for an address');
  const named = await toRelay(ca.issue({ dns: ['127.0.0.1.example.test'] }), route);
  assertNothingSent(named.server, named.run);
});

tcase('Relays written as addresses, SMTPS', 'SMTPS: port 465 in smtproutes is implicit TLS, verified the same way', async () => {
  const ip = policyHostIp().replace(/\.1$/, '.25');
  for (const [identity, ok] of [[ca.issue({ dns: [RELAY] }), true], [ca.issue({ dns: ['other.example.test'] }), false]] as const) {
    const server = await startScriptServer({ implicitTls: identity, replies: { EHLO: '250-smtps.test\r\n250 AUTH PLAIN', AUTH: '235 ok' } }, ip, 465);
    try {
      const { run } = await withDns(relayDns(ip), (dns) => qmailRemote(home({ smtproutes: `:${RELAY}:465 alice ${PASSWORD}\n` }), dns));
      await server.idle();
      if (ok) {
        assert.match(run.stdout, new RegExp(`^r\\0K${ip.replace(/\./g, '\\.')} accepted message\\.`));
        assert.deepEqual(commands(server), ['EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
        assert.equal(server.sessions[0]?.servername, RELAY);
      } else {
        assertNothingSent(server, run);
      }
    } finally {
      await server.close();
    }
  }
});

// ---------------------------------------------------------------------------------------------
// tlshosts/

const MX = 'mx.example.net';
// Not 127.0.0.1: an MX at one of this host's own addresses is "me" (qmail's MX_IS_ME).
const mxDns = (ip: string): DnsRecords => ({ mx: [{ name: 'example.net', host: MX, pref: 10 }], a: [{ name: MX, ip }] });

async function toMx(identity: TlsIdentity | null, files: Record<string, string>) {
  const ip = policyHostIp().replace(/\.1$/, '.9');
  const records = mxDns(ip);
  const server = await startScriptServer(tlsScript(identity), ip);
  try {
    const result = await withDns(records, (dns) => qmailRemote(home({ smtproutes: `example.net::${server.port}\n`, ...files }), dns));
    await server.idle();
    return { ...result, server };
  } finally {
    await server.close();
  }
}

tcase('tlshosts/ and no rule', 'tlshosts/<mx>.pem: TLS mandatory, verified against that file\'s CAs only', async () => {
  const pinned = { [`tlshosts/${MX}.pem`]: ca.cert.toString() };
  const good = await toMx(ca.issue({ dns: [MX] }), pinned);
  assert.match(good.run.stdout, /^r\0K/);
  assert.match(good.log, /cert=verified policy=tlshosts tls-result=success/);
  // The system store (SSL_CERT_FILE) trusts this CA, the tlshosts/ file does not.
  const otherCa = await toMx(ca.issue({ dns: [MX] }), { [`tlshosts/${MX}.pem`]: stranger.cert.toString() });
  assertNothingSent(otherCa.server, otherCa.run);
  const plain = await toMx(null, pinned);
  assertNothingSent(plain.server, plain.run);
  assert.equal(plain.server.sessions.length, 1);
});

tcase('tlshosts/ and no rule', 'without a rule, nothing changes: an unverifiable certificate is still used, and logged as such', async () => {
  const { run, log } = await toMx(ca.selfSigned({ dns: [MX] }), {});
  assert.match(run.stdout, /^r\0K/);
  assert.match(log, / tls=TLSv1\.[23] cert=unverified policy=none tls-result=success /);
});

// ---------------------------------------------------------------------------------------------
// MTA-STS

const GOOD_MX = 'mx2.example.net';
const BAD_MX = 'mx1.example.net';

interface StsSetup {
  mode?: 'enforce' | 'testing';
  /** MX hosts: name → (server identity or null for no STARTTLS), all at their own loopback address. */
  mx: Array<[string, TlsIdentity | null]>;
  listed?: string[];
  id?: string;
}

async function toStsDomain(setup: StsSetup, deliveries = 1, qmailHome = home()) {
  const hostIp = policyHostIp();
  const policyHost = await startPolicyHost(ca.issue({ dns: ['mta-sts.example.net'] }), hostIp, enforcePolicy(setup.listed ?? [GOOD_MX], 86400, setup.mode));
  const servers: ScriptServer[] = [];
  try {
    const base = policyHostIp().replace(/\.1$/, '');
    let port = 0;
    for (const [i, [, identity]] of setup.mx.entries()) {
      servers.push(await startScriptServer(tlsScript(identity), `${base}.${10 + i}`, port));
      port = servers[0]?.port ?? 0;
    }
    writeFileSync(join(qmailHome, 'control', 'smtproutes'), `example.net::${port}\n`);
    const records: DnsRecords = {
      mx: setup.mx.map(([name], i) => ({ name: 'example.net', host: name, pref: 10 * (i + 1) })),
      a: [...setup.mx.map(([name], i) => ({ name, ip: `${base}.${10 + i}` })), { name: 'mta-sts.example.net', ip: hostIp }],
      txt: [{ name: '_mta-sts.example.net', text: `v=STSv1; id=${setup.id ?? '1'}` }],
    };
    const runs = await withDns(records, (dns) => Promise.all(Array.from({ length: deliveries }, () => qmailRemote(qmailHome, dns))));
    await Promise.all(servers.map((s) => s.idle()));
    return { runs, servers, fetches: policyHost.fetches() };
  } finally {
    await Promise.all(servers.map((s) => s.close()));
    await policyHost.close();
  }
}

tcase('MTA-STS enforce and testing', 'MTA-STS enforce: an unlisted MX gets no MAIL; the listed one gets the mail over verified TLS', async () => {
  const { runs, servers } = await toStsDomain({ mx: [[BAD_MX, ca.issue({ dns: [BAD_MX] })], [GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] });
  const [{ run, log }] = runs as [{ run: Run; log: string }];
  assert.match(run.stdout, /^r\0K127\.\d+\.\d+\.11 accepted message\./);
  assert.equal(servers[0]?.sessions.length, 0, 'the unlisted MX is not even connected to');
  assert.equal(servers[1]?.sessions[0]?.servername, GOOD_MX);
  assert.match(log, /cert=verified policy=sts-enforce tls-result=success/);
});

for (const [name, identity, result] of [
  ['a certificate for another name', () => ca.issue({ dns: ['mx9.example.net'] }), 'certificate-host-mismatch'],
  ['an expired certificate', () => ca.issue({ dns: [GOOD_MX], days: -1 }), 'certificate-expired'],
  ['a self-signed certificate', () => ca.selfSigned({ dns: [GOOD_MX] }), 'certificate-not-trusted'],
  ['no STARTTLS', () => null, 'starttls-not-supported'],
] as const) {
  tcase('MTA-STS enforce and testing', `MTA-STS enforce, the listed MX with ${name}: Z, no MAIL, no plaintext retry`, async () => {
    const { runs, servers } = await toStsDomain({ mx: [[GOOD_MX, identity()]] });
    const [{ run, log }] = runs as [{ run: Run; log: string }];
    assertNothingSent(servers[0] as ScriptServer, run);
    assert.equal(servers[0]?.sessions.length, 1);
    assert.match(log, new RegExp(`policy=sts-enforce tls-result=${result}`));
  });
}

tcase('MTA-STS enforce and testing', 'MTA-STS enforce with no MX listed: Z (never D), nothing connected to', async () => {
  const { runs, servers } = await toStsDomain({ mx: [[BAD_MX, ca.issue({ dns: [BAD_MX] })]] });
  const [{ run }] = runs as [{ run: Run; log: string }];
  assert.match(run.stdout, /^Z.*MTA-STS/);
  assert.equal(servers[0]?.sessions.length, 0);
});

tcase('MTA-STS enforce and testing', 'MTA-STS testing: delivered as before over unverified TLS, the failure logged', async () => {
  const { runs } = await toStsDomain({ mode: 'testing', mx: [[BAD_MX, ca.selfSigned({ dns: [BAD_MX] })]] });
  const [{ run, log }] = runs as [{ run: Run; log: string }];
  assert.match(run.stdout, /^r\0K/);
  assert.match(log, /cert=unverified policy=sts-testing tls-result=certificate-not-trusted/);
});

tcase('MTA-STS enforce and testing', 'MTA-STS testing, a certificate that verifies: delivered, logged as verified', async () => {
  const { runs } = await toStsDomain({ mode: 'testing', mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] });
  const [{ run, log }] = runs as [{ run: Run; log: string }];
  assert.match(run.stdout, /^r\0K/);
  assert.match(log, /cert=verified policy=sts-testing tls-result=success/);
});

tcase('MTA-STS policy cache', '20 deliveries at once to one MTA-STS domain fetch its policy once, through the shared cache', async () => {
  const qmailHome = home();
  const { runs, fetches } = await toStsDomain({ mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] }, 20, qmailHome);
  assert.equal(runs.filter(({ run }) => /^r\0K/.test(run.stdout)).length, 20);
  assert.equal(fetches, 1);
  assert.deepEqual(readdirSync(join(qmailHome, 'mta-sts')), ['example.net.json']);
  // Cached: the next delivery fetches nothing (a new policy host, so its count starts at 0).
  const again = await toStsDomain({ mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] }, 1, qmailHome);
  assert.equal(again.fetches, 0);
  // A new id: fetched again.
  const changed = await toStsDomain({ mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]], id: '2' }, 1, qmailHome);
  assert.equal(changed.fetches, 1);
});

tcase('MTA-STS policy cache', 'without the cache directory each delivery fetches for itself, and still enforces', async () => {
  const { runs, fetches } = await toStsDomain({ mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] }, 2, home({}, false));
  assert.equal(runs.filter(({ run }) => /^r\0K/.test(run.stdout)).length, 2);
  assert.equal(fetches, 2);
});

/** Runs body with every qmail-remote run under strace; what the runs opened, as one text. */
async function opened(body: () => Promise<void>): Promise<string> {
  const trace = join(work, `trace-${Math.random()}`);
  tracing = trace;
  try {
    await body();
  } finally {
    tracing = null;
  }
  return readFileSync(trace, 'latin1');
}

test('no policy: neither the CA store nor mailauth is read; a cached policy: mailauth is not loaded, nor the store without a handshake', async (t) => {
  if (!existsSync('/usr/bin/strace')) return t.skip('strace is not installed');
  const none = await opened(async () => {
    const { run } = await toMx(ca.selfSigned({ dns: [MX] }), {});
    assert.match(run.stdout, /^r\0K/);
  });
  assert.match(none, /qmail-remote\.cjs/, 'the trace sees the program');
  assert.doesNotMatch(none, /mailauth|\/etc\/ssl\/certs|test-ca-/);

  const qmailHome = home();
  const setup = { mx: [[GOOD_MX, ca.issue({ dns: [GOOD_MX] })]] } satisfies StsSetup;
  await toStsDomain(setup, 1, qmailHome);
  let fetches = -1;
  const cached = await opened(async () => {
    fetches = (await toStsDomain(setup, 1, qmailHome)).fetches;
  });
  assert.equal(fetches, 0);
  assert.match(cached, /mta-sts\/example\.net\.json/, 'the cached policy was read');
  assert.doesNotMatch(cached, /mailauth/);

  // A cached testing policy and an MX without STARTTLS: the store would only tell the log
  // about a handshake that never happens, so it is not read.
  const testingHome = home();
  const testing = { mode: 'testing', mx: [[GOOD_MX, null]] } satisfies StsSetup;
  await toStsDomain(testing, 1, testingHome);
  const plain = await opened(async () => {
    const { runs } = await toStsDomain(testing, 1, testingHome);
    assert.match(runs[0]?.run.stdout ?? '', /^r\0K/);
  });
  assert.match(plain, /mta-sts\/example\.net\.json/, 'the cached policy was read');
  assert.doesNotMatch(plain, /mailauth|\/etc\/ssl\/certs|test-ca-/);
});

test('docs/reliability.md tabulates exactly the cases run here, class by class', () => {
  const section = readFileSync(DOC, 'utf8').split(/^## /m).find((part) => part.startsWith('TLS policy'));
  assert.ok(section, 'the section "## TLS policy"');
  const rows = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((cell) => cell.trim());
    if (cells.length >= 6) rows.set(cells[0] ?? '', cells.slice(1));
  }
  for (const cls of CLASSES) {
    const n = cases.filter((c) => c === cls).length;
    assert.deepEqual(rows.get(cls)?.slice(0, 5), [String(n), '0', '0', '0', '0'], cls);
  }
  assert.deepEqual(rows.get('**Total**')?.slice(0, 5), [`**${cases.length}**`, '**0**', '**0**', '**0**', '**0**']);
  assert.equal(passed.length, cases.length, 'every case ran and passed');
});
