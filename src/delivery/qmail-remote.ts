// qmail-remote host sender recip...: sign the message on fd 0, deliver it, and report on fd 1
// in qmail-remote(8)'s protocol. qmail-rspawn runs this once per delivery with fd 2 on the same
// pipe as fd 1, so nothing here prints: every outcome, expected or not, becomes exactly one
// message report, and the process always ends with status 0 (anything else would be read as
// a crash or, worse, a permanent failure that bounces the mail). The work is the job
// (job.ts); this is the process around it: the report, the log, the last-resort handlers.
import { controlDir } from '../common/control.ts';
import { describeCause, failure } from '../common/failures.ts';
import { writeReports, type Reports } from './report.ts';
import { logCrashSync, logDelivery, logTarget } from './log.ts';
import { failed, run, type Outcome } from './job.ts';
import { argumentBytes } from './argv.ts';

// Once the report is out, the process ends within this bound whatever is still under way: a
// log target that blocks, a socket still closing. qmail-send waits for the process, not for
// the report, and each process it waits for holds one of its concurrencyremote slots.
const EXIT_AFTER_REPORT_MS = 8000;

/** Everything that can go wrong ends here as one Z report; the report is written only once. */
async function main(): Promise<void> {
  const started = Date.now();
  // The report is written synchronously and whole (report.ts): nothing, not even a crash,
  // can end the process between two of its bytes. The first report written is the only one.
  let reported = false;
  const report = (reports: Reports): void => {
    if (reported) return;
    reported = true;
    writeReports(reports); // synchronous: returns once every byte is out, so an exit after it cuts nothing
    setTimeout(() => process.exit(0), EXIT_AFTER_REPORT_MS).unref();
  };
  // After an unexpected error nothing that is still under way can be trusted to end (a socket
  // may wait out timeoutremote, 20 minutes, holding one of qmail-send's delivery slots): once
  // the report (the Z, or the one already written) is out, the process ends at once, status 0.
  const crash = (error: unknown): void => {
    const reports = failed(failure('INTERNAL'));
    report(reports);
    logCrash(error, reports, started);
    process.exit(0);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);

  // Bytes, not UTF-8: addresses go out exactly as qmail-rspawn passed them (argv.ts).
  const argv = argumentBytes();
  let outcome: Outcome;
  try {
    outcome = await run(argv);
  } catch (error) {
    crash(error);
    return;
  }
  report(outcome.reports);
  const target = logTarget(controlDir());
  if (target) {
    const { message } = outcome.reports;
    await logDelivery(target, { ...outcome.log, result: message.letter, report: message.text, ms: Date.now() - started });
  }
}

/** The crash's cause for the log, which is all that is left of it: the report says only Z. */
function logCrash(error: unknown, reports: Reports, started: number): void {
  try {
    const target = logTarget(controlDir());
    if (!target) return;
    const [host = '', sender = '', ...recips] = argumentBytes();
    const { message } = reports;
    logCrashSync(target, {
      host, sender, recips, signatures: [], notes: [`crash: ${describeCause(error)}`],
      result: message.letter, report: message.text, ms: Date.now() - started,
    });
  } catch {
    // Nothing may stand between the Z and the end of the process.
  }
}

process.exitCode = 0;
// Not a top-level await: scripts/bundle.mjs makes this file CommonJS. main() does not reject;
// should it ever, the unhandledRejection handler reports Z.
void main();
