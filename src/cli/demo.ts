// `qmail-remote-dkim demo`: the whole job on an embedded default, on a fresh machine. It starts
// an SMTP server on 127.0.0.1, makes a throwaway key and a control directory for it, runs
// bin/qmail-remote exactly as qmail-rspawn would (the message as a file on fd 0), shows the
// report, and verifies what the server received: DKIM with mailauth, DomainKeys with Perl's
// Mail::DKIM when it is installed (Debian: libmail-dkim-perl), else with our own checker.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { verifyDomainKeys } from '../verify/domainkeys.ts';
import { emit } from './output.ts';

const SAMPLE = `Received: (qmail 4242 invoked by uid 1000); 22 Nov 2026 10:00:00 -0000
Date: Sun, 22 Nov 2026 10:00:00 +0000
From: Demo Sender <demo@example.com>
To: Someone <someone@example.net>
Subject: qmail-remote-dkim demo
Message-ID: <demo.4242@mail.example.com>

Hello from qmail-remote-dkim.
This message was signed with DomainKeys and DKIM, then delivered over SMTP.
`;

const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));

export async function demoCommand(): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'qmail-remote-dkim-demo-'));
  try {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    mkdirSync(join(work, 'keys', 'example.com'), { recursive: true });
    writeFileSync(join(work, 'keys', 'example.com', 'default'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o640 });
    const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;

    const received: Buffer[] = [];
    const server = new SMTPServer({
      secure: false, disabledCommands: ['AUTH', 'STARTTLS'], logger: false, banner: 'demo sink',
      onData(stream, _session, done) {
        stream.on('data', (chunk: Buffer) => received.push(chunk));
        stream.on('end', () => done(null, 'queued as demo'));
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as { port: number }).port;

    const control = join(work, 'control');
    mkdirSync(control);
    writeFileSync(join(control, 'me'), 'mail.example.com\n');
    writeFileSync(join(control, 'smtproutes'), `:127.0.0.1:${port}\n`);
    writeFileSync(join(control, 'dksign'), `${join(work, 'keys')}/%/default\n`);
    writeFileSync(join(work, 'message'), SAMPLE);

    await emit(`1. Control directory ${control}\n   dksign     -> ${join(work, 'keys')}/%/default\n   smtproutes -> :127.0.0.1:${port} (a loopback SMTP server)\n`);
    await emit(`2. Running: qmail-remote example.net demo@example.com someone@example.net < message\n`);
    const report = await runQmailRemote(control, join(work, 'message'));
    await emit(`   report on fd 1: ${JSON.stringify(report.toString('latin1')).replace(/\\u0000/g, '\\0')}\n`);
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const message = Buffer.concat(received);
    const headerEnd = message.indexOf('\r\n\r\n');
    await emit(`3. The server received (header section):\n${message.subarray(0, headerEnd).toString('latin1').replace(/\r\n/g, '\n').replace(/^/gm, '   ')}\n`);
    const ok = await showVerification(message, record);
    return report.toString('latin1').includes('K127.0.0.1 accepted message.') && ok ? 0 : 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function runQmailRemote(control: string, messagePath: string): Promise<Buffer> {
  const fd = openSync(messagePath, 'r');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [QMAIL_REMOTE, 'example.net', 'demo@example.com', 'someone@example.net'], {
      stdio: [fd, 'pipe', 'inherit'],
      env: { ...process.env, CONTROLDIR: control },
    });
    const out: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', reject);
    child.on('close', () => {
      closeSync(fd);
      resolve(Buffer.concat(out));
    });
  });
}

async function showVerification(message: Buffer, record: string): Promise<boolean> {
  const dkim = await dkimVerify(message, { resolver: async () => [[record]] });
  const dkimResults = dkim.results.map((r) => `${r.status.result} (d=${r.signingDomain} s=${r.selector})`);
  await emit(`4. Verification\n   DKIM-Signature      (mailauth): ${dkimResults.join(', ') || 'none'}\n`);
  const perl = perlDomainKeys(message, record);
  const dk = perl ?? `${verifyDomainKeys(message, record)} (our own checker; install libmail-dkim-perl for an independent one)`;
  await emit(`   DomainKey-Signature (${perl ? 'Mail::DKIM' : 'built in'}): ${dk}\n`);
  return dkimResults.some((r) => r.startsWith('pass')) && dk.startsWith('pass');
}

/** Mail::DKIM's verdict on the DomainKey-Signature, or null when it is not installed. */
function perlDomainKeys(message: Buffer, record: string): string | null {
  // Mail::DKIM::DNS::query is where Mail::DKIM asks DNS; the demo answers it with the key.
  const script = `
    use Mail::DKIM::Verifier; use Net::DNS::RR;
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
      my ($name) = @_;
      return Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [unpack('(A255)*', $ENV{DEMO_RECORD})]);
    };
    my $v = Mail::DKIM::Verifier->new; local $/; binmode STDIN; $v->PRINT(scalar <STDIN>); $v->CLOSE;
    for my $s ($v->signatures) { print $s->result_detail, "\\n" if $s->isa('Mail::DKIM::DkSignature') }`;
  const run = spawnSync('perl', ['-e', script], { input: message, env: { ...process.env, DEMO_RECORD: record } });
  if (run.status !== 0) return null;
  return run.stdout.toString().trim() || 'none';
}
