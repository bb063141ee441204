// The key audit (`qmail-remote-dkim keys`) on trees built here at test time: every planted
// problem is found and attached to the right key, a clean tree shows none, hostile names on disk
// neither crash the search nor widen it, and --dns checks each published record against a real
// DNS server. Users and groups come from passwd/group files written here, so the system's own
// accounts are never changed.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { runNode } from '../helpers/run.ts';
import { createPublicKey } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditKeys, matchTemplate, type AuditOptions, type AuditReport, type KeyEntry } from '../../src/keys/audit.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { makeEd25519Key, makeRsaKey, type TestKey } from '../helpers/keys.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
// Ids no account of this system needs to have: the files below give them their names.
const QMAIL_GID = 4242;
const QMAILR_UID = 4243;
const OTHER_GID = 4244;

const rsa = makeRsaKey();
const ed25519 = makeEd25519Key();

const cleanups: string[] = [];
after(() => {
  for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
});

interface Tree {
  readonly root: string;
  readonly keys: string;
  readonly passwd: string;
  readonly group: string;
  readonly control: string;
}

/** An empty key tree, searchable like /etc/domainkeys, with its own passwd and group files. */
function makeTree(keysDir = 'domainkeys'): Tree {
  const root = mkdtempSync(join(tmpdir(), 'qrd-audit-'));
  cleanups.push(root);
  chmodSync(root, 0o755);
  const keys = join(root, keysDir);
  mkdirSync(keys, { mode: 0o755 });
  const passwd = join(root, 'passwd');
  const group = join(root, 'group');
  // As qmail's INSTALL.ids makes them: qmailr's primary group is qmail.
  writeFileSync(passwd, `root:x:0:0:root:/root:/bin/sh\nqmailr:x:${QMAILR_UID}:${QMAIL_GID}::/var/qmail:/bin/false\n`);
  writeFileSync(group, `root:x:0:\nqmail:x:${QMAIL_GID}:\nother:x:${OTHER_GID}:\n`);
  const control = join(root, 'control');
  mkdirSync(control);
  writeFileSync(join(control, 'dksign'), `${keys}/%/default\n`);
  return { root, keys, passwd, group, control };
}

/** A key file as the documentation says: root:qmail 0640 in a 0755 directory. */
function plant(tree: Tree, domain: string, content: string | TestKey, options: { selector?: string; mode?: number; gid?: number; dirMode?: number } = {}): string {
  const dir = join(tree.keys, domain);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, options.dirMode ?? 0o755);
  const path = join(dir, options.selector ?? 'default');
  writeFileSync(path, typeof content === 'string' ? content : content.privateKeyPem);
  chmodSync(path, options.mode ?? 0o640);
  chownSync(path, 0, options.gid ?? QMAIL_GID);
  return path;
}

function options(tree: Tree, extra: Partial<AuditOptions> = {}): AuditOptions {
  return { templates: [`${tree.keys}/%/default`], qmailHome: tree.root, passwdFile: tree.passwd, groupFile: tree.group, ...extra };
}

const byDomain = (report: AuditReport, domain: string): KeyEntry => {
  const entry = report.keys.find((key) => key.domain === domain);
  assert.ok(entry, `a key for ${domain}`);
  return entry;
};
const codes = (entry: KeyEntry): string[] => entry.findings.map((f) => f.code).sort();

/** The command on a tree, with the tree's own accounts files: never the host's. */
const audit = (tree: Tree, args: string[] = []) =>
  runNode(MAIN, ['keys', '--control', tree.control, '--passwd', tree.passwd, '--group', tree.group, ...args]);

describe('a clean tree', () => {
  test('every key listed with its details, and nothing flagged', async () => {
    const tree = makeTree();
    plant(tree, 'example.com', rsa);
    plant(tree, 'example.net', ed25519);
    const report = await auditKeys(options(tree));
    assert.deepEqual(report.findings, []);
    assert.deepEqual(report.odd, []);
    assert.equal(report.problems, 0);
    assert.equal(report.warnings, 0);
    assert.deepEqual(
      report.keys.map((k) => [k.domain, k.selector, k.type, k.bits, k.owner, k.group, k.mode, k.findings.length]),
      [['example.com', 'default', 'rsa', 2048, 'root', 'qmail', '0640', 0], ['example.net', 'default', 'ed25519', 256, 'root', 'qmail', '0640', 0]],
    );
  });

  test('a key qmailr owns, mode 0400, is fine too', async () => {
    const tree = makeTree();
    const path = plant(tree, 'example.com', rsa, { mode: 0o400, gid: OTHER_GID });
    chownSync(path, QMAILR_UID, OTHER_GID);
    const report = await auditKeys(options(tree));
    assert.equal(report.problems, 0, JSON.stringify(report.keys[0]?.findings));
  });
});

describe('planted problems', () => {
  let report: AuditReport;
  before(async () => {
    const tree = makeTree();
    plant(tree, 'clean.example', rsa);
    plant(tree, 'world-readable.example', rsa, { mode: 0o644 });
    plant(tree, 'world-writable.example', rsa, { mode: 0o662 });
    plant(tree, 'wrong-group.example', rsa, { gid: OTHER_GID });
    plant(tree, 'owner-only.example', rsa, { mode: 0o600 });
    plant(tree, 'garbage.example', 'this is not a key\n');
    plant(tree, 'short.example', makeRsaKey(512));
    plant(tree, 'open-dir.example', rsa, { dirMode: 0o777 });
    plant(tree, 'closed-dir.example', rsa, { dirMode: 0o700 });
    mkdirSync(join(tree.keys, 'directory.example', 'default'), { recursive: true });
    report = await auditKeys(options(tree));
  });

  test('each problem is found on the key it was planted on, and only there', () => {
    const found = Object.fromEntries(report.keys.map((k) => [k.domain, codes(k)]));
    assert.deepEqual(found, {
      'clean.example': [],
      'closed-dir.example': ['qmailr-cannot-reach'],
      'directory.example': ['not-a-file'],
      'garbage.example': ['unparseable'],
      'open-dir.example': ['unsafe-directory'],
      'owner-only.example': ['qmailr-cannot-read'],
      'short.example': ['short-key'],
      'world-readable.example': ['other-readable'],
      'world-writable.example': ['other-writable'],
      'wrong-group.example': ['qmailr-cannot-read'],
    });
    assert.equal(report.problems, 9);
    assert.deepEqual(report.findings, []);
  });

  test('the findings say what is wrong without any key material', () => {
    const short = byDomain(report, 'short.example');
    assert.equal(short.bits, 512);
    assert.match(short.findings[0]?.message ?? '', /512-bit RSA/);
    assert.match(byDomain(report, 'wrong-group.example').findings[0]?.message ?? '', /user qmailr cannot read it \(root:other 0640\)/);
    assert.match(byDomain(report, 'open-dir.example').findings[0]?.message ?? '', /open-dir\.example is writable by others/);
    const text = JSON.stringify(report);
    assert.ok(!text.includes('PRIVATE KEY') && !text.includes(rsa.privateKeyPem.split('\n')[1] ?? '-'), 'no key bytes in the report');
  });
});

describe('who must read the keys', () => {
  test('no qmailr user: said once, and the qmail group is checked instead', async () => {
    const tree = makeTree();
    writeFileSync(tree.passwd, 'root:x:0:0:root:/root:/bin/sh\n');
    plant(tree, 'a.example', rsa);
    plant(tree, 'b.example', rsa, { gid: OTHER_GID });
    plant(tree, 'c.example', rsa, { gid: OTHER_GID });
    const report = await auditKeys(options(tree));
    assert.deepEqual(report.findings.map((f) => [f.severity, f.code]), [['warning', 'no-qmailr']]);
    assert.deepEqual(report.keys.map(codes), [[], ['qmailr-cannot-read'], ['qmailr-cannot-read']]);
    assert.match(report.keys[1]?.findings[0]?.message ?? '', /group qmail cannot read it/);
  });

  test('neither qmailr nor qmail: said once, and no key is flagged for it', async () => {
    const tree = makeTree();
    writeFileSync(tree.passwd, 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(tree.group, 'root:x:0:\n');
    plant(tree, 'a.example', rsa, { gid: OTHER_GID });
    plant(tree, 'b.example', rsa, { gid: OTHER_GID });
    const report = await auditKeys(options(tree));
    assert.deepEqual(report.findings.map((f) => f.code), ['no-qmailr']);
    assert.deepEqual(report.keys.map(codes), [[], []]);
    assert.equal(report.problems, 0);
    assert.equal(report.warnings, 1);
  });

  test('qmailr reads through a supplementary group listed in the group file', async () => {
    const tree = makeTree();
    writeFileSync(tree.group, `root:x:0:\nqmail:x:${QMAIL_GID}:\nother:x:${OTHER_GID}:qmailr\n`);
    plant(tree, 'a.example', rsa, { gid: OTHER_GID });
    assert.equal((await auditKeys(options(tree))).problems, 0);
  });
});

describe('hostile names on disk', () => {
  // The key root itself has glob characters: if they were not escaped, `keys[1]` would match
  // the sibling `keys1`, and its key would be listed.
  const HOSTILE = ['*', '**', '{a,b}', '{b,c}', '...', '..x', 'a..b', '.hidden', '[a]', '?', '!(a)', '@(a)', '-a', 'UPPER.example', 'a\\b', 'new\nline', 'example.com.'];
  let tree: Tree;
  let report: AuditReport;
  before(async () => {
    tree = makeTree('keys[1]');
    mkdirSync(join(tree.root, 'keys1'));
    for (const name of ['a', 'b', 'c']) plant(tree, name, rsa);
    for (const name of HOSTILE) plant(tree, name, rsa);
    // A sibling the unescaped pattern keys[1]/*/default would also match.
    mkdirSync(join(tree.root, 'keys1', 'evil.example'));
    writeFileSync(join(tree.root, 'keys1', 'evil.example', 'default'), rsa.privateKeyPem);
    report = await auditKeys(options(tree));
  });

  test('only real domain directories become keys, each once', () => {
    assert.deepEqual(report.keys.map((k) => k.domain), ['a', 'b', 'c']);
    assert.ok(report.keys.every((k) => k.path.startsWith(`${tree.keys}/`)), 'nothing outside the template');
  });

  test('every other name is an odd entry, not followed', () => {
    const odd = report.odd.map((o) => o.path.slice(tree.keys.length + 1, -'/default'.length)).sort();
    assert.deepEqual(odd, [...HOSTILE].sort());
    assert.ok(report.odd.every((o) => o.template === `${tree.keys}/%/default`));
    assert.equal(report.odd.find((o) => o.path.includes('UPPER'))?.reason, 'never used: keys are looked up as upper.example');
    assert.equal(report.problems, HOSTILE.length, 'each odd entry counts, nothing else');
  });

  test('the command line survives them too, and escapes control characters', async () => {
    const result = await audit(tree);
    assert.equal(result.status, 1);
    assert.ok(result.stdout.includes('new\\x0aline/default'), 'the newline is shown escaped');
    assert.match(result.stdout, /\n3 keys, 17 problems\n$/);
  });

  test('a path is accepted only with the same domain for every %, in lowercase', () => {
    const template = '/k/%/%.pem';
    assert.deepEqual(matchTemplate(template, '/k/example.com/example.com.pem'), { domain: 'example.com' });
    assert.equal(typeof matchTemplate(template, '/k/a.example/b.example.pem'), 'string');
    assert.equal(typeof matchTemplate('/k/%/default', '/k/Example.com/default'), 'string');
    assert.equal(typeof matchTemplate('/k/%/default', '/k/x/y/default'), 'string');
  });
});

describe('dksign lines', () => {
  test('a line without % is one key for every domain; a line that reaches nothing is a warning; a repeated line counts once', async () => {
    const tree = makeTree();
    plant(tree, 'example.com', rsa);
    writeFileSync(join(tree.root, 'everyone'), ed25519.privateKeyPem, { mode: 0o640 });
    chownSync(join(tree.root, 'everyone'), 0, QMAIL_GID);
    const report = await auditKeys(options(tree, {
      templates: [`${tree.keys}/%/default`, 'everyone', `${tree.keys}/%/nosuch`, `${tree.keys}/%/default`],
    }));
    assert.deepEqual(report.keys.map((k) => [k.domain, k.selector, k.type]), [['example.com', 'default', 'rsa'], [null, 'everyone', 'ed25519']]);
    assert.deepEqual(report.findings.map((f) => [f.severity, f.code, f.message]), [
      ['warning', 'no-keys', `no key files for the dksign line ${tree.keys}/%/nosuch`],
    ]);
    assert.equal(report.problems, 0);
  });
});

describe('the command', () => {
  test('--json on a clean tree: exit 0, one JSON document, nothing on stderr', async () => {
    const tree = makeTree();
    plant(tree, 'example.com', rsa);
    const result = await audit(tree, ['--json']);
    assert.equal(result.status, 0, result.stdout);
    assert.equal(result.stderr, '');
    const json = JSON.parse(result.stdout) as { keys: KeyEntry[]; summary: { keys: number; problems: number } };
    assert.equal(json.summary.keys, 1);
    assert.equal(json.summary.problems, 0);
    assert.equal(json.keys[0]?.domain, 'example.com');
  });

  test('a problem makes the exit status 1 and the summary says so', async () => {
    const tree = makeTree();
    plant(tree, 'example.com', rsa);
    plant(tree, 'example.net', rsa, { mode: 0o644 });
    plant(tree, 'example.org', makeRsaKey(512));
    const result = await audit(tree);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /\n3 keys, 2 problems\n$/);
    assert.match(result.stdout, /^example\.net default rsa 2048 root:qmail 0644 .*\n {2}problem: readable by others/m);
  });

  test('--passwd and --group name the accounts files: without qmailr in them, the warning names the file', async () => {
    const tree = makeTree();
    writeFileSync(tree.passwd, 'root:x:0:0:root:/root:/bin/sh\n');
    plant(tree, 'example.com', rsa);
    const result = await audit(tree);
    assert.equal(result.status, 0, result.stdout);
    assert.equal(result.stdout, [
      `warning: no qmailr user in ${tree.passwd}: checking that group qmail can read the keys instead`,
      `example.com default rsa 2048 root:qmail 0640 ${tree.keys}/example.com/default`,
      '1 key, 0 problems, 1 warning',
      '',
    ].join('\n'));
  });

  test('a bad --dns server is a usage error', async () => {
    const tree = makeTree();
    const result = await audit(tree, ['--dns', 'not a server']);
    assert.equal(result.status, 100);
    assert.equal(result.stdout, '');
  });
});

describe('--dns against a real DNS server', () => {
  const other = makeRsaKey();
  let dns: DnsServer;
  let tree: Tree;
  before(async () => {
    tree = makeTree();
    const domains: [string, TestKey, string | null][] = [
      ['match.test', rsa, rsa.txt],
      ['ed.test', ed25519, ed25519.txt],
      ['mismatch.test', rsa, other.txt],
      ['missing.test', rsa, null],
      ['testing.test', rsa, `v=DKIM1; t=y; k=rsa; p=${rsa.txt.split('p=')[1]}`],
      ['revoked.test', rsa, 'v=DKIM1; k=rsa; p='],
      ['wrong-k.test', rsa, `v=DKIM1; k=ed25519; p=${rsa.txt.split('p=')[1]}`],
      ['garbled.test', rsa, 'k=rsa; v=DKIM1; p=abc'],
      ['spki-ed.test', ed25519, `v=DKIM1; k=ed25519; p=${spkiBase64(ed25519)}`],
    ];
    for (const [domain, key] of domains) plant(tree, domain, key);
    dns = await startDns({
      txt: domains.flatMap(([domain, , text]) => (text === null ? [] : [{ name: `default._domainkey.${domain}`, text }])),
    });
  });
  after(() => dns?.stop());

  test('each record is checked against its key', async () => {
    const report = await auditKeys(options(tree, { dnsServer: dns.server }));
    const found = Object.fromEntries(report.keys.map((k) => [k.domain, k.findings.map((f) => `${f.severity}:${f.code}`)]));
    assert.deepEqual(found, {
      'ed.test': [],
      'garbled.test': ['problem:dns-syntax'],
      'match.test': [],
      'mismatch.test': ['problem:dns-mismatch'],
      'missing.test': ['problem:dns-missing'],
      'revoked.test': ['problem:dns-revoked'],
      'spki-ed.test': ['problem:dns-mismatch'],
      'testing.test': ['warning:dns-testing'],
      'wrong-k.test': ['problem:dns-key-type'],
    });
    assert.equal(byDomain(report, 'match.test').dns?.name, 'default._domainkey.match.test');
    assert.equal(byDomain(report, 'match.test').dns?.record, rsa.txt, 'the strings of the 2048-bit record are joined');
    assert.match(byDomain(report, 'spki-ed.test').findings[0]?.message ?? '', /raw 32-byte key/);
  });

  test('through the command: exit 1, and the good keys say they are published', async () => {
    const result = await audit(tree, ['--dns', dns.server]);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^match\.test default rsa 2048 .*\n {2}ok: default\._domainkey\.match\.test publishes this key$/m);
    assert.match(result.stdout, /\n9 keys, 6 problems, 1 warning\n$/);
  });

  test('only the matching records: exit 0', async () => {
    const clean = makeTree();
    plant(clean, 'match.test', rsa);
    plant(clean, 'ed.test', ed25519);
    const result = await audit(clean, ['--dns', dns.server, '--json']);
    assert.equal(result.status, 0, result.stdout);
    const json = JSON.parse(result.stdout) as { keys: KeyEntry[] };
    assert.deepEqual(json.keys.map((k) => [k.domain, k.dns?.name]), [['ed.test', 'default._domainkey.ed.test'], ['match.test', 'default._domainkey.match.test']]);
  });
});

/** The mistake RFC 8463 warns about: an Ed25519 SPKI structure in p= instead of the raw key. */
function spkiBase64(key: TestKey): string {
  return createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' }).toString('base64');
}
