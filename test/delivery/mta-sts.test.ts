// MTA-STS policies (src/delivery/tls/mta-sts.ts) against a real policy host: HTTPS on port 443
// of a loopback address with a certificate from a test CA that the process trusts through
// SSL_CERT_FILE, found through dnsmasq. What is counted is the requests the host receives.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateMx } from 'mailauth/lib/mta-sts.js';
import { lookupPolicy, mxAllowed, stsDomain, type StsPolicy } from '../../src/delivery/tls/mta-sts.ts';
import { makeTestCa, type TestCa } from '../helpers/ca.ts';
import { startDns, type DnsServer } from '../helpers/dnsmasq.ts';
import { enforcePolicy, policyHostIp, startPolicyHost, type PolicyHost } from '../helpers/policy-host.ts';

const DOMAIN = 'sts.test';
let ca: TestCa;
let host: PolicyHost;
/** Temporary directories to remove once the policy host is down. */
const scratch: string[] = [];

before(async () => {
  ca = makeTestCa();
  process.env.SSL_CERT_FILE = ca.certFile;
  process.env.SSL_CERT_DIR = mkdtempSync(join(tmpdir(), 'no-ca-dir-'));
  scratch.push(process.env.SSL_CERT_DIR);
  host = await startPolicyHost(ca.issue({ dns: [`mta-sts.${DOMAIN}`] }), policyHostIp(), enforcePolicy(['mx.sts.test', '*.mx.sts.test']));
});

after(async () => {
  await host.close();
  ca.cleanup();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

async function withDns<T>(id: string | null, body: (dns: DnsServer) => Promise<T>): Promise<T> {
  const dns = await startDns({
    a: [{ name: `mta-sts.${DOMAIN}`, ip: host.ip }],
    txt: id === null ? [] : [{ name: `_mta-sts.${DOMAIN}`, text: `v=STSv1; id=${id}` }],
    zones: [DOMAIN],
  });
  try {
    return await body(dns);
  } finally {
    await dns.stop();
  }
}

const cacheDir = (): string => {
  const root = mkdtempSync(join(tmpdir(), 'qrd-sts-'));
  scratch.push(root);
  const dir = join(root, 'mta-sts');
  mkdirSync(dir, { mode: 0o700 });
  return dir;
};
const options = (dns: DnsServer, dir: string | null) => ({ cacheDir: dir, resolver: dns.resolver(), timeoutMs: 5000 });

test('a policy is fetched once, cached, and then used without a fetch while its id stands', async () => {
  const dir = cacheDir();
  const before = host.fetches();
  await withDns('20260101', async (dns) => {
    const first = await lookupPolicy(DOMAIN, options(dns, dir));
    assert.equal(first.source, 'fetched');
    assert.equal(first.policy?.mode, 'enforce');
    assert.deepEqual(first.policy?.mx, ['mx.sts.test', '*.mx.sts.test']);
    const second = await lookupPolicy(DOMAIN.toUpperCase(), options(dns, dir));
    assert.equal(second.source, 'cached');
    assert.deepEqual(second.policy, first.policy);
  });
  assert.equal(host.fetches() - before, 1);
  assert.deepEqual(readdirSync(dir), [`${DOMAIN}.json`]);
});

test('a changed TXT id fetches again; an expired policy too', async () => {
  const dir = cacheDir();
  const start = host.fetches();
  await withDns('1', async (dns) => void (await lookupPolicy(DOMAIN, options(dns, dir))));
  await withDns('2', async (dns) => assert.equal((await lookupPolicy(DOMAIN, options(dns, dir))).source, 'fetched'));
  assert.equal(host.fetches() - start, 2);
  const cached = JSON.parse(readFileSync(join(dir, `${DOMAIN}.json`), 'utf8')) as StsPolicy;
  writeFileSync(join(dir, `${DOMAIN}.json`), JSON.stringify({ ...cached, expires: Date.now() - 1000 }));
  await withDns('2', async (dns) => assert.equal((await lookupPolicy(DOMAIN, options(dns, dir))).source, 'fetched'));
  assert.equal(host.fetches() - start, 3);
});

test('no TXT record: no policy and no fetch, unless a cached policy has not expired', async () => {
  const start = host.fetches();
  await withDns(null, async (dns) => assert.deepEqual(await lookupPolicy(DOMAIN, options(dns, cacheDir())), { policy: null, source: 'none' }));
  const dir = cacheDir();
  await withDns('7', async (dns) => void (await lookupPolicy(DOMAIN, options(dns, dir))));
  await withDns(null, async (dns) => {
    const kept = await lookupPolicy(DOMAIN, options(dns, dir));
    assert.equal(kept.source, 'cached');
    assert.equal(kept.policy?.mode, 'enforce');
  });
  assert.equal(host.fetches() - start, 1);
});

test('a failed fetch: no policy without a cache; the cached enforce policy with one', async () => {
  const dir = cacheDir();
  await withDns('8', async (dns) => void (await lookupPolicy(DOMAIN, options(dns, dir))));
  host.serve({ status: 301, location: 'https://elsewhere.test/' }); // redirects are not followed
  try {
    await withDns('9', async (dns) => {
      const none = await lookupPolicy(DOMAIN, options(dns, null));
      assert.equal(none.policy, null);
      assert.equal(none.failure, 'sts-policy-fetch-error');
      const kept = await lookupPolicy(DOMAIN, options(dns, dir));
      assert.equal(kept.source, 'errored');
      assert.equal(kept.policy?.mode, 'enforce');
    });
  } finally {
    host.serve(enforcePolicy(['mx.sts.test', '*.mx.sts.test']));
  }
});

test('a policy host whose certificate does not verify gives no policy', async () => {
  const wrongIp = policyHostIp();
  const wrong = await startPolicyHost(ca.issue({ dns: ['mta-sts.other.test'] }), wrongIp, enforcePolicy(['mx.sts.test']));
  const dns = await startDns({ a: [{ name: `mta-sts.${DOMAIN}`, ip: wrongIp }], txt: [{ name: `_mta-sts.${DOMAIN}`, text: 'v=STSv1; id=1' }] });
  try {
    const found = await lookupPolicy(DOMAIN, options(dns, null));
    assert.equal(found.policy, null);
    assert.equal(found.source, 'errored');
  } finally {
    await dns.stop();
    await wrong.close();
  }
});

test('20 lookups at once share one fetch through the cache directory', async () => {
  const dir = cacheDir();
  const start = host.fetches();
  await withDns('20', async (dns) => {
    const all = await Promise.all(Array.from({ length: 20 }, () => lookupPolicy(DOMAIN, options(dns, dir))));
    assert.ok(all.every((one) => one.policy?.mode === 'enforce'));
  });
  assert.equal(host.fetches() - start, 1);
  assert.deepEqual(readdirSync(dir), [`${DOMAIN}.json`]);
});

test('a cache file that is not a policy is ignored, and a domain that is no file name is never a path', async () => {
  const dir = cacheDir();
  writeFileSync(join(dir, `${DOMAIN}.json`), JSON.stringify({ id: '20', mode: 'enforce', mx: ['../../x'], expires: Date.now() + 1e6, maxAge: 1 }));
  await withDns('20', async (dns) => assert.equal((await lookupPolicy(DOMAIN, options(dns, dir))).source, 'fetched'));
  for (const bad of ['../etc', 'a/b.test', '.test', 'x', '', 'a..b', `${'a'.repeat(64)}.test`]) assert.equal(stsDomain(bad), null, bad);
  assert.equal(stsDomain('Bücher.Example.'), 'xn--bcher-kva.example');
});

test('mxAllowed() matches the mx patterns exactly as mailauth validateMx() does', () => {
  const policy: StsPolicy = { id: '1', mode: 'enforce', mx: ['mx.example.com', '*.mail.example.com'], expires: Date.now() + 1e6, maxAge: 1 };
  const hosts = ['mx.example.com', 'MX.Example.COM.', 'a.mail.example.com', 'a.b.mail.example.com', 'mail.example.com',
    'xmail.example.com', 'mx.example.com.evil', '*.mail.example.com', '', 'other.example.com', 'x.mail.example.com.'];
  for (const mx of hosts) assert.equal(mxAllowed(mx, policy), validateMx(mx, { mode: policy.mode, mx: [...policy.mx] }).valid, mx);
});
