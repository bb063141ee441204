// Runs bin/qmail-dkverify as qmail-smtpd runs it: fd 0 a file holding the message, fd 1 a pipe
// carrying the envelope (a `cat` at the other end), fd 2 captured. The next program is a small
// script (DKQUEUE) that records the message and envelope it gets and exits with a chosen
// status. Nothing of the host's qmail is read: QMAILHOME and CONTROLDIR point at a temporary
// directory, and DNS is only the dnsmasq given.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DKVERIFY_BIN = fileURLToPath(new URL('../../bin/qmail-dkverify', import.meta.url));

/** PATH with the running Node first: bin/qmail-dkverify runs the `node` PATH names, as #!/usr/bin/env node would. */
export const PATH_WITH_THIS_NODE = `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`;

export interface Run {
  status: number | null;
  stderr: string;
  /** What the next program read on fd 0 and fd 1, if it ran. */
  queued?: { message: Buffer; envelope: Buffer; loopMark: string; parent: string; ignored: string; stderrFlags: string };
}

export interface RunOptions {
  /** Extra environment (DKVERIFY, RELAYCLIENT, TCPREMOTEIP, DKQUEUE...). */
  env?: Record<string, string>;
  envelope?: Buffer | string;
  /** The recording script's exit status. */
  queueExit?: number;
  /** Run without control/me. */
  noMe?: boolean;
  /** More control files (control/entrykey, say), by name. */
  control?: Record<string, string>;
  /** The program to run; this checkout's bin/qmail-dkverify unless an installed one is named. */
  bin?: string;
}

let count = 0;
const root = mkdtempSync(join(tmpdir(), 'dkverify-'));
// Not tied to one test file (bench/ imports this too): gone when the process ends.
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

/** The recording next program; QEXIT is its exit status. */
const RECORDER = `#!/bin/sh
cat > "$REC/message" || exit 54
cat <&1 > "$REC/envelope" || exit 54
printf %s "$QMAILDKVERIFY_RUNNING" > "$REC/loop"
tr -d '\\n' < /proc/$PPID/comm > "$REC/parent" 2>/dev/null
sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status > "$REC/ignored" 2>/dev/null
[ -r /proc/self/fdinfo/2 ] && sed -n 's/^flags:[[:space:]]*//p' /proc/self/fdinfo/2 > "$REC/stderr-flags"
exit "$QEXIT"
`;

export function recorder(): string {
  const path = join(root, 'record-queue');
  if (!existsSync(path)) {
    writeFileSync(path, RECORDER);
    chmodSync(path, 0o755);
  }
  return path;
}

export const ENVELOPE = 'Fuser@example.com\0Trcpt@example.net\0\0';

export function dkverify(message: Buffer | string, dnsServer: string, options: RunOptions = {}): Promise<Run> {
  const dir = join(root, `run${count++}`);
  const control = join(dir, 'control');
  const rec = join(dir, 'rec');
  mkdirSync(control, { recursive: true });
  mkdirSync(rec);
  if (!options.noMe) writeFileSync(join(control, 'me'), 'mx.example.net\n');
  for (const [name, text] of Object.entries(options.control ?? {})) writeFileSync(join(control, name), text);
  const messageFile = join(dir, 'message');
  const envelopeFile = join(dir, 'envelope');
  writeFileSync(messageFile, message);
  writeFileSync(envelopeFile, options.envelope ?? ENVELOPE);
  const env: Record<string, string> = {
    PATH: PATH_WITH_THIS_NODE,
    QMAILHOME: dir,
    CONTROLDIR: control,
    DKVERIFY_DNS: dnsServer,
    DKQUEUE: recorder(),
    REC: rec,
    QEXIT: String(options.queueExit ?? 0),
    ...options.env,
  };
  return new Promise((resolve, reject) => {
    // cat's pipe becomes fd 1 of qmail-dkverify, the message file its fd 0.
    const child = spawn('/bin/sh', ['-c', 'cat "$1" | "$2" 1<&0 0<"$3"', 'sh', envelopeFile, options.bin ?? DKVERIFY_BIN, messageFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env,
    });
    const err: Buffer[] = [];
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (status) => {
      const run: Run = { status, stderr: Buffer.concat(err).toString('latin1') };
      if (existsSync(join(rec, 'loop'))) {
        run.queued = {
          message: readFileSync(join(rec, 'message')),
          envelope: readFileSync(join(rec, 'envelope')),
          loopMark: readFileSync(join(rec, 'loop'), 'latin1'),
          // The command name of the process that started the next program, which became it
          // (exec): the shell that started qmail-dkverify for the pass-through, the script's
          // own subshell that waits for it for a verification ('' without /proc).
          parent: existsSync(join(rec, 'parent')) ? readFileSync(join(rec, 'parent'), 'latin1') : '',
          // The signals it was started with ignored, as /proc shows them (hex mask).
          ignored: existsSync(join(rec, 'ignored')) ? readFileSync(join(rec, 'ignored'), 'latin1').trim() : '',
          // The status flags of its fd 2, which is qmail-dkverify's (octal, as /proc shows them).
          stderrFlags: existsSync(join(rec, 'stderr-flags')) ? readFileSync(join(rec, 'stderr-flags'), 'latin1').trim() : '',
        };
      }
      resolve(run);
    });
  });
}

/** The Authentication-Results field we added: the first field of what was queued, unfolded. */
export function addedField(run: Run): string {
  const message = run.queued?.message.toString('latin1') ?? '';
  const match = /^Authentication-Results: [^\n]*\n(?:[ \t][^\n]*\n)*/.exec(message);
  return (match?.[0] ?? '').replace(/\r?\n[ \t]+/g, ' ').trim();
}

/** The message as qmail-smtpd writes it to qmail-queue: its Received: line first, LF line ends. */
export function asReceived(wire: Buffer | string, ip = '192.0.2.1', helo = 'client.example.com'): Buffer {
  const text = Buffer.from(wire).toString('latin1').replace(/\r\n/g, '\n');
  return Buffer.from(`Received: from unknown (HELO ${helo}) (${ip})\n  by mx.example.net with SMTP; 1 Dec 2026 00:00:00 -0000\n${text}`, 'latin1');
}
