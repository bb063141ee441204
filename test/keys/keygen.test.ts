// Keys made by dknewkey and `qmail-remote-dkim keygen`: the files (PEM form, mode 0640, never
// overwritten, group qmail), the BIND record (strings of at most 255 bytes that join into a
// DKIM key record for exactly this key), and end to end: a key the tool made signs mail, through
// `qmail-remote-dkim sign`, that Mail::DKIM and dkimpy verify against the record the tool printed,
// served by a real DNS server.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { runNode } from '../helpers/run.ts';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { verifyWithDkimpy, verifyWithMailDkim, type VerifierReport } from '../helpers/verifiers.ts';
import { parseKeyRecord } from '../../src/keys/key-record.ts';
import { writeKeyFile } from '../../src/keys/keygen.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const DKNEWKEY = fileURLToPath(new URL('../../src/cli/dknewkey.ts', import.meta.url));
const DOMAIN = 'example.com';
const MESSAGE = Buffer.from(
  'From: Alice <alice@example.com>\nTo: bob@example.net\nSubject: made with our own key\n' +
    'Date: Tue, 14 Nov 2023 22:13:20 +0000\nMessage-ID: <keygen-test@example.com>\n\nHello,\n\nthis is signed.\n',
);

const scratch = (): string => mkdtempSync(join(tmpdir(), 'qrd-keygen-'));
const cleanups: string[] = [];
after(() => {
  for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
});

// The group file every key-making command here is given, so that what group a new key gets
// never depends on whether this host has a qmail group: run as root, the key goes to this gid.
const QMAIL_GID = 4242;
const GROUP_FILE = join(tempDir(), 'group');
writeFileSync(GROUP_FILE, `root:x:0:\nqmail:x:${QMAIL_GID}:\n`);
const AS_ROOT = process.getuid?.() === 0;
/** The gid a key made by the commands must have: qmail's when made by root, else the maker's. */
const KEY_GID = AS_ROOT ? QMAIL_GID : process.getgid?.();

function run(script: string, args: string[], options: { cwd?: string; input?: Buffer; env?: NodeJS.ProcessEnv } = {}) {
  const makesKeys = script === DKNEWKEY || args[0] === 'keygen';
  return runNode(script, makesKeys ? [...args, '--group', GROUP_FILE] : args, {
    cwd: options.cwd ?? tmpdir(), stdin: options.input ?? Buffer.alloc(0), ...(options.env ? { env: options.env } : {}),
  });
}
function tempDir(): string {
  const dir = scratch();
  cleanups.push(dir);
  return dir;
}

/** The character-strings of a printed `owner IN TXT ( "…" "…" )` line, checked for form. */
function txtStrings(line: string, owner: string): string[] {
  assert.match(line, /^\S+ IN TXT \( (?:"[^"\\]*" )+\)\n$/, 'one BIND line, strings in parentheses');
  assert.ok(line.startsWith(`${owner} IN TXT `), `the owner is ${owner}`);
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  for (const s of strings) assert.ok(Buffer.byteLength(s) <= 255, `a TXT string of ${Buffer.byteLength(s)} bytes`);
  return strings;
}

/** p= as the record must carry it, derived here from the private key file, not by the tool. */
function expectedP(key: KeyObject): string {
  const publicKey = createPublicKey(key);
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const x = publicKey.export({ format: 'jwk' }).x;
    assert.equal(typeof x, 'string');
    return Buffer.from(x as string, 'base64url').toString('base64');
  }
  return publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

function assertRecordMatches(strings: string[], pem: Buffer, k: 'rsa' | 'ed25519'): void {
  const record = parseKeyRecord(strings.join(''));
  assert.ok(typeof record !== 'string', `the joined record parses: ${String(record)}`);
  assert.equal(record.tags.get('v'), 'DKIM1');
  assert.equal(record.k, k);
  assert.equal(record.p, expectedP(createPrivateKey(pem)));
  if (k === 'ed25519') assert.equal(Buffer.from(record.p, 'base64').length, 32, 'RFC 8463: the raw 32-byte key');
}

const verdicts = (report: VerifierReport): [string, string, string][] =>
  report.signatures.map((s) => [s.type, s.algorithm, s.result]);

describe('dknewkey', () => {
  test('writes a 2048-bit PKCS#1 RSA key, mode 0640, and prints its record', async () => {
    const dir = tempDir();
    const result = await run(DKNEWKEY, ['default'], { cwd: dir });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
    const pem = readFileSync(join(dir, 'default'));
    assert.ok(pem.toString().startsWith('-----BEGIN RSA PRIVATE KEY-----\n'), 'PKCS#1, as openssl genrsa writes');
    assert.equal(statSync(join(dir, 'default')).mode & 0o777, 0o640);
    assert.equal(statSync(join(dir, 'default')).gid, KEY_GID, 'group qmail of the given group file when root');
    assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, 2048);
    const strings = txtStrings(result.stdout, 'default._domainkey');
    assert.equal(strings[0], 'v=DKIM1; k=rsa; ');
    assert.ok(strings.length >= 3, 'a 2048-bit key needs p= split over two strings');
    assertRecordMatches(strings, pem, 'rsa');
  });

  test('-t ed25519 writes a PKCS#8 key and p= is the raw public key', async () => {
    const dir = tempDir();
    const result = await run(DKNEWKEY, ['-t', 'ed25519', 'ed'], { cwd: dir });
    assert.equal(result.status, 0, result.stderr);
    const pem = readFileSync(join(dir, 'ed'));
    assert.ok(pem.toString().startsWith('-----BEGIN PRIVATE KEY-----\n'));
    assert.equal(createPrivateKey(pem).asymmetricKeyType, 'ed25519');
    assert.equal(statSync(join(dir, 'ed')).mode & 0o777, 0o640);
    assertRecordMatches(txtStrings(result.stdout, 'ed._domainkey'), pem, 'ed25519');
  });

  test('takes the size as dknewkey did (`dknewkey default 1024`) and with -b; 4096 bits still fit in 255-byte strings', async () => {
    const dir = tempDir();
    for (const [args, file, bits] of [[['old', '1024'], 'old', 1024], [['-b', '4096', 'big'], 'big', 4096]] as const) {
      const result = await run(DKNEWKEY, [...args], { cwd: dir });
      assert.equal(result.status, 0, result.stderr);
      const pem = readFileSync(join(dir, file));
      assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, bits);
      assertRecordMatches(txtStrings(result.stdout, `${file}._domainkey`), pem, 'rsa');
    }
  });

  test('warns below 1024 bits and refuses below 512, or a size for ed25519', async () => {
    const dir = tempDir();
    const weak = await run(DKNEWKEY, ['-b', '512', 'weak'], { cwd: dir });
    assert.equal(weak.status, 0);
    assert.match(weak.stderr, /warning: 512-bit RSA keys are weak/);
    assert.equal(createPrivateKey(readFileSync(join(dir, 'weak'))).asymmetricKeyDetails?.modulusLength, 512);
    for (const args of [['-b', '511', 'tiny'], ['-b', '8192', 'huge'], ['-t', 'ed25519', '-b', '2048', 'edbits'], ['-t', 'dsa', 'dsa']]) {
      const refused = await run(DKNEWKEY, args, { cwd: dir });
      assert.equal(refused.status, 100, args.join(' '));
      assert.equal(refused.stdout, '');
      assert.notEqual(refused.stderr, '');
      assert.equal(existsSync(join(dir, args[args.length - 1] ?? '')), false, 'no key file left behind');
    }
  });

  test('never overwrites an existing file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'default'), 'the key a published record belongs to\n');
    const result = await run(DKNEWKEY, ['default'], { cwd: dir });
    assert.equal(result.status, 100);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /exists/);
    assert.equal(readFileSync(join(dir, 'default'), 'utf8'), 'the key a published record belongs to\n');
  });

  test('refuses a file name that cannot be a selector', async () => {
    const dir = tempDir();
    const result = await run(DKNEWKEY, ['bad selector'], { cwd: dir });
    assert.equal(result.status, 100);
    assert.equal(existsSync(join(dir, 'bad selector')), false);
  });
});

describe('key files and the qmail group', () => {
  // The tests run as root, as an administrator does: root may give a file to any group id.
  test('root gives the key to group qmail when that group exists, mode 0640 whatever the umask', () => {
    const dir = tempDir();
    const groups = join(dir, 'group');
    writeFileSync(groups, 'root:x:0:\nqmail:x:4242:\n');
    const old = process.umask(0o077);
    try {
      const written = writeKeyFile(join(dir, 'key'), 'pem\n', { groupFile: groups, asRoot: true });
      assert.deepEqual(written, { ok: true, group: 'qmail' });
    } finally {
      process.umask(old);
    }
    const st = statSync(join(dir, 'key'));
    assert.equal(st.gid, 4242);
    assert.equal(st.mode & 0o777, 0o640);
  });

  test('without a qmail group the group is left alone', () => {
    const dir = tempDir();
    const groups = join(dir, 'group');
    writeFileSync(groups, 'root:x:0:\nmail:x:8:\n');
    assert.deepEqual(writeKeyFile(join(dir, 'key'), 'pem\n', { groupFile: groups, asRoot: true }), { ok: true });
    assert.equal(statSync(join(dir, 'key')).gid, process.getgid?.());
  });
});

describe('qmail-remote-dkim keygen --domain', () => {
  test('puts the key where control/dksign names it, creating the directory, and --print repeats the record', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'control'));
    writeFileSync(join(dir, 'control', 'dksign'), `${dir}/domainkeys/%/default\n${dir}/domainkeys/%/ed25519\n`);
    const made = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'Example.COM']);
    assert.equal(made.status, 0, made.stderr);
    const path = join(dir, 'domainkeys', 'example.com', 'default');
    assert.equal(statSync(path).mode & 0o777, 0o640);
    assert.equal(statSync(join(dir, 'domainkeys', 'example.com')).mode & 0o002, 0, 'the directory is not writable by others');
    assert.equal(statSync(path).gid, KEY_GID);
    assert.match(made.stderr, AS_ROOT ? /wrote rsa key to .*example\.com\/default \(mode 0640, group qmail\)/ : /wrote rsa key to .*example\.com\/default \(mode 0640\)/);
    assertRecordMatches(txtStrings(made.stdout, 'default._domainkey.example.com.'), readFileSync(path), 'rsa');

    const printed = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'example.com', '--print']);
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stdout, made.stdout);

    const second = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'example.com', '-t', 'ed25519', 'ed25519']);
    assert.equal(second.status, 0, second.stderr);
    assertRecordMatches(txtStrings(second.stdout, 'ed25519._domainkey.example.com.'), readFileSync(join(dir, 'domainkeys', 'example.com', 'ed25519')), 'ed25519');

    const again = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'example.com']);
    assert.equal(again.status, 100, 'the existing key stays');
  });

  test('a relative dksign line is taken from QMAILHOME, as qmail-remote takes it', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'control'));
    writeFileSync(join(dir, 'control', 'dksign'), 'control/domainkeys/%/sel1\n');
    const made = await run(MAIN, ['keygen', '--domain', 'example.org'], { env: { ...process.env, QMAILHOME: dir, CONTROLDIR: 'control' } });
    assert.equal(made.status, 0, made.stderr);
    assert.ok(existsSync(join(dir, 'control', 'domainkeys', 'example.org', 'sel1')));
  });

  test('a domain that is not a plain host name creates nothing', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'control'));
    writeFileSync(join(dir, 'control', 'dksign'), `${dir}/domainkeys/%/default\n`);
    for (const domain of ['../../etc', '*.example.com', '{a,b}', 'a b', '']) {
      const result = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', domain]);
      assert.equal(result.status, 100, domain);
      assert.equal(result.stdout, '');
    }
    assert.equal(existsSync(join(dir, 'domainkeys')), false);
  });

  test('names a selector dksign does not have, or no dksign at all: usage error', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'control'));
    const none = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'example.com']);
    assert.equal(none.status, 100);
    assert.match(none.stderr, /dksign names no key files/);
    writeFileSync(join(dir, 'control', 'dksign'), `${dir}/domainkeys/%/default\n`);
    const other = await run(MAIN, ['keygen', '--control', join(dir, 'control'), '--domain', 'example.com', 'nosuch']);
    assert.equal(other.status, 100);
    assert.match(other.stderr, /no line of .*dksign has the selector nosuch/);
  });
});

describe('keys made by keygen sign mail that Mail::DKIM and dkimpy verify', () => {
  let dir: string;
  let control: string;
  let dns: DnsServer;

  before(async () => {
    dir = tempDir();
    // Searchable by anyone, like /etc/domainkeys: the verifiers need nothing from here, but
    // the layout is the one the documentation recommends.
    chmodSync(dir, 0o755);
    control = join(dir, 'control');
    mkdirSync(control);
    writeFileSync(join(control, 'dksign'), `${dir}/domainkeys/%/rsa2048\n${dir}/domainkeys/%/ed\n`);
    const txt = [];
    for (const [selector, type] of [['rsa2048', 'rsa'], ['ed', 'ed25519']] as const) {
      const made = await run(MAIN, ['keygen', '--control', control, '--domain', DOMAIN, '-t', type, selector]);
      assert.equal(made.status, 0, made.stderr);
      // The strings exactly as printed: what an administrator pastes into the zone.
      txt.push({ name: `${selector}._domainkey.${DOMAIN}`, text: txtStrings(made.stdout, `${selector}._domainkey.${DOMAIN}.`) });
    }
    dns = await startDns({ txt });
  });
  after(() => dns?.stop());

  test('an RSA and an ed25519 key from keygen: both DKIM signatures and the DomainKey-Signature verify', async () => {
    const signed = await run(MAIN, ['sign', '--control', control], { input: MESSAGE });
    assert.equal(signed.status, 0, signed.stderr);
    assert.equal(signed.stderr, '');
    const wire = Buffer.from(signed.stdout, 'latin1');

    assert.deepEqual(verdicts(await verifyWithDkimpy(wire, dns.server)), [
      ['dkim', 'rsa-sha256', 'pass'],
      ['dkim', 'ed25519-sha256', 'pass'],
    ]);
    // Mail::DKIM in Debian 12 (1.20230212) has no ed25519-sha256 (only rsa-sha1 and rsa-sha256
    // in Mail/DKIM/Algorithm/), so it cannot check that signature and says so; the RSA DKIM
    // signature and the DomainKeys one must pass.
    const mailDkim = await verifyWithMailDkim(wire, dns.server);
    assert.deepEqual(verdicts(mailDkim), [
      ['dkim', 'rsa-sha256', 'pass'],
      ['dkim', 'ed25519-sha256', 'invalid'],
      ['dk', 'rsa-sha1', 'pass'],
    ]);
    assert.match(mailDkim.signatures[1]?.detail ?? '', /unsupported algorithm/);
  });
});
