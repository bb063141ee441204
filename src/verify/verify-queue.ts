// The verifying path: read the message (spooled) and the envelope whole, check under the
// watchdog of bin/qmail-dkverify, decide by the DKVERIFY letters, then hand the message with its
// Authentication-Results field and the unchanged envelope to the next program, by becoming it.
import { openMessage, type MessageSource } from '../mail/message.ts';
import { controlDir, readControlLine } from '../common/control.ts';
import { makeResolver, serverList } from '../common/dns.ts';
import { OUTCOMES, VerifyFailure, exitStatusFor } from './outcomes.ts';
import { parseEnvelope } from './envelope.ts';
import { decide, parseLetters } from './letters.ts';
import { authResultsField } from './auth-results.ts';
import { messageDkimLetter } from './dkim-results.ts';
import { checkWithin, WATCHDOG_GRACE_MS } from './check-bounded.ts';
import type { CheckSettings } from './check.ts';
import { rewritten } from './rewrite.ts';
import { armWatchdog } from './watchdog.ts';
import { handOverInFiles } from './hand-over.ts';
import { readToEnd } from '../common/sync-io.ts';
import { entryFacts, markComment, readEntryKey } from '../mail/entry-mark.ts';

/** The whole verification's deadline, seconds, unless DKVERIFY_TIMEOUT says otherwise. */
export const DEFAULT_DEADLINE_SECONDS = 20;
/** Per DNS query: c-ares waits this long, then twice as long on its second try. */
const DNS_TIMEOUT_MS = 2000;
const DNS_TRIES = 2;

/** The exit status: the next program's, or the outcome that ended the verification. */
export async function verifyAndQueue(next: string, env: NodeJS.ProcessEnv, watchdogFd: number | undefined): Promise<number> {
  try {
    return await verifyThenQueue(next, env, watchdogFd);
  } catch (error) {
    return exitStatusFor(error);
  }
}

async function verifyThenQueue(next: string, env: NodeJS.ProcessEnv, watchdogFd: number | undefined): Promise<number> {
  const policy = parseLetters(env.DKVERIFY ?? '');
  const settings = checkSettings(env);
  const source = await readMessage();
  try {
    const envelope = parseEnvelope(readEnvelope());
    const { deadlineMs, ...checks } = settings;
    const watchdog = armWatchdog(watchdogFd, deadlineMs + WATCHDOG_GRACE_MS);
    const results = await checkWithin(source, { ...checks, sender: envelope.sender }, deadlineMs, watchdog);
    const decision = decide(policy, results.dk.letter, messageDkimLetter(results.dkim));
    if (decision === 'reject') return OUTCOMES.REJECTED.status;
    if (decision === 'defer') return OUTCOMES.DEFERRED.status;
    const field = authResultsField(settings.authservId, results, lineEnd(source), entryMarker(env, source));
    // Checks still running past the deadline end with this process's exec: nothing is left to watch.
    watchdog.disarm();
    return await handOverInFiles(next, rewritten(source.chunks(), field), envelope.bytes);
  } finally {
    source.close();
  }
}

type Settings = Omit<CheckSettings, 'sender'> & { readonly deadlineMs: number };

function checkSettings(env: NodeJS.ProcessEnv): Settings {
  const resolver = makeResolver({ servers: serverList(env.DKVERIFY_DNS), timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (!resolver) throw new VerifyFailure('INTERNAL', 'DKVERIFY_DNS is not a list of IP addresses');
  const seconds = env.DKVERIFY_TIMEOUT === undefined ? DEFAULT_DEADLINE_SECONDS : Number(env.DKVERIFY_TIMEOUT);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new VerifyFailure('INTERNAL', 'DKVERIFY_TIMEOUT is not a number of seconds');
  return {
    authservId: authservId(env),
    ip: env.TCPREMOTEIP || null,
    resolver,
    deadlineMs: seconds * 1000,
  };
}

/**
 * The entry mark for mail from outside (RELAYCLIENT unset), by which qmail-remote knows a forward
 * (docs/signing.md, "Forwarded mail"); none for a relay client, or without control/entrykey
 * (a local user running this program cannot read it).
 */
function entryMarker(env: NodeJS.ProcessEnv, source: MessageSource): ((value: string) => string) | undefined {
  if (env.RELAYCLIENT !== undefined) return undefined;
  const key = readEntryKey(controlDir(env));
  if (key === null) return undefined;
  const facts = entryFacts(source, Math.floor(Date.now() / 1000));
  return (value) => markComment(key, facts, value);
}

/** DKVERIFY_AUTHSERVID, else the first line of control/me, as qmail-smtpd names itself. */
function authservId(env: NodeJS.ProcessEnv): string {
  if (env.DKVERIFY_AUTHSERVID) return env.DKVERIFY_AUTHSERVID;
  const me = readControlLine(controlDir(env), 'me');
  if (!me.ok || !me.value) throw new VerifyFailure('CONFIG_ERROR', 'control/me is missing or unreadable');
  return me.value;
}

async function readMessage(): Promise<MessageSource> {
  try {
    // Spooled even from a regular file (qmail-smtpd's is a pipe): fd 0 is the hand-over's then.
    return await openMessage(0, true);
  } catch (error) {
    throw new VerifyFailure('READ_ERROR', 'cannot read the message', { cause: error });
  }
}

/** fd 1, whole: qmail-smtpd writes it after the message and closes it. */
function readEnvelope(): Buffer {
  const pieces: Buffer[] = [];
  try {
    readToEnd(1, (piece) => pieces.push(Buffer.from(piece)));
  } catch (error) {
    throw new VerifyFailure('READ_ERROR', 'cannot read the envelope', { cause: error });
  }
  return Buffer.concat(pieces);
}

/** The line end the message uses (LF in a qmail queue, CRLF from some injectors), for our field. */
function lineEnd(source: MessageSource): string {
  for (const chunk of source.chunks()) {
    const lf = chunk.indexOf(0x0a);
    if (lf === -1) continue;
    return lf > 0 && chunk[lf - 1] === 0x0d ? '\r\n' : '\n';
  }
  return '\n';
}
