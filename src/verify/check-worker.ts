// The checks' side of the worker thread (check-bounded.ts starts it): opens the message by the
// descriptor the main thread read it into, runs every check, and posts what it learns as it
// learns it, so that whatever finished before the deadline is reported even if the rest is not.
import { parentPort, workerData } from 'node:worker_threads';
import { openMessage } from '../mail/message.ts';
import { makeResolver } from '../common/dns.ts';
import { checkMessage } from './check.ts';
import type { WorkerInput, WorkerMessage } from './check-bounded.ts';

/** Plain data only: mailauth's statuses may hold what a structured clone refuses. */
const post = (message: WorkerMessage): void => parentPort?.postMessage(JSON.parse(JSON.stringify(message)));

async function serve(input: WorkerInput): Promise<void> {
  const resolver = makeResolver({ servers: input.dnsServers, timeout: input.dnsTimeoutMs, tries: input.dnsTries });
  if (!resolver) throw new Error('DNS servers are not IP addresses');
  const source = await openMessage(input.fd);
  const results = await checkMessage(source, { authservId: input.authservId, ip: input.ip, sender: input.sender, resolver }, {
    fallback: (fallback) => post({ type: 'fallback', results: fallback }),
    dk: (dk) => post({ type: 'dk', dk }),
  });
  post({ type: 'done', results });
}

void serve(workerData as WorkerInput).catch((error: unknown) => {
  post({ type: 'error', reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
});
