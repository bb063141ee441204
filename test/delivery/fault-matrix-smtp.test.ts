// The fault matrix of the SMTP dialogue and DNS: bin/qmail-remote, run as qmail-rspawn runs
// it, against scripted servers that fail at every stage in every way (silence, disconnects,
// refusals, replies nobody asked for, replies out of turn, huge and malformed replies, broken
// TLS), against DNS that fails, and with hostile arguments and an unreadable fd 0.
//
// Every case asserts, whatever it is about:
//   - the verdict qmail-rspawn would read from the report is the one expected: never K unless
//     the server really accepted the message after the final dot, never D where a retry is due;
//   - the report is whole: recipient reports, then exactly one K/Z/D, each ending in NUL;
//   - nothing on stderr, exit status 0;
//   - no hang: every case ends by itself, bounded by timeoutremote and timeoutconnect (2 s
//     here) in the control files; nothing is timed by the test.
// docs/reliability.md ("The SMTP dialogue and DNS") tabulates these cases by class; the last
// test checks that its counts are the ones run here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Homes } from '../helpers/qmail-remote-rig.ts';
import { run, type Run } from '../helpers/run.ts';
import { freePort } from '../helpers/ports.ts';
import { startScriptServer, type Script, type ScriptServer } from '../helpers/script-server.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { writeBigMessage, type BigMessage } from '../helpers/big-message.ts';

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const DOC = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));
const IP = '127.0.0.1';
const work = mkdtempSync(join(tmpdir(), 'qrd-matrix-'));

type Verdict = 'K' | 'Z' | 'D';

/** The classes of docs/reliability.md's table, in its order. */
const CLASSES = [
  'Greeting and EHLO/HELO',
  'MAIL and RCPT',
  'DATA, the message and the final dot',
  'Huge and malformed replies',
  'STARTTLS and the plaintext retry',
  'Connecting',
  'DNS',
  'Arguments, fd 0 and crashes',
] as const;
type Class = (typeof CLASSES)[number];

interface Case {
  readonly name: string;
  readonly cls: Class;
  /** The verdict qmail-rspawn must read from the report. */
  readonly verdict: Verdict;
  /** A scripted server the host is routed to through smtproutes. */
  readonly script?: Script;
  /** Without a script: the host argument, resolved through the test DNS (or DNS that is down). */
  readonly host?: string;
  readonly dnsDown?: boolean;
  /** Port nothing listens on instead of a server. */
  readonly refused?: boolean;
  /** The host's MX records are used, with the port of `host::port` in smtproutes (nothing listens). */
  readonly mxPort?: boolean;
  readonly sender?: string;
  readonly recips?: readonly string[];
  readonly bigMessage?: boolean;
  /** How fd 0 is wired (default: the message file). */
  readonly stdin?: 'closed' | 'directory' | 'write-only' | 'zero';
  /** Node is started with an --import that throws once the program is running. */
  readonly crash?: boolean;
  /** More checks on the report and on what the server received. */
  readonly check?: (report: string, server: ScriptServer | undefined) => void;
}

const tls = { EHLO: '250-script.test\r\n250 STARTTLS' };
const brokenTls = { ...tls, STARTTLS: { reply: '220 go ahead', answerNextWith: '500 this is not TLS\r\n' } };
const OUT_OF_STEP = /^Connected to 127\.0\.0\.1 but its replies were out of step with my commands\. (Possible duplicate! )?\(#4\.5\.0\)\n$/;
const DIED = /^Connected to 127\.0\.0\.1 but connection died\. (Possible duplicate! )?\(#4\.4\.2\)\n$/;
const textIs = (pattern: RegExp) => (report: string) => assert.match(messageText(report), pattern);
const delivered = (report: string, server: ScriptServer | undefined) => {
  assert.equal(server?.sessions.at(-1)?.messages.length, 1, 'the server got the whole message');
  assert.match(report, /accepted message\.\nRemote host said: 2/);
};

const CASES: readonly Case[] = [
  // Greeting and EHLO/HELO
  { cls: 'Greeting and EHLO/HELO', name: 'silent, no greeting', verdict: 'Z', script: { greeting: {} }, check: textIs(DIED) },
  { cls: 'Greeting and EHLO/HELO', name: 'disconnect before the greeting', verdict: 'Z', script: { greeting: { close: true } } },
  { cls: 'Greeting and EHLO/HELO', name: 'greeting 554', verdict: 'Z', script: { greeting: '554 5.7.1 go away' } },
  { cls: 'Greeting and EHLO/HELO', name: 'greeting 421', verdict: 'Z', script: { greeting: '421 busy' } },
  { cls: 'Greeting and EHLO/HELO', name: 'greeting without a code', verdict: 'Z', script: { greeting: 'hello there' } },
  { cls: 'Greeting and EHLO/HELO', name: 'greeting, then disconnect', verdict: 'Z', script: { greeting: { reply: '220 hi', close: true } } },
  { cls: 'Greeting and EHLO/HELO', name: 'an unsolicited line after the greeting', verdict: 'Z',
    script: { greeting: '220 hi\r\n250 unasked' }, check: textIs(OUT_OF_STEP) },
  { cls: 'Greeting and EHLO/HELO', name: 'an unsolicited 354 and 250 after the greeting', verdict: 'Z',
    script: { greeting: '220 hi\r\n354 unasked\r\n250 unasked' }, check: textIs(OUT_OF_STEP) },
  { cls: 'Greeting and EHLO/HELO', name: 'EHLO and HELO refused', verdict: 'Z', script: { replies: { EHLO: '502 no', HELO: '550 bad name' } } },
  { cls: 'Greeting and EHLO/HELO', name: 'EHLO silent', verdict: 'Z', script: { replies: { EHLO: {} } }, check: textIs(DIED) },
  { cls: 'Greeting and EHLO/HELO', name: 'EHLO, then disconnect', verdict: 'Z', script: { replies: { EHLO: { close: true } } } },
  { cls: 'Greeting and EHLO/HELO', name: 'an extra line after the EHLO reply', verdict: 'Z',
    script: { replies: { EHLO: '250-script.test\r\n250 8BITMIME\r\n250 unasked' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'Greeting and EHLO/HELO', name: 'EHLO 421 and disconnect', verdict: 'Z', script: { replies: { EHLO: { reply: '421 bye', close: true } } } },

  // MAIL and RCPT
  { cls: 'MAIL and RCPT', name: 'MAIL 553', verdict: 'D', script: { replies: { MAIL: '553 5.1.8 sender unknown' } } },
  { cls: 'MAIL and RCPT', name: 'MAIL 451', verdict: 'Z', script: { replies: { MAIL: '451 later' } } },
  { cls: 'MAIL and RCPT', name: 'MAIL silent', verdict: 'Z', script: { replies: { MAIL: {} } }, check: textIs(DIED) },
  { cls: 'MAIL and RCPT', name: 'MAIL, then disconnect', verdict: 'Z', script: { replies: { MAIL: { close: true } } } },
  { cls: 'MAIL and RCPT', name: 'MAIL 421 and disconnect', verdict: 'Z', script: { replies: { MAIL: { reply: '421 bye', close: true } } } },
  { cls: 'MAIL and RCPT', name: 'an extra line after the MAIL reply', verdict: 'Z', script: { replies: { MAIL: '250 ok\r\n250 again' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'MAIL and RCPT', name: 'a blank line after the MAIL reply', verdict: 'Z', script: { replies: { MAIL: '250 ok\r\n' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'MAIL and RCPT', name: 'RCPT 550', verdict: 'D', script: { replies: { RCPT: '550 5.1.1 no such user' } } },
  { cls: 'MAIL and RCPT', name: 'RCPT 450', verdict: 'Z', script: { replies: { RCPT: '450 mailbox busy' } } },
  { cls: 'MAIL and RCPT', name: 'RCPT silent', verdict: 'Z', script: { replies: { RCPT: {} } }, check: textIs(DIED) },
  { cls: 'MAIL and RCPT', name: 'RCPT, then disconnect', verdict: 'Z', script: { replies: { RCPT: { close: true } } } },
  { cls: 'MAIL and RCPT', name: 'RCPT 421 and disconnect', verdict: 'Z', script: { replies: { RCPT: { reply: '421 bye', close: true } } } },
  { cls: 'MAIL and RCPT', name: 'a second reply to RCPT', verdict: 'Z', script: { replies: { RCPT: '250 ok\r\n250 ok again' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'MAIL and RCPT', name: 'half a line after the RCPT reply', verdict: 'Z',
    script: { replies: { RCPT: Buffer.from('250 ok\r\n25') } }, check: textIs(OUT_OF_STEP) },
  { cls: 'MAIL and RCPT', name: 'extra lines after a RCPT reply, two recipients', verdict: 'Z', recips: ['b@example.net', 'c@example.net'],
    script: { replies: { RCPT: '250 ok\r\n250 extra\r\n250 extra' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'MAIL and RCPT', name: 'a 354 sent in reply to RCPT', verdict: 'Z', script: { replies: { RCPT: '250 ok\r\n354 go ahead' } } },

  // DATA, the message and the final dot
  { cls: 'DATA, the message and the final dot', name: 'DATA 554', verdict: 'D', script: { replies: { DATA: '554 no' } } },
  { cls: 'DATA, the message and the final dot', name: 'DATA 451', verdict: 'Z', script: { replies: { DATA: '451 later' } } },
  { cls: 'DATA, the message and the final dot', name: 'DATA silent', verdict: 'Z', script: { replies: { DATA: {} } }, check: textIs(DIED) },
  { cls: 'DATA, the message and the final dot', name: 'DATA, then disconnect', verdict: 'Z', script: { replies: { DATA: { close: true } } } },
  { cls: 'DATA, the message and the final dot', name: 'DATA answered 250 instead of 354', verdict: 'Z',
    script: { replies: { DATA: '250 ok', '.': '554 rejected' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'DATA, the message and the final dot', name: 'a 250 sent with the 354, before the body', verdict: 'Z',
    script: { replies: { DATA: '354 go ahead\r\n250 early', '.': '554 rejected' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'DATA, the message and the final dot', name: 'a 250 sent while the body is still arriving', verdict: 'Z', bigMessage: true,
    script: { replyInBody: '250 early', replies: { '.': '554 rejected' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'Arguments, fd 0 and crashes', name: 'fd 0 /dev/zero', verdict: 'Z', stdin: 'zero', check: textIs(/^Unable to read message\. \(#4\.3\.0\)\n$/) },
  { cls: 'DATA, the message and the final dot', name: 'disconnect in the body', verdict: 'Z', bigMessage: true, script: { dropInBody: true },
    check: textIs(/^Connected to 127\.0\.0\.1 but connection died\. \(#4\.4\.2\)\n$/) },
  { cls: 'DATA, the message and the final dot', name: 'final dot silent', verdict: 'Z', script: { replies: { '.': {} } }, check: textIs(DIED) },
  { cls: 'DATA, the message and the final dot', name: 'disconnect after the final dot', verdict: 'Z', script: { replies: { '.': { close: true } } },
    check: textIs(/Possible duplicate!/) },
  { cls: 'DATA, the message and the final dot', name: 'final dot 554', verdict: 'D', script: { replies: { '.': '554 5.7.1 spam' } } },
  { cls: 'DATA, the message and the final dot', name: 'final dot 451', verdict: 'Z', script: { replies: { '.': '451 later' } } },
  { cls: 'DATA, the message and the final dot', name: 'final dot answered 354', verdict: 'Z', script: { replies: { '.': '354 more?' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'DATA, the message and the final dot', name: 'final dot answered 250 and then 554', verdict: 'Z',
    script: { replies: { '.': '250 ok\r\n554 rejected after all' } }, check: textIs(OUT_OF_STEP) },
  { cls: 'DATA, the message and the final dot', name: 'final dot 250 (delivered)', verdict: 'K', script: {}, check: delivered },
  { cls: 'DATA, the message and the final dot', name: 'final dot 250, QUIT never answered (delivered)', verdict: 'K',
    script: { replies: { QUIT: {} } }, check: delivered },

  // Huge and malformed replies
  { cls: 'Huge and malformed replies', name: 'a 2 MB reply line that never ends', verdict: 'Z',
    script: { replies: { MAIL: Buffer.alloc(2 << 20, 'x') } } },
  { cls: 'Huge and malformed replies', name: 'a 12000-byte 550 to RCPT, quoted up to 5000 bytes', verdict: 'D',
    script: { replies: { RCPT: `550-${'x'.repeat(6000)}\r\n550 ${'y'.repeat(6000)}` } },
    // 5000 bytes of reply, then the LF a cut text still ends in.
    check: (report) => assert.equal(report.split('\0')[0]?.length, 1 + '127.0.0.1 does not like recipient.\nRemote host said: '.length + 5001) },
  { cls: 'Huge and malformed replies', name: 'a greeting of 3000 lines', verdict: 'K',
    script: { greeting: `${'220-welcome\r\n'.repeat(3000)}220 ok` }, check: delivered },
  { cls: 'Huge and malformed replies', name: 'a reply without a code to MAIL', verdict: 'Z', script: { replies: { MAIL: 'what?' } } },
  { cls: 'Huge and malformed replies', name: 'NUL, CR and 8-bit bytes in a 550', verdict: 'D',
    script: { replies: { RCPT: Buffer.from('550 no\0such\ruser caf\xe9\r\n', 'latin1') } },
    check: (report) => assert.ok(report.includes('Remote host said: 550 no?suchuser caf\xe9\n\0')) },
  { cls: 'Huge and malformed replies', name: 'a 250 to the final dot of 10000 bytes', verdict: 'K',
    script: { replies: { '.': `250-${'q'.repeat(5000)}\r\n250 ${'q'.repeat(5000)}` } }, check: delivered },

  // STARTTLS and the plaintext retry
  { cls: 'STARTTLS and the plaintext retry', name: 'handshake answered with plaintext, retried', verdict: 'K', script: { replies: brokenTls }, check: delivered },
  { cls: 'STARTTLS and the plaintext retry', name: 'handshake never answered, retried', verdict: 'K',
    script: { replies: { ...tls, STARTTLS: { reply: '220 go ahead', ignoreRest: true } } }, check: delivered },
  { cls: 'STARTTLS and the plaintext retry', name: 'disconnect after 220 to STARTTLS, retried', verdict: 'K',
    script: { replies: { ...tls, STARTTLS: { reply: '220 go ahead', close: true } } }, check: delivered },
  { cls: 'STARTTLS and the plaintext retry', name: 'STARTTLS 454, same connection', verdict: 'K', script: { replies: { ...tls, STARTTLS: '454 not now' } }, check: delivered },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry refused: 530 to MAIL', verdict: 'Z',
    script: { replies: { ...brokenTls, MAIL: '530 5.7.0 Must issue a STARTTLS command first' } } },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry refused: 554 to MAIL', verdict: 'Z', script: { replies: { ...brokenTls, MAIL: '554 5.7.1 TLS only' } } },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry refused: 550 to RCPT', verdict: 'Z', script: { replies: { ...brokenTls, RCPT: '550 5.7.1 TLS only' } } },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry refused: 530 to DATA', verdict: 'Z', script: { replies: { ...brokenTls, DATA: '530 5.7.0 TLS first' } } },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry refused: 530 to the final dot', verdict: 'Z', script: { replies: { ...brokenTls, '.': '530 5.7.0 TLS first' } } },
  { cls: 'STARTTLS and the plaintext retry', name: 'retry: greeting 554', verdict: 'Z',
    script: { replies: brokenTls, greeting: ['220 first', '554 no plaintext'] } },

  // Connecting
  { cls: 'Connecting', name: 'nothing listening', verdict: 'Z', refused: true,
    check: textIs(/^Sorry, I wasn't able to establish an SMTP connection\. \(#4\.4\.1\)\n$/) },
  { cls: 'Connecting', name: 'MX host with nothing listening on the port smtproutes names', verdict: 'Z', host: 'closed.matrix.test', mxPort: true },

  // DNS
  { cls: 'DNS', name: 'DNS unreachable', verdict: 'Z', host: 'example.net', dnsDown: true },
  { cls: 'DNS', name: 'DNS unreachable, host with a space', verdict: 'Z', host: 'foo bar.example', dnsDown: true },
  { cls: 'DNS', name: 'DNS unreachable, host with an empty label', verdict: 'Z', host: 'a..b.example', dnsDown: true },
  { cls: 'DNS', name: 'DNS unreachable, empty host', verdict: 'Z', host: '', dnsDown: true },
  { cls: 'DNS', name: 'DNS SERVFAIL', verdict: 'Z', host: 'mail.broken.test' },
  { cls: 'DNS', name: 'host with a space, DNS answering', verdict: 'D', host: 'foo bar.test',
    check: textIs(/^Sorry, I couldn't find any host named foo\?bar\.test\. \(#5\.1\.2\)\n$/) },
  { cls: 'DNS', name: 'no such domain (NXDOMAIN)', verdict: 'D', host: 'nowhere.matrix.test' },
  { cls: 'DNS', name: 'null MX', verdict: 'D', host: 'null.matrix.test' },
  { cls: 'DNS', name: 'MX is me', verdict: 'D', host: 'me.matrix.test' },

  // Arguments, fd 0 and crashes
  { cls: 'Arguments, fd 0 and crashes', name: 'a Latin-1 sender and recipient go out as their bytes', verdict: 'K',
    sender: 'caf\xe9@example.com', recips: ['b\xf6b@example.net'],
    check: (report, server) => {
      delivered(report, server);
      const received = server?.sessions[0]?.received ?? Buffer.alloc(0);
      assert.ok(received.includes(Buffer.from('MAIL FROM:<"caf\xe9"@example.com>\r\n', 'latin1')));
      assert.ok(received.includes(Buffer.from('RCPT TO:<"b\xf6b"@example.net>\r\n', 'latin1')));
    } },
  { cls: 'Arguments, fd 0 and crashes', name: 'local parts with < and > are quoted and sent', verdict: 'K',
    recips: ['a>b@example.net', 'a<b@example.com'],
    check: (report, server) => {
      delivered(report, server);
      const rcpts = server?.sessions[0]?.commands.filter((c) => c.startsWith('RCPT'));
      assert.deepEqual(rcpts, ['RCPT TO:<"a>b"@example.net>', 'RCPT TO:<"a<b"@example.com>']);
    } },
  { cls: 'Arguments, fd 0 and crashes', name: 'a recipient with a CR cannot be sent', verdict: 'D', recips: ['a\rb@example.net'] },
  { cls: 'Arguments, fd 0 and crashes', name: 'fd 0 closed', verdict: 'Z', stdin: 'closed', check: textIs(/^Unable to read message\. \(#4\.3\.0\)\n$/) },
  { cls: 'Arguments, fd 0 and crashes', name: 'fd 0 a directory', verdict: 'Z', stdin: 'directory', check: textIs(/^Unable to read message\. \(#4\.3\.0\)\n$/) },
  { cls: 'Arguments, fd 0 and crashes', name: 'fd 0 open for writing only', verdict: 'Z', stdin: 'write-only', check: textIs(/^Unable to read message\. \(#4\.3\.0\)\n$/) },
  { cls: 'Arguments, fd 0 and crashes', name: 'an uncaught exception mid-delivery', verdict: 'Z', crash: true,
    check: textIs(/^qmail-remote-dkim hit an internal error; will try again\. \(#4\.3\.0\)\n$/) },
];

// ---------------------------------------------------------------------------------------------

let dns: DnsServer;
let big: BigMessage;
let dnsDown: string;
const crashModule = join(work, 'crash.mjs');

before(async () => {
  dns = await startDns({
    mx: [
      { name: 'closed.matrix.test', host: 'mx.closed.matrix.test', pref: 10 },
      { name: 'me.matrix.test', host: 'mx.me.matrix.test', pref: 10 },
    ],
    a: [
      { name: 'mx.closed.matrix.test', ip: '127.0.0.2' },
      { name: 'mx.me.matrix.test', ip: '127.0.0.1' },
    ],
    nullMx: ['null.matrix.test'],
    servfail: ['broken.test'],
  });
  dnsDown = `127.0.0.1:${await freePort()}`;
  // Larger than the socket buffers a paused reader leaves room for, so the client is still
  // sending when the server replies or drops in the middle of the body.
  big = await writeBigMessage(16 << 20);
  // Thrown from a timer, so it reaches the program's uncaughtException handler.
  writeFileSync(crashModule, "setTimeout(() => { throw new Error('crash on purpose'); }, 0);\n");
});

after(async () => {
  await dns?.stop();
  await big?.remove();
  rmSync(work, { recursive: true, force: true });
});

const homes = new Homes('qrd-matrix-homes-');
/** The control directory of a new qmail home (test/helpers/qmail-remote-rig.ts), with 2 s timeouts. */
function control(files: Record<string, string>): string {
  return join(homes.home({ timeoutremote: '2\n', timeoutconnect: '2\n', ...files }), 'control');
}

/** Runs bin/qmail-remote with the arguments as bytes (through exec, as qmail-rspawn passes them). */
async function qmailRemote(c: Case, args: readonly string[], controlDir: string): Promise<Run> {
  const env = {
    PATH: process.env.PATH ?? '',
    CONTROLDIR: controlDir,
    QMAILREMOTE_DNS: c.dnsDown ? dnsDown : dns.server,
  };
  const node = [process.execPath, ...(c.crash ? ['--import', crashModule] : []), QMAIL_REMOTE];
  // The shell passes each argument's bytes through; Node's spawn would encode them as UTF-8.
  // Each argument is printed from octal escapes; $(…) would strip trailing newlines, so each
  // keeps a guard character that ${x%.} removes.
  const octal = (text: string) => [...Buffer.from(text, 'latin1')].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
  const assigns = args.map((arg, i) => `a${i}="$(printf '${octal(arg)}.')"; a${i}="\${a${i}%.}"`).join('; ');
  const argv = args.map((_, i) => `"$a${i}"`).join(' ');
  const redirect = c.stdin === 'closed' ? ' <&-' : '';
  const script = `${assigns}; exec ${node.map((p) => `'${p}'`).join(' ')} ${argv}${redirect}`;
  let fd: number | undefined;
  if (c.stdin === 'directory') fd = openSync(work, 'r');
  else if (c.stdin === 'write-only') fd = openSync(homes.path('sink'), 'w');
  else if (c.stdin === 'zero') fd = openSync('/dev/zero', 'r');
  else if (c.stdin === undefined) fd = openSync(c.bigMessage ? big.path : SIMPLE, 'r');
  try {
    return await run('/bin/sh', ['-c', script], { ...(fd === undefined ? {} : { stdin: fd }), env });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** qmail-rspawn's reading of a report (docs/qmail-remote.md §2): s first is Z, h first is D, else the K/Z/D. */
function verdictOf(report: string): Verdict {
  const first = report[0];
  if (first === 's') return 'Z';
  if (first === 'h') return 'D';
  return messageLetter(report);
}

function messageLetter(report: string): Verdict {
  const parts = report.split('\0');
  return (parts.at(-2)?.[0] ?? '?') as Verdict;
}

function messageText(report: string): string {
  return report.split('\0').at(-2)?.slice(1) ?? '';
}

/** A whole report: r/h/s reports, then exactly one K/Z/D, each ending in NUL, nothing after. */
function assertWhole(report: string): void {
  assert.ok(report.endsWith('\0'), 'the report ends in NUL');
  const parts = report.split('\0').slice(0, -1);
  assert.ok(parts.length >= 1);
  assert.match(parts.at(-1) ?? '', /^[KZD][^]*\n$/, 'one message report, ending in LF');
  for (const part of parts.slice(0, -1)) assert.match(part, /^(r|[hs][^]*\n)$/, 'recipient reports before it');
}

const counted = new Map<Class, number>();

describe('fault matrix: the SMTP dialogue and DNS, through bin/qmail-remote', { concurrency: 4 }, () => {
  for (const c of CASES) {
    it(`${c.cls}: ${c.name} → ${c.verdict}`, { timeout: 60_000 }, async () => {
      const serverWanted = c.script !== undefined || (c.host === undefined && !c.refused && !c.mxPort);
      const server = serverWanted ? await startScriptServer(c.script ?? {}) : undefined;
      try {
        const port = server ? server.port : await freePort();
        const routed = server || c.refused;
        const host = c.host ?? 'example.net';
        const smtproutes = routed ? `:${IP}:${port}\n` : c.mxPort ? `${host}::${port}\n` : undefined;
        const controlDir = control(smtproutes === undefined ? {} : { smtproutes });
        const args = [host, c.sender ?? 'alice@example.com', ...(c.recips ?? ['bob@example.net'])];
        const result = await qmailRemote(c, args, controlDir);
        // A server that stopped reading never sees the client close; close() ends it below.
        if (c.script?.replyInBody === undefined) await server?.idle();
        assert.equal(result.stderr, '', 'zero bytes on stderr');
        assert.equal(result.status, 0);
        assert.equal(result.signal, null);
        assertWhole(result.stdout);
        const verdict = verdictOf(result.stdout);
        if (verdict === 'K') assert.equal(c.verdict, 'K', `false K: ${JSON.stringify(result.stdout)}`);
        if (verdict === 'D') assert.equal(c.verdict, 'D', `D where a retry was due: ${JSON.stringify(result.stdout)}`);
        assert.equal(verdict, c.verdict, JSON.stringify(result.stdout));
        c.check?.(result.stdout, server);
        counted.set(c.cls, (counted.get(c.cls) ?? 0) + 1);
      } finally {
        await server?.close();
      }
    });
  }
});

describe('the log line', () => {
  it('names the catalogue entry, the stage and the cause of the ending, never in the report', async () => {
    const server = await startScriptServer({ replies: { RCPT: '250 ok\r\n250 unasked' } });
    try {
      const log = join(work, 'delivery.log');
      const result = await run(process.execPath, [QMAIL_REMOTE, 'example.net', 'alice@example.com', 'bob@example.net'], {
        stdin: readFileSync(SIMPLE),
        env: { PATH: process.env.PATH ?? '', CONTROLDIR: control({ smtproutes: `:${IP}:${server.port}\n` }), QMAILREMOTE_LOG: log },
      });
      assert.equal(result.stdout, 'ZConnected to 127.0.0.1 but its replies were out of step with my commands. (#4.5.0)\n\0');
      assert.match(readFileSync(log, 'latin1'), /note=\[smtp: OUT_OF_STEP at rcpt \(several replies at once\)\]/);
    } finally {
      await server.close();
    }
  });
});

describe('docs/reliability.md', () => {
  it('tabulates exactly the cases run here, class by class', () => {
    const doc = readFileSync(DOC, 'utf8');
    const section = doc.split(/^## /m).find((s) => s.startsWith('The SMTP dialogue and DNS'));
    assert.ok(section, 'the section "## The SMTP dialogue and DNS"');
    const rows = new Map<string, string[]>();
    for (const line of section.split('\n')) {
      const cells = line.split('|').slice(1, -1).map((cell) => cell.trim());
      if (cells.length >= 6) rows.set(cells[0] ?? '', cells.slice(1));
    }
    const expected = (n: number) => [String(n), '0', '0', '0', '0'];
    for (const cls of CLASSES) {
      const n = CASES.filter((c) => c.cls === cls).length;
      assert.deepEqual(rows.get(cls)?.slice(0, 5), expected(n), cls);
    }
    assert.deepEqual(rows.get('**Total**')?.slice(0, 5), [`**${CASES.length}**`, '**0**', '**0**', '**0**', '**0**']);
    // Every case ran and passed (this suite runs after the matrix).
    assert.equal([...counted.values()].reduce((a, b) => a + b, 0), CASES.length);
  });
});
