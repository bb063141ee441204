// `qmail-remote-dkim sign`: a message on stdin, what qmail-remote would send on stdout. It uses
// the same control directory and key rules as qmail-remote, so an operator can see exactly what
// a delivery would sign, and why.
import { controlDir, readControlLine } from '../common/control.ts';
import { openMessage, normalised } from '../mail/message.ts';
import { readEntryKey } from '../mail/entry-mark.ts';
import { loadSignConfig } from '../signing/config.ts';
import { signMessage } from '../signing/sign.ts';
import { sealIfForwarded } from '../signing/seal.ts';
import { emit, say } from './output.ts';
import { EXIT_OK, EXIT_TEMPORARY } from './exit-codes.ts';


/** How old an entry mark may be: qmail-send's default queue lifetime and a day (delivery/job.ts reads control/queuelifetime). */
const MARK_MAX_AGE = 8 * 86400;

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
    const time = args.time ?? Math.floor(Date.now() / 1000);
    const signed = signMessage(source, {
      ...config.value,
      time,
      ...(args.canonicalization ? { dkCanonicalization: args.canonicalization } : {}),
      origin: { key: () => readEntryKey(dir), now: Math.floor(Date.now() / 1000), maxAge: MARK_MAX_AGE },
    });
    if (!signed.ok) {
      say(`qmail-remote-dkim sign: ${signed.error.cause ?? 'key unusable'}`);
      return EXIT_TEMPORARY;
    }
    const me = readControlLine(dir, 'me');
    const sealed = await sealIfForwarded(signed.value, source, { ...config.value, me: (me.ok && me.value) || '', time });
    if (!sealed.ok) {
      say(`qmail-remote-dkim sign: ${sealed.error.cause ?? 'sealing key unusable'}`);
      return EXIT_TEMPORARY;
    }
    if (args.explain) {
      say(`control directory: ${dir}`);
      if (config.value.table) say(`dkimkeys: ${config.value.table.length} lines (dksign is not read)`);
      else say(`dksign: ${config.value.templates.length ? config.value.templates.join(' | ') : '(none)'}`);
      for (const line of config.value.table ?? []) if (line.problem) say(`dkimkeys line ${line.number}: ${line.problem}`);
      if (signed.value.domain) say(`signing domain from header: ${signed.value.domain}`);
      for (const s of signed.value.signatures) say(`${s.type}: d=${s.d} s=${s.s} a=${s.a} key=${s.path} (${s.source})`);
      for (const note of [...signed.value.notes, ...sealed.value.notes]) say(`note: ${note}`);
      if (signed.value.signatures.length === 0) say('not signed');
    }
    await emit(sealed.value.prefix);
    for (const chunk of normalised(source)) await emit(chunk);
    return EXIT_OK;
  } finally {
    source.close();
  }
}
