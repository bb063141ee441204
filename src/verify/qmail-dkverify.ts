// qmail-dkverify: a qmail-queue front end (QMAILQUEUE=.../bin/qmail-dkverify) that checks
// DomainKeys, DKIM, SPF, DMARC and ARC, adds one Authentication-Results field and applies the
// DKVERIFY letters. qmail-smtpd starts one per message, so this entry loads only what the
// pass-through needs; the checks (and mailauth) are loaded only when DKVERIFY is set and
// RELAYCLIENT is not.
//
// bin/qmail-dkverify, a shell script, starts it: `--self=PATH` is the path qmail-smtpd ran (the
// script, for DKQUEUE's loop check), `--watchdog-fd=N` the pipe to the watchdog it keeps for a
// verification (watchdog.ts).
//
// Nothing is ever written to fd 1 (the envelope, read-only) or fd 2 (possibly the SMTP
// session's log); the exit status says everything (src/verify/outcomes.ts).
import { exitStatusFor } from './outcomes.ts';
import { nextProgram, runNext } from './next-queue.ts';
import { watchdogFd } from './watchdog.ts';

async function main(): Promise<number> {
  const env = process.env;
  const next = nextProgram(env, option('self') ?? process.argv[1]);
  if (env.DKVERIFY === undefined || env.RELAYCLIENT !== undefined) {
    // No verification: the next program reads our fd 0 and fd 1 itself, byte for byte.
    return runNext(next);
  }
  const { verifyAndQueue } = await import('./verify-queue.ts');
  return verifyAndQueue(next, env, watchdogFd(option('watchdog-fd')));
}

/** The value of `--name=VALUE` among the arguments bin/qmail-dkverify gives. */
function option(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.slice(2).find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

// process.exit() is safe here: no output of this program can be cut short. It never writes to
// fd 1 or fd 2. What it does write, the watchdog's line and the hand-over's files, it writes
// synchronously (writeSync), each write done when the call returns. The next program is what
// this process becomes (exec), after which none of this runs; a next program started as a child
// instead has exited before main() resolves. A failure that exits earlier leaves no next
// program to queue anything: it starts only once both files are whole (hand-over.ts).
function fail(error: unknown): never {
  process.exit(exitStatusFor(error));
}

/**
 * Nothing is ever written to fd 1 or fd 2, so no stream is ever opened on them. Node opens one
 * the first time anything reads process.stdout or process.stderr (its own stream code does, to
 * compare: Readable.pipe, a socket's destroy), and a stream on a pipe or a socket sets
 * O_NONBLOCK on the open file description: fd 2 is qmail-smtpd's, shared with tcpserver and the
 * log writer behind it, whose writes would then fail with EAGAIN instead of waiting. Each is a
 * sink that drops what it is given, made when first asked for.
 */
function openNoStdio(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    let sink: NodeJS.WriteStream | undefined;
    Object.defineProperty(process, name, { configurable: true, enumerable: true, get: () => (sink ??= droppingSink()) });
  }
}

function droppingSink(): NodeJS.WriteStream {
  const { Writable } = process.getBuiltinModule('node:stream');
  return new Writable({ write: (_chunk, _encoding, done) => done() }) as unknown as NodeJS.WriteStream;
}

openNoStdio();
process.emitWarning = () => undefined;
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
main().then((status) => process.exit(status), fail);
