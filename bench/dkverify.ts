// `node bench/dkverify.ts` (after `npm run build`): start-up and peak RSS of bin/qmail-dkverify,
// run as qmail-smtpd runs it (message on fd 0, envelope on a pipe as fd 1, the next program a
// shell script that reads both and exits 0), against `node -e 0` on the same Node and a
// minimal script calling mailauth's authenticate(). Keys and SPF records come from a dnsmasq
// on loopback. `--quick` is a smoke test. Markdown to stdout, progress to stderr.
import { chmodSync, mkdtempSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDns } from '../test/helpers/dnsmasq.ts';
import { makeRsaKey } from '../test/helpers/keys.ts';
import { mailauthSign } from '../test/verify/signers.ts';
import { asReceived } from '../test/verify/harness.ts';
import { HAS_GNU_TIME, interleave, runOnce, stats, type Command, type Sample } from './measure.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'qmail-dkverify');
const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 3 : 20;
const BIG_MIB = QUICK ? 10 : 100;

// The start-up breakdown: `node` processes that each do one piece of what a verification
// starts, so the difference to `node -e 0` is what that piece costs.
const PARTS = JSON.stringify(join(ROOT, 'dist', 'qmail-dkverify-mailauth.cjs'));
const BREAKDOWN: readonly (readonly [string, string])[] = [
  ['a worker thread running nothing (the deadline\'s price)', "new (require('node:worker_threads').Worker)('0', { eval: true })"],
  ["mailauth's DKIM verifier loaded (dkimVerify)", `require(${PARTS}).dkimVerify`],
  ["mailauth's DKIM, SPF, DMARC and ARC loaded", `const m = require(${PARTS}); m.dkimVerify; m.spf; m.evaluateDmarc; m.arc`],
];

const NODE = 'node -e 0';
const PASS_THROUGH = 'qmail-dkverify, DKVERIFY unset (pass-through)';
const VERIFY = 'qmail-dkverify, DKVERIFY="" (verify)';

const dir = mkdtempSync(join(tmpdir(), 'bench-dkverify-'));
const rsa = makeRsaKey(2048);
const dns = await startDns({
  txt: [
    { name: 'default._domainkey.example.com', text: rsa.txt },
    { name: 'example.com', text: 'v=spf1 ip4:192.0.2.1 -all' },
  ],
});
try {
  writeFileSync(join(dir, 'me'), 'mx.example.net\n');
  writeFileSync(join(dir, 'envelope'), 'Fuser@example.com\0Trcpt@example.net\0\0');
  writeFileSync(join(dir, 'queue'), '#!/bin/sh\ncat >/dev/null; cat <&1 >/dev/null; exit 0\n');
  chmodSync(join(dir, 'queue'), 0o755);
  const body = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n'.repeat(24);
  const message = Buffer.from(`From: User <user@example.com>\r\nTo: rcpt@example.net\r\nSubject: bench\r\nMessage-ID: <b@example.com>\r\n\r\n${body}`);
  const small = join(dir, 'small.eml');
  writeFileSync(small, asReceived(await mailauthSign(message, { selector: 'default', key: rsa })));
  const big = join(dir, 'big.eml');
  writeBig(big, asReceived(message), BIG_MIB);
  writeFileSync(join(dir, 'authenticate.cjs'), `
const { authenticate } = require(${JSON.stringify(join(ROOT, 'node_modules', 'mailauth'))});
const { Resolver } = require('node:dns').promises;
const r = new Resolver(); r.setServers([process.env.DNS]);
authenticate(process.stdin, { sender: 'user@example.com', ip: '192.0.2.1', helo: 'client.example.com', mta: 'mx.example.net',
  resolver: (n, t) => r.resolve(n, t) }).then((res) => { process.exitCode = res.headers ? 0 : 1; });
`);
  const env = { CONTROLDIR: dir, QMAILHOME: dir, DKQUEUE: join(dir, 'queue'), DKVERIFY_DNS: dns.server, TCPREMOTEIP: '192.0.2.1' };
  // The envelope reaches fd 1 through a pipe, as from qmail-smtpd.
  const dkverify = (label: string, stdin: string, extra: NodeJS.ProcessEnv): Command => ({
    label, file: '/bin/sh', args: ['-c', `cat "${join(dir, 'envelope')}" | "${process.execPath}" "${BIN}" 1<&0 0<&3`, 'sh'],
    env: { ...env, ...extra }, stdin,
  });
  // fd 0 of the shell is the message; it is moved to fd 3 for the inner command.
  const wrap = (command: Command): Command => ({ ...command, args: ['-c', `exec 3<&0; ${command.args[1] as string}`, 'sh'] });
  const commands: Command[] = [
    { label: NODE, file: process.execPath, args: ['-e', '0'] },
    wrap(dkverify(PASS_THROUGH, small, {})),
    wrap(dkverify(VERIFY, small, { DKVERIFY: '' })),
    wrap(dkverify('qmail-dkverify, DKVERIFY="", no TCPREMOTEIP (no SPF, DMARC)', small, { DKVERIFY: '', TCPREMOTEIP: undefined })),
    { label: 'mailauth authenticate(), minimal script', file: process.execPath, args: [join(dir, 'authenticate.cjs')], stdin: small, env: { DNS: dns.server } },
    ...BREAKDOWN.map(([label, script]) => ({ label, file: process.execPath, args: ['-e', script] })),
  ];
  process.stderr.write(`bench: start-up, ${ROUNDS} rounds\n`);
  const samples = await interleave(commands, ROUNDS, { rusage: true });
  // CPU is user + system of the whole command: for qmail-dkverify that includes the shell, the
  // cat feeding the envelope and the next program (a shell script), a few ms.
  const lines = [
    '| 2 KiB message, one DKIM signature | median ms | min ms | CPU ms (user+sys) | peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const command of commands) {
    const runs = samples.get(command.label) ?? [];
    const wall = stats(runs.map((s) => s.ms));
    const rss = HAS_GNU_TIME ? stats(runs.map((s) => (s.maxRssKiB ?? 0) / 1024)).median.toFixed(0) : '–';
    const cpu = HAS_GNU_TIME ? stats(runs.map((s) => ((s.user ?? 0) + (s.sys ?? 0)) * 1000)).median.toFixed(0) : '–';
    lines.push(`| ${command.label} | ${wall.median.toFixed(0)} | ${wall.min.toFixed(0)} | ${cpu} | ${rss} |`);
  }
  // What each piece adds to `node -e 0`, CPU (user + system), medians.
  const cpuOf = (label: string): number => stats((samples.get(label) ?? []).map((s) => ((s.user ?? 0) + (s.sys ?? 0)) * 1000)).median;
  if (HAS_GNU_TIME) {
    const floor = cpuOf(NODE);
    lines.push('', '| start-up breakdown: a process that only… | CPU ms added to `node -e 0` |', '| --- | ---: |');
    for (const [label] of BREAKDOWN) lines.push(`| ${label} | ${(cpuOf(label) - floor).toFixed(0)} |`);
  }
  process.stderr.write(`bench: ${BIG_MIB} MiB message\n`);
  const bigRun = await runOnce(wrap(dkverify('big', big, { DKVERIFY: '' })), { rusage: true });
  lines.push('', `| ${BIG_MIB} MiB message, DKVERIFY="" | ms | peak RSS MiB |`, '| --- | ---: | ---: |');
  lines.push(`| qmail-dkverify | ${bigRun.ms.toFixed(0)} | ${((bigRun.maxRssKiB ?? 0) / 1024).toFixed(0)} |`);
  lines.push('', ...targets(samples, bigRun.maxRssKiB));
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await dns.stop();
}

/** A message of `mib` MiB: the head given, then 77-byte lines. */
function writeBig(path: string, head: Buffer, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    const end = head.indexOf('\n\n');
    if (end === -1) throw new Error('no end of head');
    writeSync(fd, head.subarray(0, end + 2));
    const block = Buffer.from(`${'x'.repeat(76)}\n`.repeat(13618));
    for (let written = 0; written < mib << 20; written += block.length) writeSync(fd, block);
  } finally {
    closeSync(fd);
  }
}

/**
 * #21's targets for qmail-dkverify, from this run: wall (median) and CPU (median of user +
 * system) against `node -e 0`; peak RSS at the big message against 80 MiB and the 2 KiB figure.
 */
function targets(samples: Map<string, Sample[]>, bigRssKiB: number | undefined): string[] {
  const median = (label: string, of: (s: Sample) => number): number => stats((samples.get(label) ?? []).map(of)).median;
  const wall = (label: string): number => median(label, (s) => s.ms);
  const cpu = (label: string): number => median(label, (s) => ((s.user ?? 0) + (s.sys ?? 0)) * 1000);
  const rssMiB = (label: string): number => median(label, (s) => (s.maxRssKiB ?? 0) / 1024);
  const rows = ['| target | goal | measured | result |', '| --- | --- | --- | --- |'];
  const verdict = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? '**PASS**' : '**FAIL**');
  const startup = (label: string, name: string, goal: number): void => {
    const w = wall(label) / wall(NODE);
    const c = HAS_GNU_TIME ? cpu(label) / cpu(NODE) : null;
    rows.push(`| ${name} | ≤ ${goal} × \`node -e 0\` | wall ${w.toFixed(2)}×, CPU ${c === null ? 'n/a' : `${c.toFixed(2)}×`} | ${verdict(w <= goal && (c === null || c <= goal))} |`);
  };
  startup(VERIFY, '2 KiB, DKIM + DomainKeys + SPF + DMARC', 2.5);
  startup(PASS_THROUGH, 'pass-through (DKVERIFY unset)', 1.3);
  const small = HAS_GNU_TIME ? rssMiB(VERIFY) : null;
  const big = bigRssKiB === undefined ? null : bigRssKiB / 1024;
  rows.push(`| peak RSS, ${BIG_MIB} MiB message | ≤ 80 MiB | ${big === null ? 'n/a' : `${big.toFixed(1)} MiB`} | ${verdict(big === null ? null : big <= 80)} |`);
  const ratio = big !== null && small !== null ? big / small : null;
  rows.push(`| peak RSS, ${BIG_MIB} MiB against 2 KiB | within 10 % | ${ratio === null ? 'n/a' : `${ratio.toFixed(2)}× (${(small ?? 0).toFixed(1)} → ${(big ?? 0).toFixed(1)} MiB)`} | ${verdict(ratio === null ? null : ratio <= 1.1)} |`);
  return rows;
}
