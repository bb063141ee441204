// The verifying path: read the message (spooled) and the envelope whole, check, decide by the
// DKVERIFY letters, then hand the message with its Authentication-Results field and the
// unchanged envelope to the next program and exit with its status.
import { readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { openMessage, type MessageSource } from '../mail/message.ts';
import { controlDir, readControlLine } from '../common/control.ts';
import { makeResolver, serverList } from '../common/dns.ts';
import { OUTCOMES, VerifyFailure } from './outcomes.ts';
import { parseEnvelope } from './envelope.ts';
import { decide, parseLetters } from './letters.ts';
import { authResultsField } from './auth-results.ts';
import { messageDkimLetter } from './dkim-results.ts';
import { checkWithin, type WorkerInput } from './check-bounded.ts';
import { rewritten } from './rewrite.ts';
import { exitStatusOf, startNext } from './next-queue.ts';
import type { Writable } from 'node:stream';

/** The whole verification's deadline, seconds, unless DKVERIFY_TIMEOUT says otherwise. */
export const DEFAULT_DEADLINE_SECONDS = 20;
/** Per DNS query: c-ares waits this long, then twice as long on its second try. */
const DNS_TIMEOUT_MS = 2000;
const DNS_TRIES = 2;

export async function verifyAndQueue(next: string, env: NodeJS.ProcessEnv): Promise<number> {
  const policy = parseLetters(env.DKVERIFY ?? '');
  const settings = checkSettings(env);
  const source = await readMessage();
  try {
    const envelope = parseEnvelope(readEnvelope());
    if (source.fd === undefined) throw new VerifyFailure('INTERNAL', 'the message is not in a file');
    const { deadlineMs, ...checks } = settings;
    const results = await checkWithin({ ...checks, fd: source.fd, sender: envelope.sender }, deadlineMs);
    const decision = decide(policy, results.dk.letter, messageDkimLetter(results.dkim));
    if (decision === 'reject') return OUTCOMES.REJECTED.status;
    if (decision === 'defer') return OUTCOMES.DEFERRED.status;
    const field = authResultsField(settings.authservId, results, lineEnd(source));
    return await queue(next, source, field, envelope.bytes);
  } finally {
    source.close();
  }
}

type Settings = Omit<WorkerInput, 'fd' | 'sender'> & { readonly deadlineMs: number };

function checkSettings(env: NodeJS.ProcessEnv): Settings {
  const dnsServers = serverList(env.DKVERIFY_DNS);
  if (!makeResolver({ servers: dnsServers })) throw new VerifyFailure('INTERNAL', 'DKVERIFY_DNS is not a list of IP addresses');
  const seconds = env.DKVERIFY_TIMEOUT === undefined ? DEFAULT_DEADLINE_SECONDS : Number(env.DKVERIFY_TIMEOUT);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new VerifyFailure('INTERNAL', 'DKVERIFY_TIMEOUT is not a number of seconds');
  return {
    authservId: authservId(env),
    ip: env.TCPREMOTEIP || null,
    dnsServers,
    dnsTimeoutMs: DNS_TIMEOUT_MS,
    dnsTries: DNS_TRIES,
    deadlineMs: seconds * 1000,
  };
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
    return await openMessage(0);
  } catch (error) {
    throw new VerifyFailure('READ_ERROR', 'cannot read the message', { cause: error });
  }
}

/** fd 1, whole: qmail-smtpd writes it after the message and closes it. */
function readEnvelope(): Buffer {
  const chunks: Buffer[] = [];
  const buffer = Buffer.allocUnsafe(64 << 10);
  for (;;) {
    let n: number;
    try {
      n = readSync(1, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        continue;
      }
      throw new VerifyFailure('READ_ERROR', 'cannot read the envelope', { cause: error });
    }
    if (n === 0) return Buffer.concat(chunks);
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
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

/**
 * Hands the message to the next program, then the envelope: qmail-queue reads the whole
 * message before the envelope, and without an envelope it queues nothing. So a failure of ours
 * while the message is being written (the message may be a stranger's worst case) kills the
 * next program before it has an envelope to read, and no truncated copy is ever queued.
 */
async function queue(next: string, source: MessageSource, field: Buffer, envelope: Buffer): Promise<number> {
  const child = startNext(next, ['pipe', 'pipe', 'inherit']);
  const status = exitStatusOf(child);
  const [stdin, envelopeOut] = [child.stdio[0] as Writable, child.stdio[1] as unknown as Writable];
  // The next program may end early (qmail-queue: disk full, 53); its status says why.
  for (const stream of [stdin, envelopeOut]) stream.on('error', () => undefined);
  try {
    for (const chunk of rewritten(source.chunks(), field)) {
      if (chunk.length > 0 && !(await written(stdin, chunk))) return await status;
    }
    if (!(await written(stdin, null))) return await status;
  } catch (error) {
    child.kill('SIGKILL');
    envelopeOut.destroy();
    await status;
    throw new VerifyFailure('INTERNAL', 'the message could not be handed on whole', { cause: error });
  }
  envelopeOut.end(envelope);
  const result = await status;
  await sleep(0);
  return result;
}

/** Writes a chunk (null: ends the stream); false when the reader has gone. */
function written(stream: Writable, chunk: Buffer | null): Promise<boolean> {
  return new Promise((resolve) => {
    if (chunk === null) stream.end(() => resolve(!stream.errored));
    else stream.write(chunk, (error) => resolve(!error));
  });
}
