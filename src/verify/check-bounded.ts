// The checks run in a worker thread that this, the main thread, stops at the deadline. A timer
// beside the work cannot stop it (a regular expression or a parser loop holds the event loop
// the timer needs); terminating the worker can, at any instruction. Its heap is capped too.
// What the worker posted before the deadline stands; the rest is temperror (bounds.ts).
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { Results } from './auth-results.ts';
import type { DkResult } from './domainkeys.ts';
import { WORKER_HEAP_MB } from './bounds.ts';
import { VerifyFailure } from './outcomes.ts';

export interface WorkerInput {
  /** The message, a regular file (the queue's spool) read from offset 0. */
  readonly fd: number;
  readonly authservId: string;
  readonly ip: string | null;
  readonly sender: string;
  readonly dnsServers: readonly string[];
  readonly dnsTimeoutMs: number;
  readonly dnsTries: number;
}

export type WorkerMessage =
  | { readonly type: 'fallback'; readonly results: Results }
  | { readonly type: 'dk'; readonly dk: DkResult }
  | { readonly type: 'done'; readonly results: Results }
  | { readonly type: 'error'; readonly reason: string };

/** Beside this file in dist/: scripts/bundle.mjs builds the worker's own bundle there. */
export const WORKER_FILE = 'qmail-dkverify-check.cjs';

const UNFINISHED = 'verification deadline passed';

/** Before the worker has read the head, nothing is known but that nothing was checked. */
const NOTHING_YET: Results = {
  dk: { letter: 'F', result: 'temperror', comment: UNFINISHED },
  dkim: [{ letter: 'K', result: 'temperror', comment: UNFINISHED }],
  spf: { result: 'temperror', comment: UNFINISHED },
  dmarc: { result: 'temperror', comment: UNFINISHED },
  arc: { result: 'temperror', comment: UNFINISHED },
};

export function checkWithin(input: WorkerInput, deadlineMs: number, dir = __dirname): Promise<Results> {
  return new Promise((resolve, reject) => {
    let fallback = NOTHING_YET;
    let settled = false;
    exposeGcToWorker();
    const worker = new Worker(join(dir, WORKER_FILE), {
      workerData: input,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      stdout: true,
      stderr: true,
    });
    const settle = (how: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      how();
    };
    const timer = setTimeout(() => settle(() => resolve(fallback)), deadlineMs);
    worker.on('message', (message: WorkerMessage) => {
      switch (message.type) {
        case 'fallback':
          fallback = message.results;
          return;
        case 'dk':
          fallback = { ...fallback, dk: message.dk };
          return;
        case 'done':
          settle(() => resolve(message.results));
          return;
        case 'error':
          settle(() => reject(new VerifyFailure('INTERNAL', `verification failed: ${message.reason}`)));
          return;
        default:
          message satisfies never;
      }
    });
    // Out of heap (ERR_WORKER_OUT_OF_MEMORY) is a message too large to check: as at the
    // deadline, what is known stands and the rest is temperror.
    worker.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') settle(() => resolve(fallback));
      else settle(() => reject(new VerifyFailure('INTERNAL', 'verification failed', { cause: error })));
    });
    worker.on('exit', () => settle(() => reject(new VerifyFailure('INTERNAL', 'the verification worker ended without a result'))));
  });
}

/**
 * Lets the worker ask V8 for a young-generation collection while it feeds a big body to
 * mailauth (check.ts, mailauthInput): every chunk it hands on is a copy, and V8 frees such
 * buffers only when a collection runs, which it starts on its own only after tens of MiB of
 * them. `gc` is put on a global when a context is made, so the flag is set here, before the
 * worker's; the main thread's context, made already, does not get it. Where a Node does not
 * honour the flag, the worker finds no `gc` and memory is what V8 makes it.
 */
function exposeGcToWorker(): void {
  process.getBuiltinModule('node:v8').setFlagsFromString('--expose-gc');
}
