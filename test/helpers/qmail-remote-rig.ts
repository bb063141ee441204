// The one way the tests run bin/qmail-remote as qmail-rspawn does: a qmail home of their own
// (control/ with the files a test gives, over a few defaults), the message on fd 0 as a file,
// nothing of the host's qmail read, DNS only the server given. Reports come back whole, fd 2
// apart so a test can assert that nothing reached it.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type Run } from './run.ts';

export const QMAIL_REMOTE = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));
export const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));

/** What every test's control/ has unless it says otherwise: a name and short timeouts. */
export const CONTROL_DEFAULTS: Readonly<Record<string, string>> = { me: 'mail.example.com\n', timeoutconnect: '5\n', timeoutremote: '5\n' };

/** Every Homes root made in this process; one exit listener removes them all. */
const roots: string[] = [];
process.on('exit', () => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** Makes qmail homes under one temporary directory, a new one each call; it goes when the process ends. */
export class Homes {
  private readonly root: string;
  private count = 0;

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    roots.push(this.root);
  }

  /** A qmail home whose control/ holds the defaults and `files` (a file given as '' is left out). */
  home(files: Record<string, string> = {}, defaults: Readonly<Record<string, string>> = CONTROL_DEFAULTS): string {
    const home = join(this.root, `home${this.count++}`);
    mkdirSync(join(home, 'control'), { recursive: true });
    for (const [name, text] of Object.entries({ ...defaults, ...files })) {
      if (text === '') continue;
      // A name may hold a folder (tlshosts/mx.example.net.pem).
      mkdirSync(dirname(join(home, 'control', name)), { recursive: true });
      writeFileSync(join(home, 'control', name), text);
    }
    return home;
  }

  /** A path of its own under the root, for messages and logs. */
  path(name: string): string {
    return join(this.root, `${this.count++}-${name}`);
  }
}

export interface QmailRemoteRun {
  readonly home: string;
  readonly args: readonly string[];
  /** A file to put on fd 0, or the message's bytes (written to a file first); simple.eml when absent. */
  readonly message?: string | Buffer;
  /** QMAILREMOTE_DNS. */
  readonly dns?: string;
  /** More environment (QMAILREMOTE_LOG, SSL_CERT_FILE, ...). */
  readonly env?: Record<string, string>;
}

/** Runs bin/qmail-remote to its end, with a clean environment and the message file on fd 0. */
export async function qmailRemote(run: QmailRemoteRun, homes?: Homes): Promise<Run> {
  let path = SIMPLE;
  if (Buffer.isBuffer(run.message)) {
    path = homes ? homes.path('message.eml') : join(run.home, `message-${Date.now()}-${Math.random()}.eml`);
    writeFileSync(path, run.message);
  } else if (run.message !== undefined) path = run.message;
  const fd = openSync(path, 'r');
  try {
    return await runNode(QMAIL_REMOTE, run.args, {
      stdin: fd,
      env: {
        PATH: process.env.PATH ?? '',
        QMAILHOME: run.home,
        ...(run.dns !== undefined ? { QMAILREMOTE_DNS: run.dns } : {}),
        ...run.env,
      },
    });
  } finally {
    closeSync(fd);
  }
}
