// src/delivery/route.ts: smtproutes parsing and lookup, IP literals, and DNS answers from a real
// dnsmasq on 127.0.0.1 (docs/qmail-remote.md §5).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import {
  askableSuffix,
  defaultLocalAddresses,
  dnsName,
  routingResolver,
  findRoute,
  orderMx,
  parseIpLiteral,
  parseSmtproutes,
  resolveDestination,
  type Address,
  type DnsLike,
  type Destination,
} from '../../src/delivery/route.ts';
import type { Result } from '../../src/common/failures.ts';
import { splitText, startDns, type DnsServer } from '../helpers/dnsmasq.ts';

const NO_ROUTES = new Map();

// For cases that must not touch DNS at all.
const noDns: DnsLike = {
  resolveMx: () => assert.fail('MX query'),
  resolve4: () => assert.fail('A query'),
  resolve6: () => assert.fail('AAAA query'),
};

function value(result: Result<Destination>): Destination {
  if (!result.ok) assert.fail(`expected a destination, got ${result.error.code}: ${result.error.text}`);
  return result.value;
}

function failureOf(result: Result<Destination>): { letter: string; code: string; text: string; cause?: string } {
  if (result.ok) assert.fail(`expected a failure, got ${JSON.stringify(result.value)}`);
  const { letter, code, text, cause } = result.error;
  return { letter, code, text, ...(cause === undefined ? {} : { cause }) };
}

const ips = (destination: Destination): string[] => destination.addresses.map((a) => a.ip);
const summary = (destination: Destination) => destination.addresses.map(({ ip, pref, name }) => ({ ip, pref, name }));

describe('parseSmtproutes', () => {
  it('reads the four line forms of qmail-remote(8)', () => {
    const routes = parseSmtproutes([
      'example.com:relay.example.net',
      'port.example:relay.example.net:2525',
      'mx.example:',
      ':default.example.net',
    ]);
    assert.deepEqual(routes.get('example.com'), { relay: 'relay.example.net', port: 25 });
    assert.deepEqual(routes.get('port.example'), { relay: 'relay.example.net', port: 2525 });
    assert.deepEqual(routes.get('mx.example'), { relay: '', port: 25 });
    assert.deepEqual(routes.get(''), { relay: 'default.example.net', port: 25 });
    assert.equal(routes.size, 4);
  });

  it('reads the AUTH form: user as written, the rest of the line is the password', () => {
    const routes = parseSmtproutes([
      'auth.example:smarthost.example:587 alice s3cret',
      'plain.example:smarthost.example -bob pass with spaces',
    ]);
    assert.deepEqual(routes.get('auth.example'), {
      relay: 'smarthost.example',
      port: 587,
      auth: { user: 'alice', pass: 's3cret' },
    });
    assert.deepEqual(routes.get('plain.example'), {
      relay: 'smarthost.example',
      port: 25,
      auth: { user: '-bob', pass: 'pass with spaces' },
    });
  });

  it('lowercases keys, keeps the last duplicate, skips comments, blanks and lines without a colon', () => {
    const routes = parseSmtproutes([
      '# a comment: with a colon',
      '',
      'Example.COM:first.example',
      'no colon here',
      'example.com:second.example:26   \t',
    ]);
    assert.deepEqual([...routes.keys()], ['example.com']);
    assert.deepEqual(routes.get('example.com'), { relay: 'second.example', port: 26 });
  });

  it('accepts IP literals as relays, bracketed IPv6 with a port too', () => {
    const routes = parseSmtproutes([
      'a.example:[192.0.2.1]:26',
      'b.example:192.0.2.2',
      'c.example:[IPv6:2001:db8::1]:2525',
      'd.example:[2001:db8::2]',
    ]);
    assert.deepEqual(routes.get('a.example'), { relay: '[192.0.2.1]', port: 26 });
    assert.deepEqual(routes.get('b.example'), { relay: '192.0.2.2', port: 25 });
    assert.deepEqual(routes.get('c.example'), { relay: '[IPv6:2001:db8::1]', port: 2525 });
    assert.deepEqual(routes.get('d.example'), { relay: '[2001:db8::2]', port: 25 });
  });

  it('reads an empty relay with a port as "MX lookup, that port"', () => {
    assert.deepEqual(parseSmtproutes(['x.example::2526']).get('x.example'), { relay: '', port: 2526 });
  });

  it('marks malformed entries instead of guessing a port', () => {
    const routes = parseSmtproutes([
      'a.example:relay.example:',
      'b.example:relay.example:smtp',
      'c.example:relay.example:70000',
      'd.example:relay.example:0',
      'e.example:relay.example:25 useronly',
      'f.example:[192.0.2.1',
      'g.example:relay.example:25x',
    ]);
    for (const [key, route] of routes) assert.equal(typeof route.problem, 'string', key);
    assert.equal(routes.size, 7);
  });
});

describe('findRoute', () => {
  const all = ['a.b.example:exact', '.b.example:dot-b', '.example:dot-example', ':default'];

  it('tries host, then each .suffix, then the empty key, longest first', () => {
    const relayFor = (lines: string[], host: string) => findRoute(parseSmtproutes(lines), host)?.relay;
    assert.equal(relayFor(all, 'a.b.example'), 'exact');
    assert.equal(relayFor(all.slice(1), 'a.b.example'), 'dot-b');
    assert.equal(relayFor(all.slice(2), 'a.b.example'), 'dot-example');
    assert.equal(relayFor(all.slice(3), 'a.b.example'), 'default');
    assert.equal(relayFor([], 'a.b.example'), undefined);
    // The key order in the file does not matter.
    assert.equal(relayFor([...all].reverse(), 'a.b.example'), 'exact');
  });

  it('matches case-insensitively and only at label boundaries', () => {
    const routes = parseSmtproutes(['b.example:no-dot', 'ple:partial']);
    assert.equal(findRoute(routes, 'A.B.EXAMPLE'), undefined);
    assert.equal(findRoute(routes, 'B.Example')?.relay, 'no-dot');
  });

  it('stops at the first key present even if its relay is empty', () => {
    const routes = parseSmtproutes([':catchall.example', '.af.mil:']);
    assert.deepEqual(findRoute(routes, 'x.af.mil'), { relay: '', port: 25 });
    assert.equal(findRoute(routes, 'af.mil')?.relay, 'catchall.example');
  });

  it('looks IP literal hosts up like any other host', () => {
    const routes = parseSmtproutes(['[192.0.2.1]:relay.example']);
    assert.equal(findRoute(routes, '[192.0.2.1]')?.relay, 'relay.example');
  });
});

describe('parseIpLiteral', () => {
  it('knows IPv4 and IPv6 literals, bracketed or not', () => {
    assert.deepEqual(parseIpLiteral('192.0.2.1'), { ip: '192.0.2.1', family: 4 });
    assert.deepEqual(parseIpLiteral('[192.0.2.1]'), { ip: '192.0.2.1', family: 4 });
    assert.deepEqual(parseIpLiteral('[IPv6:2001:db8::1]'), { ip: '2001:db8::1', family: 6 });
    assert.deepEqual(parseIpLiteral('[ipv6:2001:db8::1]'), { ip: '2001:db8::1', family: 6 });
    assert.deepEqual(parseIpLiteral('2001:db8::1'), { ip: '2001:db8::1', family: 6 });
  });

  it('rejects names and near misses', () => {
    for (const text of ['example.com', '192.0.2', '[192.0.2.1', '[IPv6:192.0.2.1]', 'fe80::1%eth0', '', '[]']) {
      assert.equal(parseIpLiteral(text), undefined, text);
    }
  });
});

describe('orderMx', () => {
  it('sorts by preference and orders equal preferences by the random draws', () => {
    const records = [
      { exchange: 'b', priority: 10 },
      { exchange: 'last', priority: 20 },
      { exchange: 'c', priority: 10 },
      { exchange: 'first', priority: 5 },
      { exchange: 'a', priority: 10 },
    ];
    const draws = (values: number[]) => () => values.shift() ?? assert.fail('too many draws');
    const names = (list: { exchange: string }[]) => list.map((r) => r.exchange);
    assert.deepEqual(names(orderMx(records, draws([0.2, 0, 0.9, 0, 0.5]))), ['first', 'b', 'a', 'c', 'last']);
    assert.deepEqual(names(orderMx(records, draws([0.9, 0, 0.1, 0, 0.5]))), ['first', 'c', 'a', 'b', 'last']);
  });
});

describe('resolveDestination without DNS', () => {
  const none = { resolver: noDns, localAddresses: [] };

  it('uses an IPv4 literal host directly, bracketed or not', async () => {
    for (const host of ['192.0.2.1', '[192.0.2.1]']) {
      const destination = value(await resolveDestination(host, NO_ROUTES, none));
      assert.deepEqual(destination, {
        host,
        port: 25,
        addresses: [{ ip: '192.0.2.1', family: 4, pref: 0, name: host }],
        relayed: false,
      });
    }
  });

  it('uses an IPv6 literal host directly, tagged or bare', async () => {
    for (const host of ['[IPv6:2001:db8::1]', '2001:db8::1']) {
      const destination = value(await resolveDestination(host, NO_ROUTES, none));
      assert.deepEqual(destination.addresses, [{ ip: '2001:db8::1', family: 6, pref: 0, name: host }]);
    }
  });

  it('refuses a literal that is one of our own addresses (#5.4.6)', async () => {
    const result = await resolveDestination('[192.0.2.9]', NO_ROUTES, { resolver: noDns, localAddresses: ['192.0.2.9'] });
    assert.deepEqual(failureOf(result), {
      letter: 'D',
      code: 'MX_IS_ME',
      text:
        "Sorry. Although I'm listed as a best-preference MX or A for that host,\n" +
        "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n",
    });
    const zero = await resolveDestination('[0.0.0.0]', NO_ROUTES, { resolver: noDns });
    assert.equal(failureOf(zero).code, 'MX_IS_ME');
    const loopback = await resolveDestination('[127.0.0.1]', NO_ROUTES, { resolver: noDns });
    assert.equal(failureOf(loopback).code, 'MX_IS_ME');
  });

  it('counts 0.0.0.0, :: and every interface address as local by default', () => {
    const local = defaultLocalAddresses();
    const interfaces = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    assert.ok(interfaces.includes('127.0.0.1'));
    assert.deepEqual(local, ['0.0.0.0', '::', ...interfaces]);
  });

  it('uses a literal relay even when it is a local address, with its port', async () => {
    const routes = parseSmtproutes(['.example:[127.0.0.1]:2525']);
    const destination = value(await resolveDestination('mail.example', routes, { resolver: noDns }));
    assert.deepEqual(destination, {
      host: '[127.0.0.1]',
      port: 2525,
      addresses: [{ ip: '127.0.0.1', family: 4, pref: 0, name: '[127.0.0.1]' }],
      relayed: true,
    });
  });

  it('hands the AUTH credentials of the route over', async () => {
    const routes = parseSmtproutes([':[IPv6:::1]:587 -user pass word']);
    const destination = value(await resolveDestination('elsewhere.example', routes, { resolver: noDns }));
    assert.deepEqual(destination.auth, { user: '-user', pass: 'pass word' });
    assert.deepEqual(ips(destination), ['::1']);
    assert.equal(destination.port, 587);
  });

  it('defers a delivery whose route is malformed (Z, control files)', async () => {
    const routes = parseSmtproutes(['bad.example:relay.example:', 'good.example:[192.0.2.1]']);
    const bad = failureOf(await resolveDestination('bad.example', routes, none));
    assert.deepEqual([bad.letter, bad.code], ['Z', 'READ_CONTROL']);
    assert.ok((await resolveDestination('good.example', routes, none)).ok);
  });

  it('bounces a name c-ares will not ask about only once DNS has answered for its nearest askable name', async () => {
    const error = (code: string) => Promise.reject(Object.assign(new Error(code), { code }));
    const asked: string[] = [];
    const answering: DnsLike = {
      resolveMx: (name) => {
        asked.push(name);
        return name.includes(' ') || name.includes('..') ? error('EBADNAME') : error('ENODATA');
      },
      resolve4: () => error('EBADNAME'),
      resolve6: () => error('EBADNAME'),
    };
    const bounced = failureOf(await resolveDestination('a..b.example', NO_ROUTES, { resolver: answering }));
    assert.deepEqual([bounced.letter, bounced.code], ['D', 'NO_SUCH_HOST']);
    assert.deepEqual(asked, ['a..b.example', 'b.example']);
    const spaced = failureOf(await resolveDestination('foo bar', NO_ROUTES, { resolver: answering }));
    assert.deepEqual([spaced.letter, spaced.text], ['D', "Sorry, I couldn't find any host named foo?bar. (#5.1.2)\n"]);

    const unreachable: DnsLike = { ...answering, resolveMx: (name) => (name.includes(' ') ? error('EBADNAME') : error('ETIMEOUT')) };
    const deferred = failureOf(await resolveDestination('foo bar', NO_ROUTES, { resolver: unreachable }));
    assert.deepEqual([deferred.letter, deferred.code], ['Z', 'TEMP_DNS']);
    assert.match(deferred.cause ?? '', /ETIMEOUT/);
  });

  it('asks DNS about an empty host like any other: Z while it cannot be reached', async () => {
    const timeout = () => Promise.reject(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }));
    const down: DnsLike = { resolveMx: timeout, resolve4: timeout, resolve6: timeout };
    const empty = failureOf(await resolveDestination('', NO_ROUTES, { resolver: down }));
    assert.deepEqual([empty.letter, empty.code], ['Z', 'TEMP_DNS']);
  });

  it('finds the nearest askable name of a malformed host', () => {
    assert.equal(askableSuffix('foo bar.example.net'), 'example.net');
    assert.equal(askableSuffix('a..b'), 'b');
    assert.equal(askableSuffix('foo bar'), '.');
    assert.equal(askableSuffix('x.'), '.');
    assert.equal(askableSuffix(`${'x'.repeat(64)}.net`), 'net');
  });

  it('asks DNS about the host bytes as UTF-8 text when they are UTF-8, and quotes them as bytes', async () => {
    assert.equal(dnsName('caf\xc3\xa9.example'), 'caf\u00e9.example');
    assert.equal(dnsName('caf\xe9.example'), 'caf\xe9.example');
    const nx: DnsLike = {
      resolveMx: () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })),
      resolve4: () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })),
      resolve6: () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })),
    };
    const bounced = failureOf(await resolveDestination('caf\xc3\xa9.example', NO_ROUTES, { resolver: nx }));
    assert.equal(bounced.text, "Sorry, I couldn't find any host named caf??.example. (#5.1.2)\n");
  });
});

describe('resolveDestination against dnsmasq', () => {
  let dns: DnsServer;
  let resolver: DnsLike;
  const notMe = { localAddresses: [] as string[] };

  before(async () => {
    dns = await startDns({
      mx: [
        { name: 'order.test', host: 'mx20.order.test', pref: 20 },
        { name: 'order.test', host: 'mx30.order.test', pref: 30 },
        { name: 'order.test', host: 'mx10.order.test', pref: 10 },
        { name: 'tie.test', host: 'a.tie.test', pref: 10 },
        { name: 'tie.test', host: 'last.tie.test', pref: 20 },
        { name: 'tie.test', host: 'b.tie.test', pref: 10 },
        { name: 'tie.test', host: 'first.tie.test', pref: 5 },
        { name: 'ghost.test', host: 'nowhere.ghost.test', pref: 10 },
        { name: 'halfsoft.test', host: 'mx.sf.test', pref: 10 },
        { name: 'halfsoft.test', host: 'good.halfsoft.test', pref: 20 },
        { name: 'allsoft.test', host: 'mx.sf.test', pref: 10 },
        { name: 'allsoft.test', host: 'nowhere.allsoft.test', pref: 20 },
        { name: 'literal-mx.test', host: '192.0.2.77', pref: 10 },
        { name: 'dup.test', host: 'two.dup.test', pref: 20 },
        { name: 'dup.test', host: 'one.dup.test', pref: 10 },
        { name: 'nulldot.test', host: '.', pref: 0 },
        { name: 'nullplus.test', host: '.', pref: 0 },
        { name: 'nullplus.test', host: 'good.halfsoft.test', pref: 10 },
        { name: 'me.test', host: 'mx1.me.test', pref: 10 },
        { name: 'me.test', host: 'mx2.me.test', pref: 20 },
        { name: 'me.test', host: 'mx3.me.test', pref: 30 },
        { name: 'relay.test', host: 'mx10.order.test', pref: 10 },
      ],
      a: [
        { name: 'mx10.order.test', ip: '192.0.2.10' },
        { name: 'mx20.order.test', ip: '192.0.2.20' },
        { name: 'a.tie.test', ip: '192.0.2.1' },
        { name: 'b.tie.test', ip: '192.0.2.2' },
        { name: 'first.tie.test', ip: '192.0.2.5' },
        { name: 'last.tie.test', ip: '192.0.2.30' },
        { name: 'plain.test', ip: '192.0.2.40' },
        { name: 'good.halfsoft.test', ip: '192.0.2.50' },
        { name: 'one.dup.test', ip: '192.0.2.60' },
        { name: 'two.dup.test', ip: '192.0.2.60' },
        { name: 'two.dup.test', ip: '192.0.2.61' },
        { name: 'mx1.me.test', ip: '192.0.2.81' },
        { name: 'mx2.me.test', ip: '192.0.2.82' },
        { name: 'mx3.me.test', ip: '192.0.2.83' },
        { name: 'relay.test', ip: '192.0.2.99' },
      ],
      aaaa: [
        { name: 'mx10.order.test', ip: '2001:db8::10' },
        { name: 'mx30.order.test', ip: '2001:db8::30' },
        { name: 'six.test', ip: '2001:db8::6' },
        { name: 'mx1.me.test', ip: '2001:db8::81' },
      ],
      txt: [{ name: 'txt-only.test', text: 'v=spf1 -all' }],
      nullMx: ['null.test'],
      servfail: ['sf.test'],
      timeout: ['to.test'],
    });
    resolver = dns.resolver();
  });

  after(async () => {
    await dns?.stop();
  });

  it('orders MX hosts by preference, IPv4 before IPv6 within one host', async () => {
    const destination = value(await resolveDestination('order.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(summary(destination), [
      { ip: '192.0.2.10', pref: 10, name: 'mx10.order.test' },
      { ip: '2001:db8::10', pref: 10, name: 'mx10.order.test' },
      { ip: '192.0.2.20', pref: 20, name: 'mx20.order.test' },
      { ip: '2001:db8::30', pref: 30, name: 'mx30.order.test' },
    ]);
    assert.deepEqual(
      destination.addresses.map((a: Address) => a.family),
      [4, 6, 4, 6],
    );
    assert.equal(destination.host, 'order.test');
    assert.equal(destination.port, 25);
    assert.equal(destination.relayed, false);
  });

  it('orders equal preferences by the random source', async () => {
    const run = async (draw: (i: number) => number) => {
      let i = 0;
      const random = () => draw(i++);
      return ips(value(await resolveDestination('tie.test', NO_ROUTES, { resolver, random, ...notMe })));
    };
    const rising = await run((i) => i / 10);
    const falling = await run((i) => 1 - i / 10);
    for (const order of [rising, falling]) {
      assert.equal(order[0], '192.0.2.5');
      assert.equal(order[3], '192.0.2.30');
    }
    // Opposite draws give opposite orders of the two pref-10 hosts: both orders occur.
    assert.deepEqual(new Set([rising.slice(1, 3).join(), falling.slice(1, 3).join()]), new Set(['192.0.2.1,192.0.2.2', '192.0.2.2,192.0.2.1']));
  });

  it('shuffles equal preferences with Math.random by default, one draw per MX record', async (t) => {
    // orderMx's own tests cover the shuffle with draws they choose; this one only checks that
    // the default draws come from Math.random, without depending on what it returns.
    const draws = t.mock.method(Math, 'random', () => 0.5);
    const order = ips(value(await resolveDestination('tie.test', NO_ROUTES, { resolver, ...notMe })));
    assert.equal(draws.mock.callCount(), 4);
    assert.equal(order[0], '192.0.2.5');
    assert.deepEqual(new Set(order.slice(1, 3)), new Set(['192.0.2.1', '192.0.2.2']));
  });

  it('falls back to the A record when there is no MX', async () => {
    const destination = value(await resolveDestination('plain.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(destination.addresses, [{ ip: '192.0.2.40', family: 4, pref: 0, name: 'plain.test' }]);
  });

  it('falls back to the AAAA record of an IPv6-only host', async () => {
    const destination = value(await resolveDestination('six.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(destination.addresses, [{ ip: '2001:db8::6', family: 6, pref: 0, name: 'six.test' }]);
  });

  it('bounces a host that does not exist (NXDOMAIN)', async () => {
    const result = failureOf(await resolveDestination('NoSuch.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(result, {
      letter: 'D',
      code: 'NO_SUCH_HOST',
      text: "Sorry, I couldn't find any host named NoSuch.test. (#5.1.2)\n",
    });
  });

  it('bounces a host whose name exists without MX, A or AAAA data', async () => {
    const result = failureOf(await resolveDestination('txt-only.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual([result.letter, result.code], ['D', 'NO_SUCH_HOST']);
  });

  it('defers on SERVFAIL (Z)', async () => {
    const result = failureOf(await resolveDestination('mail.sf.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(result, {
      letter: 'Z',
      code: 'TEMP_DNS',
      text: "Sorry, I couldn't find any host by that name. (#4.1.2)\n",
      cause: 'ESERVFAIL: queryMx ESERVFAIL mail.sf.test',
    });
  });

  it('defers on a timeout and on REFUSED', async () => {
    const quick = dns.resolver({ timeout: 100, tries: 1 });
    assert.equal(failureOf(await resolveDestination('mail.to.test', NO_ROUTES, { resolver: quick, ...notMe })).code, 'TEMP_DNS');
    // Outside every zone dnsmasq has no upstream and refuses.
    assert.equal(failureOf(await resolveDestination('mail.example.org', NO_ROUTES, { resolver, ...notMe })).code, 'TEMP_DNS');
  });

  it('bounces a null MX (RFC 7505), however it is written', async () => {
    for (const host of ['null.test', 'nulldot.test']) {
      const result = failureOf(await resolveDestination(host, NO_ROUTES, { resolver, ...notMe }));
      assert.deepEqual([result.letter, result.code], ['D', 'NULL_MX'], host);
    }
    // A null MX beside real ones is just an exchange without addresses.
    const mixed = value(await resolveDestination('nullplus.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(ips(mixed), ['192.0.2.50']);
  });

  it('bounces MX hosts without addresses, defers when a lookup failed softly', async () => {
    const ghost = failureOf(await resolveDestination('ghost.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual([ghost.letter, ghost.code], ['D', 'NO_MX_OR_IP']);
    const allsoft = failureOf(await resolveDestination('allsoft.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual([allsoft.letter, allsoft.code], ['Z', 'TEMP_DNS']);
    // A soft failure does not matter when another MX host has an address.
    const halfsoft = value(await resolveDestination('halfsoft.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(summary(halfsoft), [{ ip: '192.0.2.50', pref: 20, name: 'good.halfsoft.test' }]);
  });

  it('takes an unbracketed IP address in an MX record as the address', async () => {
    const destination = value(await resolveDestination('literal-mx.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(destination.addresses, [{ ip: '192.0.2.77', family: 4, pref: 10, name: '192.0.2.77' }]);
  });

  it('lists an address reached through two MX hosts once, at the better preference', async () => {
    const destination = value(await resolveDestination('dup.test', NO_ROUTES, { resolver, ...notMe }));
    assert.deepEqual(summary(destination), [
      { ip: '192.0.2.60', pref: 10, name: 'one.dup.test' },
      { ip: '192.0.2.61', pref: 20, name: 'two.dup.test' },
    ]);
  });

  it('drops MX hosts at or after the best preference that is me', async () => {
    const at = async (local: string[]) => resolveDestination('me.test', NO_ROUTES, { resolver, localAddresses: local });
    assert.deepEqual(ips(value(await at(['192.0.2.83']))), ['192.0.2.81', '2001:db8::81', '192.0.2.82']);
    assert.deepEqual(ips(value(await at(['192.0.2.82', '192.0.2.83']))), ['192.0.2.81', '2001:db8::81']);
    assert.deepEqual(ips(value(await at(['192.0.2.99']))).length, 4);
    const me = failureOf(await at(['192.0.2.81']));
    assert.deepEqual([me.letter, me.code], ['D', 'MX_IS_ME']);
    // Compared as addresses, not as text.
    assert.equal(failureOf(await at(['2001:0db8:0000::0081'])).code, 'MX_IS_ME');
  });

  it('routes to a relay by its A record only, never its MX, even when it is local', async () => {
    const routes = parseSmtproutes(['order.test:relay.test:2525 user secret']);
    const destination = value(await resolveDestination('Order.Test', routes, { resolver, localAddresses: ['192.0.2.99'] }));
    assert.deepEqual(destination, {
      host: 'relay.test',
      port: 2525,
      addresses: [{ ip: '192.0.2.99', family: 4, pref: 0, name: 'relay.test' }],
      auth: { user: 'user', pass: 'secret' },
      relayed: true,
    });
  });

  it('reports the relay, not the host, when the relay does not exist', async () => {
    const routes = parseSmtproutes([':gone.test']);
    const result = failureOf(await resolveDestination('order.test', routes, { resolver, ...notMe }));
    assert.deepEqual(result, {
      letter: 'D',
      code: 'NO_SUCH_HOST',
      text: "Sorry, I couldn't find any host named gone.test. (#5.1.2)\n",
    });
    const soft = failureOf(await resolveDestination('order.test', parseSmtproutes([':relay.sf.test']), { resolver }));
    assert.equal(soft.code, 'TEMP_DNS');
  });

  it('does the MX lookup for an empty relay, on the route port', async () => {
    const routes = parseSmtproutes([':relay.test', '.test:', 'plain.test::2526']);
    const sub = value(await resolveDestination('order.test', routes, { resolver, ...notMe }));
    assert.deepEqual([sub.relayed, sub.port, ips(sub)[0]], [false, 25, '192.0.2.10']);
    const plain = value(await resolveDestination('plain.test', routes, { resolver, ...notMe }));
    assert.deepEqual([plain.relayed, plain.port, ips(plain)], [false, 2526, ['192.0.2.40']]);
  });

  it('uses the servers named in QMAILREMOTE_DNS', async () => {
    const fromEnv = routingResolver({ QMAILREMOTE_DNS: ` ${dns.server} ` }, { timeout: 500, tries: 2 });
    assert.ok(fromEnv.ok);
    const destination = value(await resolveDestination('plain.test', NO_ROUTES, { resolver: fromEnv.value, ...notMe }));
    assert.deepEqual(ips(destination), ['192.0.2.40']);
    // Without a resolver given, resolveDestination makes one the same way.
    const saved = process.env.QMAILREMOTE_DNS;
    process.env.QMAILREMOTE_DNS = dns.server;
    try {
      assert.deepEqual(ips(value(await resolveDestination('plain.test', NO_ROUTES, notMe))), ['192.0.2.40']);
      process.env.QMAILREMOTE_DNS = 'not-an-address';
      assert.equal(failureOf(await resolveDestination('plain.test', NO_ROUTES, notMe)).code, 'TEMP_DNS');
    } finally {
      if (saved === undefined) delete process.env.QMAILREMOTE_DNS;
      else process.env.QMAILREMOTE_DNS = saved;
    }
  });
});

describe('routingResolver', () => {
  it('accepts several servers, IPv6 in brackets, and falls back to the system servers', () => {
    assert.ok(routingResolver({ QMAILREMOTE_DNS: '127.0.0.1:5353,[::1]:53, ::1' }).ok);
    assert.ok(routingResolver({}).ok);
    assert.ok(routingResolver({ QMAILREMOTE_DNS: '' }).ok);
  });

  it('defers when QMAILREMOTE_DNS is not a list of addresses', () => {
    const result = routingResolver({ QMAILREMOTE_DNS: 'dns.example:53' });
    assert.ok(!result.ok);
    assert.deepEqual([result.error.letter, result.error.code], ['Z', 'TEMP_DNS']);
  });
});

describe('test helper dnsmasq', () => {
  let dns: DnsServer;

  before(async () => {
    dns = await startDns({
      txt: [
        { name: 'sel._domainkey.key.test', text: `v=DKIM1; k=rsa; p=${'A'.repeat(400)}` },
        { name: 'odd.test', text: ' a, "quoted" \\ back;slash # not a comment ' },
        { name: 'parts.test', text: ['one', '', 'three'] },
      ],
      servfail: ['broken.test'],
      timeout: ['silent.test'],
    });
  });

  it('answers SERVFAIL, nothing, NXDOMAIN or REFUSED as asked', async () => {
    const resolver = dns.resolver({ timeout: 100, tries: 1 });
    await assert.rejects(resolver.resolveMx('a.broken.test'), { code: 'ESERVFAIL' });
    await assert.rejects(resolver.resolve4('a.silent.test'), { code: 'ETIMEOUT' });
    await assert.rejects(resolver.resolve4('a.key.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve4('key.test'), { code: 'ENODATA' }); // a name above a record exists
    await assert.rejects(resolver.resolve4('odd.test'), { code: 'ENODATA' });
    await assert.rejects(resolver.resolve4('example.org'), { code: 'EREFUSED' });
  });

  after(async () => {
    await dns?.stop();
  });

  it('serves TXT records longer than 255 bytes as several strings', async () => {
    const [record, ...more] = await dns.resolver().resolveTxt('SEL._domainkey.key.test');
    assert.equal(more.length, 0);
    assert.deepEqual(record?.map((s) => s.length), [255, 163]);
    assert.equal(record?.join(''), `v=DKIM1; k=rsa; p=${'A'.repeat(400)}`);
  });

  it('keeps TXT text exactly, and explicit strings as given', async () => {
    const resolver = dns.resolver();
    assert.deepEqual(await resolver.resolveTxt('odd.test'), [[' a, "quoted" \\ back;slash # not a comment ']]);
    assert.deepEqual(await resolver.resolveTxt('parts.test'), [['one', '', 'three']]);
  });

  it('splits text on character boundaries', () => {
    assert.deepEqual(splitText(''), ['']);
    const strings = splitText('é'.repeat(200));
    assert.deepEqual(strings.map((s) => Buffer.byteLength(s)), [254, 146]);
    assert.equal(strings.join(''), 'é'.repeat(200));
  });

  it('stops, after which nothing answers on its port', async () => {
    const other = await startDns();
    const resolver = other.resolver({ timeout: 100, tries: 1 });
    await assert.rejects(resolver.resolve4('nothing.test'), { code: 'ENOTFOUND' });
    await other.stop();
    await assert.rejects(resolver.resolve4('nothing.test'), (error: NodeJS.ErrnoException) => error.code !== 'ENOTFOUND');
  });
});
