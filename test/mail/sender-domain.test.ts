import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstMailboxDomain, keyDomainSource } from '../../src/mail/sender-domain.ts';
import { HeadReader } from '../../src/mail/header.ts';

test('the domain of the first mailbox, through the forms RFC 5322 allows', () => {
  const cases: Array<[string, string | null]> = [
    ['joe@example.com', 'example.com'],
    ['"Joe" <joe@Example.COM>', 'Example.COM'],
    ['"a@evil.test" <joe@example.com>', 'example.com'],
    ['joe@example.com (Joe at evil.test@x)', 'example.com'],
    ['(comment (nested @x)) Joe <joe@example.com>', 'example.com'],
    ['"quoted@local"@example.com', 'example.com'],
    ['Team: a@one.example, b@two.example;', 'one.example'],
    ['undisclosed-recipients:;, c@three.example', 'three.example'],
    ['a@first.example, b@second.example', 'first.example'],
    ['<@relay.example:joe@example.com>', 'example.com'],
    ['joe@[192.0.2.1]', '[192.0.2.1]'],
    ['no address here', null],
    ['', null],
  ];
  for (const [value, domain] of cases) assert.equal(firstMailboxDomain(value), domain, value);
});

test('Sender: wins over From:', () => {
  const reader = new HeadReader();
  reader.push(Buffer.from('From: a@from.example\r\nSender: b@sender.example\r\n\r\n'));
  assert.deepEqual(keyDomainSource(reader.head!), { found: true, header: 'Sender', domain: 'sender.example' });
});

test('no From: and no Sender: is no domain', () => {
  const reader = new HeadReader();
  reader.push(Buffer.from('To: a@b.example\r\n\r\n'));
  assert.equal(keyDomainSource(reader.head!).found, false);
});
