// MAIL FROM's ESMTP parameters against scripted servers: SIZE= when SIZE is offered (the server
// decides: its 5xx is D, its 4xx Z, never a refusal of our own), BODY=8BITMIME for an 8-bit
// message when 8BITMIME is offered, SMTPUTF8 for an 8-bit address when SMTPUTF8 is offered;
// without the keyword the line is qmail's, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startScriptServer, type Script } from '../helpers/script-server.ts';
import { Homes, qmailRemote, SIMPLE } from '../helpers/qmail-remote-rig.ts';

const LATIN1 = fileURLToPath(new URL('../fixtures/latin1-8bit.eml', import.meta.url));
const homes = new Homes('qrd-esmtp-');
const ALL = '250-script.test\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8';

async function mailLine(script: Script, options: { message?: string; sender?: string; recip?: string } = {}) {
  const server = await startScriptServer(script);
  try {
    const run = await qmailRemote({
      home: homes.home({ smtproutes: `:127.0.0.1:${server.port}\n` }),
      args: ['example.net', options.sender ?? 'alice@example.com', options.recip ?? 'bob@example.net'],
      ...(options.message ? { message: options.message } : {}),
    });
    await server.idle();
    assert.equal(run.stderr, '');
    return { run, mail: server.sessions[0]?.commands.find((c) => c.startsWith('MAIL ')) ?? '' };
  } finally {
    await server.close();
  }
}

test('SIZE= is the queue file\'s size, sent only when SIZE is offered', async () => {
  const { run, mail } = await mailLine({ replies: { EHLO: ALL } });
  assert.match(run.stdout, /^r\0K/);
  assert.equal(mail, `MAIL FROM:<alice@example.com> SIZE=${statSync(SIMPLE).size}`);
  const plain = await mailLine({ replies: { EHLO: '250-script.test\r\n250 PIPELINING' } });
  assert.equal(plain.mail, 'MAIL FROM:<alice@example.com>', 'nothing offered, nothing added');
  const lookalike = await mailLine({ replies: { EHLO: '250-script.test SIZE SMTPUTF8 8BITMIME\r\n250-SIZEABLE\r\n250 X-8BITMIME' } }, { message: LATIN1 });
  assert.equal(lookalike.mail, 'MAIL FROM:<alice@example.com>', 'only a line\'s first word is a keyword, and not in the greeting line');
  const helo = await mailLine({ replies: { EHLO: '502 no', HELO: '250 old.test' } });
  assert.equal(helo.mail, 'MAIL FROM:<alice@example.com>', 'after HELO: qmail\'s line');
});

test('the server decides on the size: 552 to MAIL bounces (D), 452 defers (Z)', async () => {
  const big = await mailLine({ replies: { EHLO: '250-script.test\r\n250 SIZE 10', MAIL: '552 5.3.4 too big for me' } });
  assert.match(big.mail, / SIZE=\d+$/);
  assert.equal(big.run.stdout, 'DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 552 5.3.4 too big for me\n\0');
  const later = await mailLine({ replies: { EHLO: '250-script.test\r\n250 SIZE 10', MAIL: '452 4.3.1 not now' } });
  assert.match(later.run.stdout, /^ZConnected to 127\.0\.0\.1 but sender was rejected\./);
});

test('BODY=8BITMIME for an 8-bit message when 8BITMIME is offered; not for a 7-bit one', async () => {
  const eight = await mailLine({ replies: { EHLO: ALL } }, { message: LATIN1 });
  assert.equal(eight.mail, `MAIL FROM:<alice@example.com> SIZE=${statSync(LATIN1).size} BODY=8BITMIME`);
  const seven = await mailLine({ replies: { EHLO: '250-script.test\r\n250 8BITMIME' } });
  assert.equal(seven.mail, 'MAIL FROM:<alice@example.com>');
  const notOffered = await mailLine({ replies: { EHLO: '250-script.test\r\n250 PIPELINING' } }, { message: LATIN1 });
  assert.equal(notOffered.mail, 'MAIL FROM:<alice@example.com>', 'sent as qmail sends it');
});

test('SMTPUTF8 for an 8-bit address when offered; without it the address goes as qmail sends it', async () => {
  // The argument's bytes are UTF-8; the local part is quoted as qmail's quote.c quotes 8-bit bytes.
  const path = Buffer.from('"jürgen"@example.com', 'utf8').toString('latin1');
  const offered = await mailLine({ replies: { EHLO: ALL } }, { sender: 'jürgen@example.com' });
  assert.equal(offered.mail, `MAIL FROM:<${path}> SIZE=${statSync(SIMPLE).size} SMTPUTF8`);
  assert.match(offered.run.stdout, /^r\0K/);
  const recipient = await mailLine({ replies: { EHLO: '250-script.test\r\n250 SMTPUTF8' } }, { recip: 'bö@example.net' });
  assert.equal(recipient.mail, 'MAIL FROM:<alice@example.com> SMTPUTF8');
  const not = await mailLine({ replies: { EHLO: '250-script.test\r\n250 8BITMIME' } }, { sender: 'jürgen@example.com' });
  assert.equal(not.mail, `MAIL FROM:<${path}>`);
});
