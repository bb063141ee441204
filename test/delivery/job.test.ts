// The delivery job in process (src/delivery/job.ts): the orchestration that the end-to-end tests
// see only through report bytes. The message is a file opened here and handed over as the fd
// qmail-rspawn would make fd 0; control files and DNS are the test's own.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Homes } from '../helpers/qmail-remote-rig.ts';
import { createServer } from 'node:net';
import { run } from '../../src/delivery/job.ts';
import { startScriptServer } from '../helpers/script-server.ts';
import { freePort } from '../helpers/ports.ts';

const SIMPLE = fileURLToPath(new URL('../fixtures/simple.eml', import.meta.url));
const RSA_KEY = fileURLToPath(new URL('../fixtures/keys/example.com/default', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'qrd-job-'));
after(() => rmSync(work, { recursive: true, force: true }));

const homes = new Homes('qrd-job-homes-');
/** The control directory of a new qmail home (test/helpers/qmail-remote-rig.ts). */
function control(files: Record<string, string>): string {
  return join(homes.home(files), 'control');
}

async function job(args: string[], env: Record<string, string>) {
  const fd = openSync(SIMPLE, 'r');
  try {
    return await run(args, { QMAILHOME: work, ...env }, fd);
  } finally {
    closeSync(fd);
  }
}

test('a key that exists but cannot be used defers before any connection is made, and the log names it', async () => {
  let connections = 0;
  const listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  after(() => listener.close());
  const keys = join(work, 'badkeys', 'example.com');
  mkdirSync(keys, { recursive: true });
  writeFileSync(join(keys, 'default'), 'not a key\n');
  const port = (listener.address() as { port: number }).port;
  const outcome = await job(['example.net', 'alice@example.com', 'bob@example.net'], {
    CONTROLDIR: control({ dksign: `${join(work, 'badkeys')}/%/default\n`, smtproutes: `:127.0.0.1:${port}\n` }),
  });
  assert.equal(outcome.reports.message.letter, 'Z');
  assert.match(outcome.reports.message.text, /private key/);
  assert.equal(connections, 0, 'no connection for a message that cannot be signed');
  assert.match(outcome.log.notes.join('\n'), /badkeys\/example\.com\/default: /);
});

test('a DNS failure is Z and its cause goes to the log notes', async () => {
  const closed = await freePort();
  const outcome = await job(['example.net', 'alice@example.com', 'bob@example.net'], {
    CONTROLDIR: control({}),
    QMAILREMOTE_DNS: `127.0.0.1:${closed}`,
  });
  assert.equal(outcome.reports.message.letter, 'Z');
  assert.match(outcome.log.notes.join('\n'), /^dns: /m);
});

test('a delivery: the log carries the signatures, where it went and how the dialogue ended', async () => {
  const keys = join(work, 'keys', 'example.com');
  mkdirSync(keys, { recursive: true });
  writeFileSync(join(keys, 'default'), (await import('node:fs')).readFileSync(RSA_KEY));
  const server = await startScriptServer();
  after(() => server.close());
  const outcome = await job(['example.net', 'alice@example.com', 'bob@example.net'], {
    CONTROLDIR: control({ dksign: `${join(work, 'keys')}/%/default\n`, smtproutes: `:127.0.0.1:${server.port}\n` }),
  });
  assert.equal(outcome.reports.message.letter, 'K');
  assert.deepEqual(outcome.reports.recipients, [{ letter: 'r', text: '' }]);
  assert.equal(outcome.log.host, '127.0.0.1');
  assert.deepEqual(outcome.log.signatures.map((s) => s.replace(/ a=.*/, '')), ['dkim d=example.com s=default', 'domainkeys d=example.com s=default']);
  assert.match(outcome.log.notes.join('\n'), /smtp: ACCEPTED at message/);
});

test('too few arguments: D, as qmail-remote says, and nothing else is read', async () => {
  const outcome = await job(['example.net', 'alice@example.com'], { CONTROLDIR: join(work, 'no-such-dir') });
  assert.equal(outcome.reports.message.letter, 'D');
  assert.match(outcome.reports.message.text, /invoked improperly/);
});
