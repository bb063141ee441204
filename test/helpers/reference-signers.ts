// Signatures made by code other than ours, to prove the verifier harness and
// to compare against: Perl Mail::DKIM (DKIM rsa-sha256 relaxed/relaxed and
// DomainKeys nofws rsa-sha1) and dkimpy (ed25519-sha256 or rsa-sha256).
// Both return the whole signed message with CRLF line ends.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestKey } from './keys.ts';
import { interpreters, runScript } from './verifiers.ts';

export type SignOptions = { domain: string; selector: string; key: TestKey };

const script = (name: string): string => fileURLToPath(new URL(`./reference/${name}`, import.meta.url));

// `types` are the signatures to add, top to bottom, each over the original message.
export async function signWithMailDkim(message: Buffer, types: ('dkim' | 'dk')[], opts: SignOptions): Promise<Buffer> {
  if (opts.key.type !== 'rsa') throw new Error('Mail::DKIM signs with RSA keys only');
  const typeArgs = types.flatMap((type) => ['--type', type]);
  return withKeyFile(opts.key.privateKeyPem, (keyFile) =>
    runScript(interpreters.perl, script('mail-dkim-sign.pl'), [...typeArgs, ...commonArgs(opts, keyFile)], message),
  );
}

export async function signWithDkimpy(message: Buffer, opts: SignOptions): Promise<Buffer> {
  const { key } = opts;
  const algorithm = key.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
  const keyText = key.type === 'rsa' ? key.privateKeyPem : (key.rawPrivateKeyBase64 ?? '');
  return withKeyFile(keyText, (keyFile) =>
    runScript(interpreters.python, script('dkimpy-sign.py'), ['--algorithm', algorithm, ...commonArgs(opts, keyFile)], message),
  );
}

function commonArgs(opts: SignOptions, keyFile: string): string[] {
  return ['--domain', opts.domain, '--selector', opts.selector, '--key', keyFile];
}

// The signers read the key from a file; keep it in a private temp directory
// that is removed whatever happens.
async function withKeyFile<T>(keyText: string, use: (keyFile: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'refsign-'));
  try {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, keyText, { mode: 0o600 });
    return await use(keyFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
