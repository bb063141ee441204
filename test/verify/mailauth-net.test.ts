// The stand-in for node:net in the verify bundle (src/verify/mailauth-net.ts) gives node:net's
// answers, and mailauth's bundled files ask it for nothing it does not have.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as standIn from '../../src/verify/mailauth-net.ts';
import { allStrings } from '../helpers/all-strings.ts';

const ROOT = new URL('../../', import.meta.url);

function agree(inputs: Iterable<unknown>): number {
  let n = 0;
  for (const input of inputs) {
    const shown = typeof input === 'string' ? JSON.stringify(input) : String(input);
    assert.equal(standIn.isIP(input as string), net.isIP(input as string), `isIP(${shown})`);
    assert.equal(standIn.isIPv6(input as string), net.isIPv6(input as string), `isIPv6(${shown})`);
    assert.equal(standIn.isIPv4(input as string), net.isIPv4(input as string), `isIPv4(${shown})`);
    n += 1;
  }
  return n;
}

test('node:net\'s answers for addresses of both families, zones, prefixes, domains and what is neither', () => {
  const inputs = [
    '192.0.2.1', '0.0.0.0', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4\n', '192.0.2.1/24',
    '::', '::1', '2001:db8::1', '2001:DB8:0:0:8:800:200C:417A', '::ffff:192.0.2.1', '::ffff:192.0.2.256', 'fe80::1%eth0', 'fe80::1%',
    '[::1]', '[::1]:53', '2001:db8::1/64', '1:2:3:4:5:6:7:8:9', ':::', '2001:db8:::1', 'gggg::1', '1::2::3',
    '127.0.0.1:5353', 'example.com', 'mail.example.com', 'xn--bcher-kva.example', '[192.0.2.1]', '', ' ', ':', '.', '%',
    '\u0661.\u0662.\u0663.\u0664', '2001\uff1adb8::1', '::1\u0000', 'a'.repeat(10_000), `${'1:'.repeat(5000)}1`,
  ];
  assert.equal(agree(inputs), inputs.length);
});

test('node:net\'s answers for every short string over hex digits, dots, colons, a zone\'s percent and a letter', () => {
  const n = agree(allStrings('0:1.f%x', 7));
  assert.ok(n > 900_000, `${n} strings`);
});

test('node:net\'s answers for random addresses, and for those addresses cut and spoilt', () => {
  const inputs: string[] = [];
  for (let i = 0; i < 5000; i += 1) {
    const bytes = randomBytes(16);
    const v4 = [...bytes.subarray(0, 4)].join('.');
    const v6 = Array.from({ length: 8 }, (_, k) => bytes.readUInt16BE(2 * k).toString(16)).join(':');
    const at = bytes[0] ?? 0;
    for (const address of [v4, v6, v6.replace(/(^|:)0(:0)+(:|$)/, '::')]) {
      inputs.push(address, address.slice(0, at % address.length), address.slice(at % address.length), `${address}%eth${at}`);
      inputs.push(address.replace(/[:.]/, ''), address.replaceAll(':', '.'), address.replaceAll('.', ':'));
    }
  }
  assert.equal(agree(inputs), inputs.length);
});

test('what is not a string goes to node:net and gets its answer', () => {
  assert.equal(agree([undefined, null, 4, 192_000_002_001, true, {}, ['192.0.2.1'], { toString: () => '::1' }]), 8);
});

test('mailauth\'s bundled files ask node:net for nothing the stand-in does not give', () => {
  const inputs: Record<string, string[]> = JSON.parse(readFileSync(new URL('dist/qmail-dkverify.inputs.json', ROOT), 'utf8'));
  const files = (inputs['qmail-dkverify-mailauth.cjs'] ?? []).filter((path) => path.startsWith('node_modules/'));
  const given = new Set(Object.keys(standIn));
  assert.deepEqual([...given].sort(), ['isIP', 'isIPv4', 'isIPv6']);
  let users = 0;
  for (const path of files) {
    const source = readFileSync(new URL(path, ROOT), 'utf8');
    const requires = [...source.matchAll(/(?:const|let|var)\s+(\{[^}]*\}|\w+)\s*=\s*require\(\s*['"](?:node:)?net['"]\s*\)/g)];
    if (/require\(\s*['"](?:node:)?net['"]\s*\)/.test(source)) assert.ok(requires.length > 0, `${path}: node:net required in a form this test does not read`);
    for (const [, binding = ''] of requires) {
      users += 1;
      const asked = binding.startsWith('{')
        ? binding.slice(1, -1).split(',').map((name) => name.split(':')[0]?.trim() ?? '').filter(Boolean)
        : [...source.matchAll(new RegExp(`\\b${binding}\\.(\\w+)`, 'g'))].map((m) => m[1] ?? '');
      for (const name of asked) assert.ok(given.has(name), `${path} asks node:net for ${name}`);
    }
  }
  assert.ok(users >= 3, `${users} of mailauth's files require node:net`);
});
