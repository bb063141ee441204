// qmail-dkverify: a qmail-queue front end (QMAILQUEUE=.../bin/qmail-dkverify) that checks
// DomainKeys, DKIM, SPF, DMARC and ARC, adds one Authentication-Results field and applies the
// DKVERIFY letters. qmail-smtpd starts one per message, so this entry loads only what the
// pass-through needs; the checks (and mailauth) are loaded only when DKVERIFY is set and
// RELAYCLIENT is not.
//
// Nothing is ever written to fd 1 (the envelope, read-only) or fd 2 (possibly the SMTP
// session's log); the exit status says everything (src/verify/outcomes.ts).
import { exitStatusFor } from './outcomes.ts';
import { becomeNext, exitStatusOf, nextProgram, startNext } from './next-queue.ts';

async function main(): Promise<number> {
  const env = process.env;
  const next = nextProgram(env, process.argv[1]);
  if (env.DKVERIFY === undefined || env.RELAYCLIENT !== undefined) {
    // No verification: the next program reads our fd 0 and fd 1 itself, byte for byte.
    becomeNext(next);
    return exitStatusOf(startNext(next, [0, 1, 2]));
  }
  const { verifyAndQueue } = await import('./verify-queue.ts');
  return verifyAndQueue(next, env);
}

// process.exit() is safe here: this program writes nothing to any descriptor, and main()
// resolves only once the next program has exited, so no output of ours can be cut short.
function fail(error: unknown): never {
  process.exit(exitStatusFor(error));
}

process.emitWarning = () => undefined;
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
main().then((status) => process.exit(status), fail);
