// The hand-over to qmail-queue: the envelope goes only after the whole message, so a failure
// of ours while writing the message leaves the next program without an envelope, which makes
// qmail-queue queue nothing, instead of a truncated copy while qmail-smtpd answers 451.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handOverTo, startNext } from '../../src/verify/next-queue.ts';
import { VerifyFailure } from '../../src/verify/outcomes.ts';
import { recorder } from './harness.ts';

const recordings: string[] = [];
after(() => {
  for (const rec of recordings) rmSync(rec, { recursive: true, force: true });
});

function recording(): string {
  const rec = mkdtempSync(join(tmpdir(), 'dkverify-handover-'));
  recordings.push(rec);
  process.env.REC = rec;
  process.env.QEXIT = '0';
  return rec;
}

const ENVELOPE = Buffer.from('Fa@example.com\0Tb@example.net\0\0');

/** The next program started with pipes on fd 0 and fd 1, as a verification starts one, and handed the message. */
const handOver = (next: string, message: Iterable<Buffer>, envelope: Buffer): Promise<number> =>
  handOverTo(startNext(next, ['pipe', 'pipe', 'inherit']), message, envelope);

test('the whole message, then the envelope', async () => {
  const rec = recording();
  const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 << 10, 0x41 + (i % 26)));
  assert.equal(await handOver(recorder(), chunks, ENVELOPE), 0);
  assert.deepEqual(readFileSync(join(rec, 'message')), Buffer.concat(chunks));
  assert.deepEqual(readFileSync(join(rec, 'envelope')), ENVELOPE);
});

test('a failure halfway through the message: the next program is killed before any envelope, 81', async () => {
  const rec = recording();
  function* failing(): Generator<Buffer> {
    for (let i = 0; i < 16; i++) yield Buffer.alloc(64 << 10, 0x61);
    throw new RangeError('as a 1.5-million-line header once did');
  }
  await assert.rejects(handOver(recorder(), failing(), ENVELOPE), (error: unknown) => error instanceof VerifyFailure && error.outcome.status === 81);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(existsSync(join(rec, 'envelope')), false, 'no envelope was read');
  assert.equal(existsSync(join(rec, 'loop')), false, 'the program never went on to queue');
});

test('a next program that stops reading early: its own status, and no envelope written to it', async () => {
  const rec = recording();
  process.env.QEXIT = '53';
  // `head -c` reads 1 KB of the message and exits 53 as qmail-queue does on a write error.
  const early = join(rec, 'early');
  const { writeFileSync, chmodSync } = await import('node:fs');
  writeFileSync(early, '#!/bin/sh\nhead -c 1024 > "$REC/message"\nexit 53\n');
  chmodSync(early, 0o755);
  assert.equal(await handOver(early, Array.from({ length: 64 }, () => Buffer.alloc(64 << 10, 0x62)), ENVELOPE), 53);
});
