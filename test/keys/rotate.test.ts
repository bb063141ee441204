// `qmail-remote-dkim keys rotate DOMAIN` against dnsmasq serving the old record only, then a
// wrong record, then the right one: the new key is made once and reused, nothing switches
// until the record is served exactly, and then control/dkimkeys signs DOMAIN with the new key
// and every other domain as before, the old key left in place.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeRsaKey } from '../helpers/keys.ts';
import { runNode } from '../helpers/run.ts';
import { loadSignConfig } from '../../src/signing/config.ts';
import { signMessage } from '../../src/signing/sign.ts';
import { bufferSource } from '../../src/mail/message.ts';

const CLI = fileURLToPath(new URL('../../bin/qmail-remote-dkim', import.meta.url));
const OLD = makeRsaKey();
const OTHER = makeRsaKey();
const servers: DnsServer[] = [];
const trees: string[] = [];
// The group a new key is given (qmail's, as root) comes from this file, never from this host's.
const ACCOUNTS = mkdtempSync(join(tmpdir(), 'qrd-rotate-accounts-'));
const GROUP = ['--group', join(ACCOUNTS, 'group')];
writeFileSync(GROUP[1] ?? '', 'root:x:0:\nqmail:x:4242:\n');
after(async () => {
  for (const server of servers) await server.stop();
  rmSync(ACCOUNTS, { recursive: true, force: true });
  for (const root of trees) rmSync(root, { recursive: true, force: true });
});

function tree(dkimkeys?: (keys: string) => string): { control: string; keys: string } {
  const root = mkdtempSync(join(tmpdir(), 'qrd-rotate-'));
  trees.push(root);
  const keys = join(root, 'keys');
  for (const domain of ['example.com', 'example.net']) {
    mkdirSync(join(keys, domain), { recursive: true });
    writeFileSync(join(keys, domain, 'default'), OLD.privateKeyPem, { mode: 0o640 });
  }
  const control = join(root, 'control');
  mkdirSync(control);
  writeFileSync(join(control, 'dksign'), `${keys}/%/default\n`);
  if (dkimkeys) writeFileSync(join(control, 'dkimkeys'), dkimkeys(keys));
  return { control, keys };
}

async function dnsWith(r1?: string): Promise<DnsServer> {
  const txt = [{ name: 'default._domainkey.example.com', text: OLD.txt }, ...(r1 ? [{ name: 'r1._domainkey.example.com', text: r1 }] : [])];
  const server = await startDns({ txt });
  servers.push(server);
  return server;
}

const rotate = (control: string, dns: DnsServer) =>
  runNode(CLI, ['keys', 'rotate', 'example.com', '--control', control, '--dns', dns.server, '--selector', 'r1', ...GROUP]);

/** The record the command printed for the new key: its p=, from the BIND lines. */
const printedKey = (stdout: string): string => (stdout.match(/"([^"]*)"/g) ?? []).map((s) => s.slice(1, -1)).join('').replace(/^.*p=/, '');

const selectorFor = (control: string, from: string): string[] => {
  const config = loadSignConfig(control);
  assert.ok(config.ok);
  const signed = signMessage(bufferSource(Buffer.from(`From: ${from}\n\nhi\n`)), { ...config.value, time: 1 });
  assert.ok(signed.ok);
  return signed.value.signatures.map((s) => `${s.type} ${s.d} ${s.s}`);
};

test('missing, then wrong, then served: one new key, switched only at the end, every other domain unchanged', async () => {
  const { control, keys } = tree();
  const missing = await rotate(control, await dnsWith());
  assert.equal(missing.status, 1, missing.stdout + missing.stderr);
  assert.match(missing.stdout, /^made the new key .*example\.com\/r1; publish:\nr1\._domainkey\.example\.com\. IN TXT/);
  assert.match(missing.stdout, /no TXT record at r1\._domainkey\.example\.com/);
  assert.match(missing.stdout, /not switched: run this again once r1\._domainkey\.example\.com is served/);
  assert.equal(existsSync(join(control, 'dkimkeys')), false);
  const key = printedKey(missing.stdout);
  assert.ok(key.length > 300, 'an RSA 2048 key');

  const again = await rotate(control, await dnsWith());
  assert.equal(again.status, 1);
  assert.match(again.stdout, /^kept the new key /, 'run again, the pending key is reused');
  assert.equal(printedKey(again.stdout), key);

  const wrong = await rotate(control, await dnsWith(OTHER.txt));
  assert.equal(wrong.status, 1);
  assert.match(wrong.stdout, /r1\._domainkey\.example\.com: p= is not the public key of this private key/);
  assert.equal(existsSync(join(control, 'dkimkeys')), false);
  assert.deepEqual(selectorFor(control, 'a@example.com'), ['dkim example.com default', 'domainkeys example.com default']);

  const served = await rotate(control, await dnsWith(`v=DKIM1; k=rsa; p=${key}`));
  assert.equal(served.status, 0, served.stdout);
  assert.match(served.stdout, /ok: 127\.0\.0\.1:\d+ serves r1\._domainkey\.example\.com/);
  assert.match(served.stdout, /switched example\.com to r1 in .*dkimkeys/);
  assert.match(served.stdout, /keep default\._domainkey\.example\.com published until \d{4}-\d\d-\d\d/);
  assert.equal(readFileSync(join(control, 'dkimkeys'), 'latin1').split('\n').slice(1).join('\n'),
    `example.com:${keys}/example.com/r1\n*:${keys}/%/default\n`);
  assert.deepEqual(selectorFor(control, 'a@example.com'), ['dkim example.com r1', 'domainkeys example.com r1']);
  assert.deepEqual(selectorFor(control, 'a@example.net'), ['dkim example.net default', 'domainkeys example.net default']);
  assert.ok(existsSync(join(keys, 'example.com', 'default')), 'the old key stays');
  assert.equal(existsSync(join(keys, 'example.com', '.rotate-default')), false, 'nothing pending');
});

test('with a table, only the domain\'s own lines change: comments, options and other lines stay', async () => {
  const { control, keys } = tree((k) => `# our keys\nexample.com:${k}/example.com/default:x=3600\nexample.net:${k}/%/default:dk=no\n`);
  const first = await rotate(control, await dnsWith());
  assert.equal(first.status, 1);
  const served = await rotate(control, await dnsWith(`v=DKIM1; k=rsa; p=${printedKey(first.stdout)}`));
  assert.equal(served.status, 0, served.stdout);
  assert.equal(readFileSync(join(control, 'dkimkeys'), 'latin1'),
    `# our keys\nexample.com:${keys}/example.com/r1:x=3600\nexample.net:${keys}/%/default:dk=no\n`);
});

test('a domain nothing signs, or a bad argument: no key made', async () => {
  const { control } = tree();
  const dns = await dnsWith();
  const none = await runNode(CLI, ['keys', 'rotate', 'nowhere', '--control', control, '--dns', dns.server, ...GROUP]);
  assert.equal(none.status, 1);
  assert.match(none.stdout, /no key signs nowhere now/);
  const bad = await runNode(CLI, ['keys', 'rotate', 'example.com', '--control', control, '--selector', '../x', ...GROUP]);
  assert.equal(bad.status, 100);
  assert.match(bad.stderr, /not a selector/);
});
