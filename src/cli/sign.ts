// `qmail-remote-dkim sign`: a message on stdin, what qmail-remote would send on stdout. It uses
// the same control directory and key rules as qmail-remote, so an operator can see exactly what
// a delivery would sign, and why.
import { controlDir } from '../common/control.ts';
import { openMessage, normalised } from '../mail/message.ts';
import { loadSignConfig } from '../signing/config.ts';
import { signMessage } from '../signing/sign.ts';
import { emit, say } from './output.ts';
import { EXIT_OK, EXIT_TEMPORARY } from './exit-codes.ts';


export interface SignArgs {
  control?: string;
  explain?: boolean;
  time?: number;
  canonicalization?: 'nofws' | 'simple';
}

export async function signCommand(args: SignArgs): Promise<number> {
  const dir = args.control ?? controlDir();
  const config = loadSignConfig(dir);
  if (!config.ok) {
    say(`qmail-remote-dkim sign: cannot read ${dir}/dksign`);
    return EXIT_TEMPORARY;
  }
  const source = await openMessage(0);
  try {
    const signed = signMessage(source, {
      ...config.value,
      ...(args.time !== undefined ? { time: args.time } : {}),
      ...(args.canonicalization ? { dkCanonicalization: args.canonicalization } : {}),
    });
    if (!signed.ok) {
      say(`qmail-remote-dkim sign: ${signed.error.cause ?? 'key unusable'}`);
      return EXIT_TEMPORARY;
    }
    if (args.explain) {
      say(`control directory: ${dir}`);
      say(`dksign: ${config.value.templates.length ? config.value.templates.join(' | ') : '(none)'}`);
      if (signed.value.domain) say(`signing domain from header: ${signed.value.domain}`);
      for (const s of signed.value.signatures) say(`${s.type}: d=${s.d} s=${s.s} a=${s.a} key=${s.path}`);
      for (const note of signed.value.notes) say(`note: ${note}`);
      if (signed.value.signatures.length === 0) say('not signed');
    }
    await emit(signed.value.prefix);
    for (const chunk of normalised(source)) await emit(chunk);
    return EXIT_OK;
  } finally {
    source.close();
  }
}
