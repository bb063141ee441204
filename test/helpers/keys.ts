// Test key pairs made at test time (no key material is committed) and the
// DNS TXT record text that publishes each one under <selector>._domainkey.<d>.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export type TestKeyType = 'rsa' | 'ed25519';

export type TestKey = {
  type: TestKeyType;
  privateKey: KeyObject;
  // RSA: PKCS#1 ("BEGIN RSA PRIVATE KEY"), as `openssl genrsa` and dknewkey
  // write it. Ed25519: PKCS#8 ("BEGIN PRIVATE KEY").
  privateKeyPem: string;
  // The key record, e.g. `v=DKIM1; k=rsa; p=MIIB...`.
  txt: string;
  // Ed25519 only: base64 of the raw 32-byte private seed, the form dkimpy
  // takes for ed25519 signing.
  rawPrivateKeyBase64?: string;
};

export function makeRsaKey(modulusLength = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength });
  // RFC 6376 §3.6.1: for k=rsa, p= is the DER SubjectPublicKeyInfo in base64.
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return {
    type: 'rsa',
    privateKey,
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    txt: `v=DKIM1; k=rsa; p=${p}`,
  };
}

export function makeEd25519Key(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // RFC 8463 §4.2: for k=ed25519, p= is the raw 32-byte public key, not an
  // SPKI structure; JWK gives exactly those bytes (base64url).
  const p = Buffer.from(jwkMember(publicKey, 'x'), 'base64url').toString('base64');
  return {
    type: 'ed25519',
    privateKey,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    txt: `v=DKIM1; k=ed25519; p=${p}`,
    rawPrivateKeyBase64: Buffer.from(jwkMember(privateKey, 'd'), 'base64url').toString('base64'),
  };
}

export function makeTestKey(type: TestKeyType = 'rsa'): TestKey {
  return type === 'rsa' ? makeRsaKey() : makeEd25519Key();
}

function jwkMember(key: KeyObject, member: 'x' | 'd'): string {
  const value = key.export({ format: 'jwk' })[member];
  if (typeof value !== 'string') throw new Error(`JWK has no "${member}"`);
  return value;
}
