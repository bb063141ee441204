// Key lookup through control/dksign: parent order, missing versus unusable keys, and hostile
// domains, with every path the lookup asks for recorded so the tests can prove none lies
// outside what the template names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, truncateSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalDomain, parentDomains } from '../../src/mail/domain.ts';
import { lookupKey, MAX_KEY_BYTES, type ReadFile } from '../../src/signing/keys.ts';

const RSA_PEM = readFileSync(new URL('../fixtures/keys/example.com/default', import.meta.url));
const ED_PEM = readFileSync(new URL('../fixtures/keys/example.com/ed25519', import.meta.url));
const PKCS8_PEM = readFileSync(new URL('../fixtures/keys/example.net/pkcs8', import.meta.url));

/** A key store in memory that records every path read. */
function store(files: Record<string, Buffer | NodeJS.ErrnoException>): { read: ReadFile; asked: string[] } {
  const asked: string[] = [];
  const read: ReadFile = (path) => {
    asked.push(path);
    const file = files[path];
    if (file === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    if (file instanceof Error) throw file;
    return file;
  };
  return { read, asked };
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

test('parents are tried from the full domain down to two labels', () => {
  assert.deepEqual(parentDomains('a.b.example.com'), ['a.b.example.com', 'b.example.com', 'example.com']);
  assert.deepEqual(parentDomains('example.com'), ['example.com']);
  assert.deepEqual(parentDomains('localhost'), ['localhost']);
  const { read, asked } = store({});
  const result = lookupKey('/etc/domainkeys/%/default', 'a.b.example.com', '/var/qmail', read);
  assert.equal(result.kind, 'none');
  assert.deepEqual(asked, [
    '/etc/domainkeys/a.b.example.com/default',
    '/etc/domainkeys/b.example.com/default',
    '/etc/domainkeys/example.com/default',
  ]);
});

test('the first key found decides d= and s=', () => {
  const { read } = store({ '/etc/domainkeys/example.com/default': RSA_PEM });
  const result = lookupKey('/etc/domainkeys/%/default', 'Mail.Example.COM', '/var/qmail', read);
  assert.equal(result.kind, 'found');
  if (result.kind !== 'found') return;
  assert.equal(result.key.domain, 'example.com');
  assert.equal(result.key.selector, 'default');
  assert.equal(result.key.type, 'rsa');
  assert.equal(result.key.bits, 2048);
});

test('PKCS#1, PKCS#8 RSA and PKCS#8 ed25519 are all accepted', () => {
  for (const [pem, type] of [[RSA_PEM, 'rsa'], [PKCS8_PEM, 'rsa'], [ED_PEM, 'ed25519']] as const) {
    const { read } = store({ '/k/example.org/sel': pem });
    const result = lookupKey('/k/%/sel', 'example.org', '/var/qmail', read);
    assert.equal(result.kind === 'found' && result.key.type, type);
  }
});

test('a key that is there but unreadable or unusable is an error, not "unsigned"', () => {
  const cases: Record<string, Buffer | NodeJS.ErrnoException> = {
    eacces: errno('EACCES'),
    eisdir: errno('EISDIR'),
    garbage: Buffer.from('this is not a key\n'),
    public: Buffer.from('-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n'),
  };
  for (const [name, file] of Object.entries(cases)) {
    const { read } = store({ '/k/example.org/default': file });
    const result = lookupKey('/k/%/default', 'example.org', '/var/qmail', read);
    assert.equal(result.kind, 'error', name);
    if (result.kind === 'error') assert.doesNotMatch(result.reason, /BEGIN|MII/, 'no key material in the reason');
  }
});

test('a parent key is not reached past an unreadable one', () => {
  const { read, asked } = store({ '/k/b.example.com/default': errno('EACCES'), '/k/example.com/default': RSA_PEM });
  assert.equal(lookupKey('/k/%/default', 'b.example.com', '/', read).kind, 'error');
  assert.deepEqual(asked, ['/k/b.example.com/default']);
});

test('a template without % names one key; a relative one is under the qmail home', () => {
  const { read, asked } = store({ '/var/qmail/control/dkim.key': RSA_PEM });
  const result = lookupKey('control/dkim.key', 'example.org', '/var/qmail', read);
  assert.deepEqual(asked, ['/var/qmail/control/dkim.key']);
  assert.equal(result.kind === 'found' && result.key.domain, 'example.org');
  assert.equal(result.kind === 'found' && result.key.selector, 'dkim.key');
});

test('hostile domains open nothing at all', () => {
  const hostile = [
    '../../etc', 'example.com/../x', '..', '.', 'exa\0mple.com', '*', '*.example.com', '{a,b}.example.com',
    'a..b', 'example.com\\x', ' example.com', 'exa mple.com', 'ex[a]mple.com', 'x?.com', '-a.com', 'a-.com',
    'a'.repeat(300), `${'a'.repeat(64)}.com`, `${'abc.'.repeat(70)}com`, '[192.0.2.1]', 'example.com\n', '~root',
    // A slash without any '..': still a second path component under the key root.
    'sub/dir.example.com', 'example.com/default', '/etc', 'example.com/', 'a/b/c.example.org', 'sub%2fdir.example.com',
    'sub\uff0fdir.example.com', '%', 'example.%',
  ];
  for (const domain of hostile) {
    const { read, asked } = store({});
    const result = lookupKey('/etc/domainkeys/%/default', domain, '/var/qmail', read);
    assert.equal(result.kind, 'none', JSON.stringify(domain));
    assert.deepEqual(asked, [], JSON.stringify(domain));
  }
});

test('every path asked for is the template with a valid domain in place of %', () => {
  // U+2215 (division slash) looks like '/' but is a letter to IDNA: it becomes an A-label.
  const domains = ['Ünïcode.example', 'xn--nicode-2ya4d.example', 'a.b.c.d.example.com', 'EXAMPLE.COM.', 'sub\u2215dir.example.com'];
  const shape = /^\/etc\/domainkeys\/([a-z0-9-]+(\.[a-z0-9-]+)*)\/default$/;
  for (const domain of domains) {
    const { read, asked } = store({});
    lookupKey('/etc/domainkeys/%/default', domain, '/var/qmail', read);
    assert.ok(asked.length > 0, domain);
    for (const path of asked) assert.match(path, shape);
  }
});

test('IDN domains become A-labels', () => {
  assert.equal(canonicalDomain('bücher.example'), 'xn--bcher-kva.example');
  assert.equal(canonicalDomain('EXAMPLE.com.'), 'example.com');
  assert.equal(canonicalDomain('example..com'), null);
});

test('key files that would hang or grow the process are errors at once, not reads', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'qrd-keyfiles-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const make: Record<string, (path: string) => void> = {
    fifo: (path) => execFileSync('mkfifo', [path]),
    'dev-zero': (path) => symlinkSync('/dev/zero', path),
    directory: (path) => mkdirSync(path),
    huge: (path) => { writeFileSync(path, ''); truncateSync(path, 8 * 2 ** 30); },
    'one-byte-over': (path) => writeFileSync(path, RSA_PEM.toString() + 'x'.repeat(MAX_KEY_BYTES - RSA_PEM.length + 1)),
  };
  for (const [name, create] of Object.entries(make)) {
    mkdirSync(join(root, name));
    create(join(root, name, 'default'));
    const result = lookupKey(`${root}/%/default`, name, '/', undefined);
    assert.equal(result.kind, 'error', name);
  }
  // Exactly at the limit it is read (and parsed: trailing text after a PEM block is ignored).
  mkdirSync(join(root, 'at-limit'));
  writeFileSync(join(root, 'at-limit', 'default'), RSA_PEM.toString() + 'x'.repeat(MAX_KEY_BYTES - RSA_PEM.length));
  assert.equal(lookupKey(`${root}/%/default`, 'at-limit', '/').kind, 'found');
});
