// Signers for the verify tests: the independent ones (Mail::DKIM, dkimpy, in
// test/helpers/reference-signers.ts), this project's own signMessage, and mailauth's dkimSign
// where a test needs a signature with particular tags (x=, l=, i=, rsa-sha1, h=).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { bufferSource } from '../../src/mail/message.ts';
import { signMessage } from '../../src/signing/sign.ts';
import type { TestKey } from '../helpers/keys.ts';

export const crlf = (text: string): Buffer => Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1');

export const MESSAGE = crlf(
  'From: User <user@example.com>\nTo: rcpt@example.net\nSubject: verify me\n' +
    'Date: Tue, 01 Dec 2026 00:00:00 +0000\nMessage-ID: <verify@example.com>\n\nHello,\n\n  this is the body.\n',
);

export interface MailauthSignOptions {
  selector: string;
  key: TestKey;
  domain?: string;
  algorithm?: string;
  identity?: string;
  maxBodyLength?: number;
  headerList?: string;
  signTime?: Date;
  expires?: Date;
}

/** One DKIM-Signature made by mailauth, on top of the message. */
export async function mailauthSign(message: Buffer, options: MailauthSignOptions): Promise<Buffer> {
  return Buffer.concat([Buffer.from(await mailauthSignature(message, options), 'latin1'), message]);
}

/** The DKIM-Signature field alone (CRLF line ends), for a message too big to hold: it may be a stream. */
export async function mailauthSignature(message: Buffer | Readable, options: MailauthSignOptions): Promise<string> {
  const { signatures, errors } = await dkimSign(message, {
    ...(options.signTime ? { signTime: options.signTime } : {}),
    ...(options.expires ? { expires: options.expires } : {}),
    signatureData: [{
      signingDomain: options.domain ?? 'example.com',
      selector: options.selector,
      privateKey: options.key.privateKeyPem,
      ...(options.algorithm ? { algorithm: options.algorithm } : {}),
      ...(options.identity ? { identity: options.identity } : {}),
      ...(options.maxBodyLength !== undefined ? { maxBodyLength: options.maxBodyLength } : {}),
      ...(options.headerList ? { headerList: options.headerList } : {}),
      canonicalization: 'relaxed/relaxed',
    }],
  } as Parameters<typeof dkimSign>[1]);
  if (errors.length > 0) throw new Error(`mailauth could not sign: ${JSON.stringify(errors)}`);
  return signatures;
}

/** Signed by this project's signer (src/signing): DKIM, then DomainKeys, key from a key file. */
export function ownSign(message: Buffer, key: TestKey, domain = 'example.com', dkCanonicalization: 'nofws' | 'simple' = 'nofws'): Buffer {
  const root = mkdtempSync(join(tmpdir(), 'dkverify-own-'));
  try {
    mkdirSync(join(root, domain));
    writeFileSync(join(root, domain, 'default'), key.privateKeyPem, { mode: 0o600 });
    const signed = signMessage(bufferSource(message), { templates: [`${root}/%/default`], qmailHome: root, time: 1700000000, dkCanonicalization });
    if (!signed.ok || signed.value.signatures.length === 0) throw new Error('our signer did not sign');
    return Buffer.concat([signed.value.prefix, message]);
  } finally {
    // signMessage is synchronous: the key file is read by now.
    rmSync(root, { recursive: true, force: true });
  }
}
