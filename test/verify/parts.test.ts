// The pieces of qmail-dkverify on their own: DKVERIFY parsing and the decision, the envelope,
// the authserv-id of an existing Authentication-Results, and the rewriting of the message at
// every chunk boundary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, parseLetters } from '../../src/verify/letters.ts';
import { parseEnvelope } from '../../src/verify/envelope.ts';
import { authservIdOf } from '../../src/verify/auth-results.ts';
import { rewritten } from '../../src/verify/rewrite.ts';
import { VerifyFailure } from '../../src/verify/outcomes.ts';

test('DKVERIFY: empty, DK only (qmail-dk), DK,DKIM; anything else throws 81', () => {
  assert.deepEqual(parseLetters(''), { dk: '', dkim: '' });
  assert.deepEqual(parseLetters('DEGIJKfh'), { dk: 'DEGIJKfh', dkim: '' });
  assert.deepEqual(parseLetters('DEGIJKfh,CGHIJMQRkl'), { dk: 'DEGIJKfh', dkim: 'CGHIJMQRkl' });
  assert.deepEqual(parseLetters(',N'), { dk: '', dkim: 'N' });
  for (const bad of ['L', ',S', 'A,B,C', ' A', 'A ,B', 'a;b', '1']) {
    assert.throws(() => parseLetters(bad), (error: unknown) => error instanceof VerifyFailure && error.outcome.status === 81, bad);
  }
});

test('decide: uppercase rejects, lowercase defers, reject wins, absent accepts', () => {
  const policy = parseLetters('Bc,Pk');
  assert.equal(decide(policy, 'B', 'A'), 'reject');
  assert.equal(decide(policy, 'C', 'A'), 'defer');
  assert.equal(decide(policy, 'C', 'P'), 'reject');
  assert.equal(decide(policy, 'A', 'K'), 'defer');
  assert.equal(decide(policy, 'A', 'A'), 'accept');
  assert.equal(decide(parseLetters(''), 'K', 'R'), 'accept');
});

test('envelope: sender, recipients, the bytes up to the final NUL; errors are 54 or 91', () => {
  const envelope = parseEnvelope(Buffer.from('Fa@b\0Tc@d\0Te@f\0\0trailing'));
  assert.equal(envelope.sender, 'a@b');
  assert.deepEqual(envelope.recipients, ['c@d', 'e@f']);
  assert.equal(envelope.bytes.toString(), 'Fa@b\0Tc@d\0Te@f\0\0');
  assert.equal(parseEnvelope(Buffer.from('F\0\0')).sender, '');
  const status = (text: string): number => {
    try {
      parseEnvelope(Buffer.from(text));
      return 0;
    } catch (error) {
      return (error as VerifyFailure).outcome.status;
    }
  };
  assert.equal(status(''), 54);
  assert.equal(status('Fa@b'), 54);
  assert.equal(status('Fa@b\0Tc@d'), 54);
  assert.equal(status('Fa@b\0Tc@d\0'), 54);
  assert.equal(status('Ta@b\0\0'), 91);
  assert.equal(status('Fa@b\0Xc@d\0\0'), 91);
});

test('authserv-id of an Authentication-Results value: after comments, quoted or not, lowercased', () => {
  assert.equal(authservIdOf(' MX.Example.NET; dkim=pass'), 'mx.example.net');
  assert.equal(authservIdOf(' (forged (nested)) mx.example.net 1; none'), 'mx.example.net');
  assert.equal(authservIdOf('\r\n\t"mx.example.net"; none'), 'mx.example.net');
  assert.equal(authservIdOf('mx.example.net;none'), 'mx.example.net');
  assert.equal(authservIdOf(' (unterminated'), null);
  assert.equal(authservIdOf(''), null);
});

const MESSAGE = Buffer.from(
  'Received: from x\n  by y\nAuthentication-Results: mx.test;\n dkim=pass\nauthentication-results : (c) MX.TEST; x\n' +
    'Authentication-Results: other.test; spf=pass\nSubject: s\n\nAuthentication-Results: mx.test; in the body\n',
);
const EXPECTED =
  'NEW\nReceived: from x\n  by y\nX-Original-Authentication-Results: mx.test;\n dkim=pass\nX-Original-authentication-results : (c) MX.TEST; x\n' +
  'X-Original-Authentication-Results: other.test; spf=pass\nSubject: s\n\nAuthentication-Results: mx.test; in the body\n';

function rewrite(message: Buffer, size: number, field = Buffer.alloc(0)): string {
  const chunks: Buffer[] = [];
  for (let i = 0; i < message.length; i += size) chunks.push(message.subarray(i, i + size));
  return Buffer.concat([...rewritten(chunks, field)].map((chunk) => Buffer.from(chunk))).toString('latin1');
}

test('rewriting renames every Authentication-Results field of the head, whatever the chunk boundaries', () => {
  for (let size = 1; size <= MESSAGE.length; size++) assert.equal(rewrite(MESSAGE, size, Buffer.from('NEW\n')), EXPECTED, `chunks of ${size}`);
});

// What a lenient reader (Dovecot, procmail, maildrop) still reads as an Authentication-Results
// field above the first empty line, after whatever stopped a stricter parser.
const FORGED = 'Authentication-Results: mx.test; dkim=pass header.d=bank.test\n';
const PROBES: Record<string, string> = {
  'after a line without a colon': `Subject: s\nno colon here\n${FORGED}\nbody\n`,
  'after an 8-bit field name': `Subj\xe9ct: s\n${FORGED}\nbody\n`,
  'after a NUL-terminated field name': `Subject\0: s\n${FORGED}\nbody\n`,
  'with a NUL in its own name': `Authentication-Results\0: mx.test; dkim=pass\n\nbody\n`,
  'with its name folded before the colon': `Subject: s\nAuthentication-Results\n : mx.test; dkim=pass\n\nbody\n`,
  'after a bare CR': `Subject: s\r${FORGED}\nbody\n`,
  'after 4 MB of header': `X-Big: ${'a'.repeat(76)}\n${' b\n'.repeat(4 << 18)}${FORGED}\nbody\n`,
  'with a trailing dot on the id': 'Authentication-Results: mx.test.; dkim=pass\n\nbody\n',
  'in upper case with CRLF': 'AUTHENTICATION-RESULTS: MX.TEST; dkim=pass\r\n\r\nbody\r\n',
};

for (const [name, text] of Object.entries(PROBES)) {
  test(`a forged Authentication-Results ${name} is renamed`, () => {
    const message = Buffer.from(text, 'latin1');
    for (const size of [1, 7, 65536]) {
      if (size === 1 && message.length > 10000) continue;
      const out = rewrite(message, size);
      const head = out.slice(0, out.search(/\r?\n\r?\n/));
      assert.doesNotMatch(head, /(^|[\n\r])Authentication-Results/i, `chunks of ${size}`);
      assert.equal(out.replace(/X-Original-/g, ''), text, 'nothing else changes');
      assert.match(out, /X-Original-Authentication-Results/i);
    }
  });
}

test('a field name folded over a long run of blank continuation lines is renamed, not held without end', () => {
  const message = Buffer.from(`Authentication-${' \n'.repeat(40000)} Results: mx.test; dkim=pass\n\nbody\n`, 'latin1');
  assert.match(rewrite(message, 4096), /^X-Original-Authentication-/);
});

test('rewriting passes everything else byte for byte: CRLF, bare CR, NUL, no final newline, no body', () => {
  for (const text of ['A: 1\r\nB: 2\r\n\r\nbody\r\n', 'A: 1\rB\0: 2\n\nbo\0dy', 'A: 1\nB: 2', 'not a header\nA: 1\n', '']) {
    const message = Buffer.from(text, 'latin1');
    for (const size of [1, 3, 64]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < message.length; i += size) chunks.push(message.subarray(i, i + size));
      const out = Buffer.concat([...rewritten(chunks, Buffer.alloc(0))].map((chunk) => Buffer.from(chunk)));
      assert.deepEqual(out, message, JSON.stringify(text));
    }
  }
});
