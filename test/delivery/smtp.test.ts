import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../helpers/run.ts';
import { freePort } from '../helpers/ports.ts';
import { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { addrmangle, deliver, type Delivery, type DeliveryAddress, type DeliveryResult } from '../../src/delivery/smtp/index.ts';
import { encodeReports } from '../../src/delivery/report.ts';
import { startScriptServer, type Script, type ScriptServer } from '../helpers/script-server.ts';
import { selfSignedCert } from '../helpers/tls.ts';
import { makeTestCa } from '../helpers/ca.ts';

// CRLF lines as the signer hands them over: leading dots, a lone dot, 8-bit and NUL bytes.
const MESSAGE = Buffer.from(
  'From: a@example.com\r\nTo: b@example.net\r\nSubject: test\r\n\r\n' +
    '.leading dot\r\n..two dots\r\n.\r\ncaf\xc3\xa9 \xff\0 bytes\r\n\r\nend\r\n',
  'latin1',
);
const STUFFED = Buffer.from(
  'From: a@example.com\r\nTo: b@example.net\r\nSubject: test\r\n\r\n' +
    '..leading dot\r\n...two dots\r\n..\r\ncaf\xc3\xa9 \xff\0 bytes\r\n\r\nend\r\n.\r\n',
  'latin1',
);

function delivery(server: { host: string; port: number }, overrides: Partial<Delivery> = {}): Delivery {
  return {
    addresses: [{ ip: server.host, family: server.host.includes(':') ? 6 : 4 }],
    port: server.port,
    helohost: 'relay.example.org',
    sender: 'a@example.com',
    recips: ['b@example.net'],
    message: () => [MESSAGE],
    timeoutConnect: 5,
    timeoutRemote: 5,
    ...overrides,
  };
}

/** The reports exactly as fd 1 gets them, NULs included, one char per byte. */
const wire = (result: DeliveryResult): string => encodeReports(result.reports).toString('latin1');

async function scripted(t: TestContext, script: Script = {}, host?: string): Promise<ScriptServer> {
  const server = await startScriptServer(script, host);
  t.after(() => server.close());
  return server;
}

test('an accepted message: K with the reply, commands in order, the body byte for byte', async (t) => {
  const server = await scripted(t, { replies: { '.': '250 2.0.0 queued as 42' } });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n\0');
  assert.equal(result.ip, '127.0.0.1');
  await server.idle();
  const [session] = server.sessions;
  assert.ok(session);
  assert.deepEqual(session.commands, [
    'EHLO relay.example.org',
    'MAIL FROM:<a@example.com>',
    'RCPT TO:<b@example.net>',
    'DATA',
    'QUIT',
  ]);
  assert.deepEqual(session.wire, [STUFFED]);
  assert.deepEqual(session.messages, [MESSAGE]);
});

test('QUIT is sent but its answer is not waited for', async (t) => {
  // The server never answers QUIT and never closes: a client that waited for the answer would
  // wait out timeoutremote (10 minutes here) and the test would time out.
  const server = await scripted(t, { replies: { QUIT: {} } });
  const result = await deliver(delivery(server, { timeoutRemote: 600 }));
  assert.equal(result.reports.message.letter, 'K');
  await server.idle(); // the client closed the connection itself
  assert.equal(server.sessions[0]?.commands.at(-1), 'QUIT');
});

test('a message handed over one byte at a time goes out with the same bytes', async (t) => {
  const server = await scripted(t);
  const bytes = Array.from(MESSAGE, (byte) => Buffer.from([byte]));
  const result = await deliver(delivery(server, { message: () => bytes }));
  assert.equal(result.reports.message.letter, 'K');
  await server.idle();
  assert.deepEqual(server.sessions[0]?.wire, [STUFFED]);
});

test('recipients get r, h and s in argv order, each with its own reply', async (t) => {
  const server = await scripted(t, {
    replies: { RCPT: ['250 ok', '550 5.1.1 no such user', '451 4.3.0 try later', '250 ok'] },
  });
  const result = await deliver(delivery(server, { recips: ['one@x.test', 'two@x.test', 'three@x.test', 'four@x.test'] }));
  assert.equal(
    wire(result),
    'r\0' +
      'h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\0' +
      's127.0.0.1 does not like recipient.\nRemote host said: 451 4.3.0 try later\n\0' +
      'r\0' +
      'K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0',
  );
  await server.idle();
  const rcpts = server.sessions[0]?.commands.filter((c) => c.startsWith('RCPT'));
  assert.deepEqual(rcpts, ['RCPT TO:<one@x.test>', 'RCPT TO:<two@x.test>', 'RCPT TO:<three@x.test>', 'RCPT TO:<four@x.test>']);
});

test('a 3xx reply to RCPT accepts the recipient, as any code below 400 does', async (t) => {
  const server = await scripted(t, { replies: { RCPT: '354 odd but fine' } });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0');
});

test('all recipients rejected: D "Giving up" without reply text, no DATA, QUIT sent', async (t) => {
  const server = await scripted(t, { replies: { RCPT: ['550 no', '450 busy'] } });
  const result = await deliver(delivery(server, { recips: ['one@x.test', 'two@x.test'] }));
  assert.equal(
    wire(result),
    'h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\0' +
      's127.0.0.1 does not like recipient.\nRemote host said: 450 busy\n\0' +
      'DGiving up on 127.0.0.1.\n\0',
  );
  await server.idle();
  const commands = server.sessions[0]?.commands ?? [];
  assert.ok(!commands.includes('DATA'));
  assert.equal(commands.at(-1), 'QUIT');
});

test('MAIL rejected: 5xx is D, 4xx is Z, no RCPT follows', async (t) => {
  for (const [reply, letter] of [
    ['553 5.1.8 sender unknown', 'D'],
    ['451 4.4.3 try again', 'Z'],
  ] as const) {
    const server = await scripted(t, { replies: { MAIL: reply } });
    const result = await deliver(delivery(server));
    assert.equal(wire(result), `${letter}Connected to 127.0.0.1 but sender was rejected.\nRemote host said: ${reply}\n\0`);
    await server.idle();
    assert.deepEqual(server.sessions[0]?.commands.slice(1), ['MAIL FROM:<a@example.com>', 'QUIT']);
  }
});

test('DATA rejected: 5xx is D, 4xx is Z, the recipient report stays', async (t) => {
  for (const [reply, letter] of [
    ['554 5.5.1 no valid recipients', 'D'],
    ['451 4.3.0 local error', 'Z'],
  ] as const) {
    const server = await scripted(t, { replies: { DATA: reply } });
    const result = await deliver(delivery(server));
    assert.equal(wire(result), `r\0${letter}127.0.0.1 failed on DATA command.\nRemote host said: ${reply}\n\0`);
    await server.idle();
    assert.deepEqual(server.sessions[0]?.wire, []);
  }
});

test('the reply to the final dot decides: 5xx is D, 4xx is Z, below 400 is K', async (t) => {
  for (const [reply, letter, sentence] of [
    ['554 5.7.1 spam', 'D', 'failed after I sent the message'],
    ['452 4.3.1 disk full', 'Z', 'failed after I sent the message'],
    ['250 2.0.0 ok', 'K', 'accepted message'],
  ] as const) {
    const server = await scripted(t, { replies: { '.': reply } });
    const result = await deliver(delivery(server));
    assert.equal(wire(result), `r\0${letter}127.0.0.1 ${sentence}.\nRemote host said: ${reply}\n\0`);
  }
});

test('unlike qmail, a 3xx to the final dot or a 2xx to DATA is out of step: Z, never K', async (t) => {
  const dot = await scripted(t, { replies: { '.': '354 odd but below 400' } });
  assert.equal(
    wire(await deliver(delivery(dot))),
    'r\0ZConnected to 127.0.0.1 but its replies were out of step with my commands. Possible duplicate! (#4.5.0)\n\0',
  );
  const data = await scripted(t, { replies: { DATA: '250 ok' } });
  const result = await deliver(delivery(data));
  assert.equal(wire(result), 'r\0ZConnected to 127.0.0.1 but its replies were out of step with my commands. (#4.5.0)\n\0');
  assert.equal(result.code, 'OUT_OF_STEP');
  await data.idle();
  assert.deepEqual(data.sessions[0]?.wire, [], 'no message after a 250 to DATA');
});

test('input when no reply is due stops the delivery with Z, whatever it says', async (t) => {
  const cases: Array<[string, Script]> = [
    ['a line after the greeting', { greeting: '220 hi\r\n250 unasked' }],
    ['a line after the EHLO reply', { replies: { EHLO: '250-script.test\r\n250 8BITMIME\r\n250 unasked' } }],
    ['a second reply to RCPT', { replies: { RCPT: '250 ok\r\n250 ok again' } }],
    ['half a line after the RCPT reply', { replies: { RCPT: Buffer.from('250 ok\r\n25') } }],
    ['a 250 right after the 354', { replies: { DATA: '354 go ahead\r\n250 early' } }],
    ['a blank line after the MAIL reply', { replies: { MAIL: '250 ok\r\n' } }],
  ];
  for (const [name, script] of cases) {
    const server = await scripted(t, script);
    const result = await deliver(delivery(server));
    assert.equal(result.reports.message.letter, 'Z', name);
    assert.equal(result.code, 'OUT_OF_STEP', name);
    await server.idle();
    assert.deepEqual(server.sessions[0]?.messages, [], `${name}: no message was completed`);
  }
});

test('unasked input after the reply to the final dot makes even that reply untrusted', async (t) => {
  const server = await scripted(t, { replies: { '.': '250 early\r\n554 rejected after all' } });
  const result = await deliver(delivery(server));
  assert.equal(
    wire(result),
    'r\0ZConnected to 127.0.0.1 but its replies were out of step with my commands. Possible duplicate! (#4.5.0)\n\0',
  );
});

test('an unexpected error inside a delivery is the internal-error Z, with its cause kept', async () => {
  const broken = { ...delivery({ host: '127.0.0.1', port: 1 }), addresses: null as unknown as DeliveryAddress[] };
  const result = await deliver(broken);
  assert.equal(wire(result), 'Zqmail-remote-dkim hit an internal error; will try again. (#4.3.0)\n\0');
  assert.equal(result.code, 'INTERNAL');
  assert.match(result.cause ?? '', /TypeError|not iterable/);
});

test('a refused address is skipped for the next one; none left is the no-connection Z', async (t) => {
  const server = await scripted(t);
  const closed = await freePort();
  const none = await deliver(delivery({ host: '127.0.0.1', port: closed }));
  assert.equal(wire(none), "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0");
  assert.equal(none.ip, undefined);

  // The same port on ::1 has no listener (the server is bound to 127.0.0.1 only).
  const result = await deliver(
    delivery(server, { addresses: [{ ip: '::1', family: 6 }, { ip: '127.0.0.1', family: 4 }] }),
  );
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0');
});

test('after connecting, a failure does not move on to the next address', async (t) => {
  const first = await scripted(t, { greeting: '421 too busy' });
  const second = await scripted(t);
  const result = await deliver(
    delivery(first, { addresses: [{ ip: '127.0.0.1', family: 4 }, { ip: '::1', family: 6 }] }),
  );
  assert.equal(wire(result), 'ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 too busy\n\0');
  assert.equal(second.sessions.length, 0);
});

test('a silent server times out after timeoutremote: connection died', async (t) => {
  const server = await scripted(t, { greeting: {} });
  const result = await deliver(delivery(server, { timeoutRemote: 1 }));
  assert.equal(wire(result), 'ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0');
  assert.equal(result.stage, 'greeting');
  assert.match(result.cause ?? '', /tim/i, 'the log is told it was a timeout');
  await server.idle();
  assert.deepEqual(server.sessions[0]?.commands, [], 'nothing was sent to a server that never greeted');
});

test('a server silent after RCPT times out too, and the recipient report stays', async (t) => {
  const server = await scripted(t, { replies: { DATA: {} } });
  const result = await deliver(delivery(server, { timeoutRemote: 1 }));
  assert.equal(wire(result), 'r\0ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0');
});

test('a drop before the final dot is connection died, after it "Possible duplicate!"', async (t) => {
  const before = await scripted(t, { dropInBody: true });
  // The rest of the message is held back until the server has dropped the connection, so
  // the final dot can not have been written before the drop.
  async function* stalled(): AsyncGenerator<Buffer> {
    yield MESSAGE.subarray(0, 20);
    await before.idle();
    yield MESSAGE.subarray(20);
  }
  const died = await deliver(delivery(before, { message: stalled }));
  assert.equal(wire(died), 'r\0ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0');

  const after = await scripted(t, { replies: { '.': { close: true } } });
  const duplicate = await deliver(delivery(after));
  assert.equal(wire(duplicate), 'r\0ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n\0');
  await after.idle();
  assert.deepEqual(after.sessions[0]?.messages, [MESSAGE]);
});

test('a drop right after the greeting or after MAIL is connection died', async (t) => {
  const greeted = await scripted(t, { replies: { EHLO: { close: true } } });
  assert.equal(wire(await deliver(delivery(greeted))), 'ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0');
  const mailed = await scripted(t, { replies: { MAIL: { close: true } } });
  assert.equal(wire(await deliver(delivery(mailed))), 'ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0');
});

test('a 421 to RCPT is s, then the closed connection is connection died', async (t) => {
  const server = await scripted(t, { replies: { RCPT: { reply: '421 4.3.2 shutting down', close: true } } });
  const result = await deliver(delivery(server, { recips: ['one@x.test', 'two@x.test'] }));
  assert.equal(
    wire(result),
    's127.0.0.1 does not like recipient.\nRemote host said: 421 4.3.2 shutting down\n\0' +
      'ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0',
  );
});

test('multi-line replies are quoted whole, every line with its code', async (t) => {
  const server = await scripted(t, {
    greeting: '220-script.test\r\n220 welcome',
    replies: {
      RCPT: ['550-5.1.1 first line\r\n550-5.1.1 second line\r\n550 5.1.1 last line', '250 ok'],
      '.': '250-2.0.0 one\r\n250-2.0.0 two\r\n250 2.0.0 three',
    },
  });
  const result = await deliver(delivery(server, { recips: ['one@x.test', 'two@x.test'] }));
  assert.equal(
    wire(result),
    'h127.0.0.1 does not like recipient.\n' +
      'Remote host said: 550-5.1.1 first line\n550-5.1.1 second line\n550 5.1.1 last line\n\0' +
      'r\0' +
      'K127.0.0.1 accepted message.\nRemote host said: 250-2.0.0 one\n250-2.0.0 two\n250 2.0.0 three\n\0',
  );
});

test('reply bytes are quoted as sent: NUL becomes ?, CR vanishes, 8-bit stays as it was', async (t) => {
  const server = await scripted(t, {
    replies: {
      RCPT: [
        Buffer.from('550 no\0such\ruser\r\n', 'latin1'),
        Buffer.from('551 caf\xc3\xa9 utf-8\r\n', 'latin1'),
        Buffer.from('552 caf\xe9 latin-1\r\n', 'latin1'),
        '250 ok',
      ],
    },
  });
  const result = await deliver(delivery(server, { recips: ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test'] }));
  const prefix = 'h127.0.0.1 does not like recipient.\nRemote host said: ';
  assert.equal(
    wire(result),
    `${prefix}550 no?suchuser\n\0` +
      `${prefix}551 caf\xc3\xa9 utf-8\n\0` +
      `${prefix}552 caf\xe9 latin-1\n\0` +
      'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0',
  );
});

test('a reply longer than 5000 bytes is quoted up to 5000 bytes and still ends in LF', async (t) => {
  const long = `550-${'x'.repeat(3000)}\r\n550 ${'y'.repeat(3000)}`;
  const server = await scripted(t, { replies: { MAIL: long } });
  const result = await deliver(delivery(server));
  const text = `550-${'x'.repeat(3000)}\n550 ${'y'.repeat(3000)}\n`.slice(0, 5000) + '\n';
  assert.equal(wire(result), `DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: ${text}\0`);
});

test('a reply without a code defers rather than bounces', async (t) => {
  const server = await scripted(t, { replies: { MAIL: 'what?' } });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: what?\n\0');
});

test('greeting other than 220 and a rejected HELO are Z with the reply', async (t) => {
  const greeting = await scripted(t, { greeting: '554 5.7.1 go away' });
  assert.equal(
    wire(await deliver(delivery(greeting))),
    'ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 5.7.1 go away\n\0',
  );
  const helo = await scripted(t, { replies: { EHLO: '502 not here', HELO: '550 5.7.1 bad name' } });
  assert.equal(
    wire(await deliver(delivery(helo))),
    'ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 550 5.7.1 bad name\n\0',
  );
  await helo.idle();
  assert.deepEqual(helo.sessions[0]?.commands, ['EHLO relay.example.org', 'HELO relay.example.org']);
});

test('EHLO refused, HELO accepted: the delivery goes on', async (t) => {
  const server = await scripted(t, { replies: { EHLO: '500 what is EHLO' } });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0');
});

test('a STARTTLS handshake that fails is retried once in plaintext, without STARTTLS', async (t) => {
  const server = await scripted(t, {
    replies: {
      EHLO: '250-script.test\r\n250 STARTTLS',
      STARTTLS: { reply: '220 go ahead', answerNextWith: '500 this is not TLS\r\n' },
    },
  });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0');
  await server.idle();
  assert.equal(server.sessions.length, 2);
  assert.deepEqual(server.sessions[0]?.commands, ['EHLO relay.example.org', 'STARTTLS']);
  assert.ok(!server.sessions[1]?.commands.includes('STARTTLS'));
  assert.deepEqual(server.sessions[1]?.messages, [MESSAGE]);
});

test('after a failed handshake, a plaintext retry refused for want of TLS defers, never bounces', async (t) => {
  const brokenTls = {
    EHLO: ['250-script.test\r\n250 STARTTLS', '250 script.test'],
    STARTTLS: { reply: '220 go ahead', answerNextWith: '500 this is not TLS\r\n' },
  };
  const prefix = 'ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: ';
  const cases: Array<[string, Script, string]> = [
    ['530 to MAIL', { replies: { ...brokenTls, MAIL: '530 5.7.0 Must issue a STARTTLS command first' } },
      `${prefix}530 5.7.0 Must issue a STARTTLS command first\n\0`],
    ['any 5xx to MAIL', { replies: { ...brokenTls, MAIL: '554 5.7.1 plaintext not welcome' } },
      `${prefix}554 5.7.1 plaintext not welcome\n\0`],
    ['5xx to RCPT', { replies: { ...brokenTls, RCPT: '550 5.7.1 TLS required' } },
      's127.0.0.1 does not like recipient.\nRemote host said: 550 5.7.1 TLS required\n\0DGiving up on 127.0.0.1.\n\0'],
    ['530 to DATA', { replies: { ...brokenTls, DATA: '530 5.7.0 TLS first' } },
      'r\0Z127.0.0.1 failed on DATA command.\nRemote host said: 530 5.7.0 TLS first\n\0'],
  ];
  for (const [name, script, report] of cases) {
    const server = await scripted(t, script);
    const result = await deliver(delivery(server));
    // "s…\0D…" is read by qmail-rspawn as Z: the first report is s.
    assert.equal(wire(result), report, name);
    await server.idle();
    assert.equal(server.sessions.length, 2, `${name}: one retry in plaintext`);
  }
  // Without a failed handshake first, a 5xx to MAIL still bounces, as in qmail.
  const plain = await scripted(t, { replies: { MAIL: '530 5.7.0 Must issue a STARTTLS command first' } });
  assert.equal((await deliver(delivery(plain))).reports.message.letter, 'D');
});

test('a failed handshake whose retry cannot connect is connection died, Z', async (t) => {
  const server = await scripted(t, {
    replies: { EHLO: '250-script.test\r\n250 STARTTLS', STARTTLS: { reply: '220 go ahead', answerNextWith: 'x\r\n' } },
  });
  // The retry is refused: the server stops listening as soon as the first connection ends.
  const first = server.sessions.length;
  const closing = (async () => {
    while (server.sessions.length === first) await new Promise((resolve) => setImmediate(resolve));
    await server.sessions[first]?.closed;
    await server.close();
  })();
  const result = await deliver(delivery(server));
  await closing;
  assert.equal(result.reports.message.letter, 'Z');
  assert.match(result.reports.message.text, /^Connected to 127\.0\.0\.1 but connection died\. \(#4\.4\.2\)\n$/);
  assert.ok(['TLS_FAILED', 'CONNECTION_DIED'].includes(result.code), result.code);
});

test('STARTTLS refused with 454: the same connection goes on in plaintext', async (t) => {
  const server = await scripted(t, { replies: { EHLO: '250-script.test\r\n250 STARTTLS', STARTTLS: '454 4.7.0 not now' } });
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0');
  assert.equal(server.sessions.length, 1);
});

test('a bounce goes out with MAIL FROM:<>, a double bounce with MAIL FROM:<#@[]>', async (t) => {
  const server = await scripted(t);
  for (const sender of ['', '#@[]']) {
    const result = await deliver(delivery(server, { sender }));
    assert.equal(result.reports.message.letter, 'K');
  }
  await server.idle();
  assert.deepEqual(
    server.sessions.map((s) => s.commands[1]),
    ['MAIL FROM:<>', 'MAIL FROM:<#@[]>'],
  );
});

test('local parts that are not dot-atoms are quoted as qmail does', async (t) => {
  assert.equal(addrmangle('john doe@example.com'), '"john doe"@example.com');
  assert.equal(addrmangle('a"b\\c@x@example.com'), '"a\\"b\\\\c@x"@example.com');
  assert.equal(addrmangle('.lead@example.com'), '".lead"@example.com');
  assert.equal(addrmangle('two..dots@example.com'), '"two..dots"@example.com');
  assert.equal(addrmangle('@example.com'), '""@example.com');
  assert.equal(addrmangle('plain.name+tag@example.com'), 'plain.name+tag@example.com');
  assert.equal(addrmangle('postmaster'), 'postmaster');
  const server = await scripted(t);
  await deliver(delivery(server, { recips: ['john doe@example.com'] }));
  await server.idle();
  assert.equal(server.sessions[0]?.commands[2], 'RCPT TO:<"john doe"@example.com>');
});

test('addresses go out as the bytes they are; < and > in a local part are quoted and sent', async (t) => {
  assert.equal(addrmangle('a>b@example.net'), '"a>b"@example.net');
  assert.equal(addrmangle('caf\xe9@example.net'), '"caf\xe9"@example.net');
  const server = await scripted(t);
  const result = await deliver(delivery(server, { sender: 'caf\xe9@example.com', recips: ['a<b@example.com', 'a>b@example.net'] }));
  assert.equal(result.reports.message.letter, 'K');
  await server.idle();
  const received = server.sessions[0]?.received ?? Buffer.alloc(0);
  assert.ok(received.includes(Buffer.from('MAIL FROM:<"caf\xe9"@example.com>\r\n', 'latin1')), 'the byte 0xE9, not U+FFFD');
  assert.deepEqual(server.sessions[0]?.commands.filter((c) => c.startsWith('RCPT')), [
    'RCPT TO:<"a<b"@example.com>',
    'RCPT TO:<"a>b"@example.net>',
  ]);
});

test('addresses with CR, LF or NUL, or < or > outside the local part, never reach the wire', async (t) => {
  const server = await scripted(t);
  const sender = await deliver(delivery(server, { sender: 'a@x.test>\r\nRCPT TO:<evil@x.test' }));
  assert.equal(wire(sender), 'DSorry, the envelope sender contains characters SMTP cannot carry. (#5.1.7)\n\0');
  assert.equal(server.sessions.length, 0);

  const onlyBad = await deliver(delivery(server, { recips: ['b@x.test\0'] }));
  assert.equal(
    wire(onlyBad),
    'hSorry, the recipient address contains characters SMTP cannot carry. (#5.1.3)\n\0' +
      'DSorry, no recipient address could be sent over SMTP. (#5.1.3)\n\0',
  );
  assert.equal(server.sessions.length, 0);

  const mixed = await deliver(delivery(server, { recips: ['<bad@x.test>', 'good@x.test'] }));
  assert.equal(
    wire(mixed),
    'hSorry, the recipient address contains characters SMTP cannot carry. (#5.1.3)\n\0' +
      'r\0K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0',
  );
  await server.idle();
  assert.deepEqual(server.sessions[0]?.commands.filter((c) => c.startsWith('RCPT')), ['RCPT TO:<good@x.test>']);
});

test('IPv6: delivery to ::1 names the address as connected', async (t) => {
  const server = await scripted(t, {}, '::1');
  const result = await deliver(delivery(server));
  assert.equal(wire(result), 'r\0K::1 accepted message.\nRemote host said: 250 queued\n\0');
  assert.equal(result.ip, '::1');
});

test('a large message streams through in many chunks and arrives intact', async (t) => {
  const server = await scripted(t);
  const line = Buffer.from(`.${'z'.repeat(998)}\r\n`);
  const chunks = 8 * 1024; // 8 MiB in 1 KiB lines
  let pulled = 0;
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < chunks; i += 1) {
      pulled += 1;
      yield line;
    }
  }
  const result = await deliver(delivery(server, { message: () => Readable.from(body()) }));
  assert.equal(result.reports.message.letter, 'K');
  assert.equal(pulled, chunks);
  await server.idle();
  const received = server.sessions[0]?.messages[0];
  assert.equal(received?.length, line.length * chunks);
  assert.ok(received?.equals(Buffer.concat(Array.from({ length: chunks }, () => line))));
});

test('a message source that fails mid-way: Z unable to read, the final dot is never sent', async (t) => {
  const server = await scripted(t);
  function* failing(): Generator<Buffer> {
    yield Buffer.from('Subject: x\r\n\r\nfirst line\r\n');
    throw new Error('EIO');
  }
  const result = await deliver(delivery(server, { message: failing }));
  assert.equal(wire(result), 'r\0ZUnable to read message. (#4.3.0)\n\0');
  await server.idle();
  const session = server.sessions[0];
  assert.deepEqual(session?.wire, []);
  assert.ok(!session?.received.includes('\r\n.\r\n'));
});

test('a delivery writes nothing to stdout or stderr (they are the report pipe)', async (t) => {
  const server = await scripted(t, { replies: { RCPT: '550 no' } });
  // In a child process of its own, since the test runner itself talks over stdout.
  const script = `
    import { deliver } from ${JSON.stringify(new URL('../../src/delivery/smtp/index.ts', import.meta.url).href)};
    const base = { helohost: 'h.test', sender: 'a@x.test', recips: ['b@x.test'], message: () => [Buffer.from('x\\r\\n')],
      timeoutConnect: 5, timeoutRemote: 5, addresses: [{ ip: '127.0.0.1', family: 4 }] };
    const rejected = await deliver({ ...base, port: Number(process.env.PORT) });
    const refused = await deliver({ ...base, port: Number(process.env.CLOSED) });
    process.exitCode = rejected.reports.message.letter === 'D' && refused.reports.message.letter === 'Z' ? 0 : 3;
  `;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(server.port), CLOSED: String(await freePort()) };
  delete env.NODE_TEST_CONTEXT; // the child is a plain program, not a test file
  const child = await run(process.execPath, ['--input-type=module', '-e', script], { env });
  assert.equal(child.stderr, '');
  assert.equal(child.stdout, '');
  assert.equal(child.status, 0);
  await server.idle();
  assert.equal(server.sessions.length, 1);
});

// ---------------------------------------------------------------------------------------------
// TLS and AUTH against smtp-server

interface Received {
  secure: boolean;
  user: unknown;
  message: Buffer;
}

async function smtpServer(
  t: TestContext,
  options: SMTPServerOptions,
): Promise<{ host: string; port: number; received: Received[]; auths: string[] }> {
  const received: Received[] = [];
  const auths: string[] = [];
  const server = new SMTPServer({
    logger: false,
    onAuth(auth, _session, callback) {
      auths.push(`${auth.method} ${auth.username ?? ''}`);
      if (auth.username === 'relay' && auth.password === 's3cret') return callback(null, { user: 'relay' });
      return callback(new Error('5.7.8 Authentication credentials invalid'));
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({ secure: session.secure, user: session.user, message: Buffer.concat(chunks) });
        callback();
      });
    },
    ...options,
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { host: '127.0.0.1', port: address.port, received, auths };
}

const AUTH = { user: 'relay', pass: 's3cret' };
// Credentials go only over TLS whose certificate verifies: a test CA, the relay as an IP
// address (its certificate names 127.0.0.1), and the CA given as a tlshosts/ file would give it.
const testCa = makeTestCa();
process.on('exit', () => testCa.cleanup());
const relayCert = (): { key: Buffer; cert: Buffer } => testCa.issue({ ip: ['127.0.0.1'] });
const verifiedRelay = (server: { host: string; port: number }, overrides: Partial<Delivery> = {}): Delivery =>
  delivery(server, {
    addresses: [{ ip: server.host, family: 4, tls: { kind: 'verified', policy: 'tlshosts', name: server.host, ca: testCa.cert.toString() } }],
    ...overrides,
  });

test('STARTTLS with a certificate that verifies, then AUTH PLAIN, then the message', async (t) => {
  const server = await smtpServer(t, { ...relayCert(), authMethods: ['PLAIN', 'LOGIN'] });
  const result = await deliver(verifiedRelay(server, { auth: AUTH }));
  assert.equal(result.reports.message.letter, 'K', wire(result));
  assert.match(wire(result), /^r\0K127\.0\.0\.1 accepted message\.\nRemote host said: 250 OK: message queued\n\0$/);
  assert.deepEqual(server.auths, ['PLAIN relay']);
  assert.equal(server.received.length, 1);
  assert.equal(server.received[0]?.secure, true);
  assert.equal(server.received[0]?.user, 'relay');
  assert.ok(server.received[0]?.message.equals(MESSAGE));
  assert.deepEqual({ ...result.tls, version: undefined }, { version: undefined, verified: true, policy: 'tlshosts', result: 'success' });
});

test('AUTH over STARTTLS whose certificate nobody verified: Z, no AUTH, nothing sent', async (t) => {
  const server = await smtpServer(t, { ...selfSignedCert(), authMethods: ['PLAIN', 'LOGIN'] });
  const result = await deliver(delivery(server, { auth: AUTH }));
  assert.equal(wire(result), 'ZConnected to 127.0.0.1 but TLS is required and could not be verified. (#4.7.5)\n\0');
  assert.deepEqual(server.auths, []);
  assert.equal(server.received.length, 0);
});

test('AUTH LOGIN when it is the only mechanism offered', async (t) => {
  const server = await smtpServer(t, { ...relayCert(), authMethods: ['LOGIN'] });
  const result = await deliver(verifiedRelay(server, { auth: AUTH }));
  assert.equal(result.reports.message.letter, 'K', wire(result));
  assert.deepEqual(server.auths, ['LOGIN relay']);
});

test('AUTH rejected: Z with the reply, nothing sent', async (t) => {
  const server = await smtpServer(t, { ...relayCert(), authMethods: ['PLAIN'] });
  const result = await deliver(verifiedRelay(server, { auth: { user: 'relay', pass: 'wrong' } }));
  assert.equal(
    wire(result),
    'ZConnected to 127.0.0.1 but authentication was rejected.\n' +
      'Remote host said: 535 5.7.8 Authentication credentials invalid\n\0',
  );
  assert.equal(server.received.length, 0);
});

test('AUTH configured but no STARTTLS: Z, and the credentials are never sent', async (t) => {
  const server = await smtpServer(t, { disabledCommands: ['STARTTLS'], allowInsecureAuth: true, authMethods: ['PLAIN'] });
  const result = await deliver(delivery(server, { auth: AUTH }));
  assert.equal(wire(result), 'ZConnected to 127.0.0.1 but STARTTLS is required for AUTH. (#4.7.0)\n\0');
  assert.deepEqual(server.auths, []);
  assert.equal(server.received.length, 0);
});

test('smtp-server without AUTH: plain delivery over STARTTLS, message intact', async (t) => {
  const server = await smtpServer(t, { ...selfSignedCert(), authOptional: true });
  const result = await deliver(delivery(server, { recips: ['b@example.net', 'c@example.net'] }));
  assert.equal(result.reports.message.letter, 'K', wire(result));
  assert.equal(server.received[0]?.secure, true);
  assert.ok(server.received[0]?.message.equals(MESSAGE));
});
