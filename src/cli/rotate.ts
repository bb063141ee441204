// `qmail-remote-dkim keys rotate DOMAIN`: src/keys/rotate.ts does the work; this prints what it
// says and maps the outcome to the exit statuses of the other keys commands: 0 switched, 1 not
// yet (the record is missing or wrong: publish it and run again), 100 usage, 111 temporary.
import { controlDir, qmailHome } from '../common/control.ts';
import { canonicalDomain } from '../mail/domain.ts';
import { isSelector, type KeyType } from '../signing/keys.ts';
import { auditResolver } from '../keys/audit.ts';
import { rotate } from '../keys/rotate.ts';
import { emit, say } from './output.ts';
import { EXIT_OK, EXIT_PROBLEMS, EXIT_TEMPORARY, EXIT_USAGE } from './exit-codes.ts';

export interface RotateArgs {
  domain: string;
  control?: string;
  dns?: string;
  selector?: string;
  type?: KeyType;
  bits?: number;
  group?: string;
}

export async function rotateCommand(args: RotateArgs): Promise<number> {
  const domain = canonicalDomain(args.domain);
  if (domain === null) return usage(`not a domain: ${JSON.stringify(args.domain)}`);
  if (args.selector !== undefined && !isSelector(args.selector)) return usage(`not a selector: ${JSON.stringify(args.selector)}`);
  if (args.dns !== undefined && auditResolver(args.dns) === null) return usage(`--dns takes an IP address, optionally with a port: ${JSON.stringify(args.dns)}`);
  const outcome = await rotate({
    controlDir: args.control ?? controlDir(),
    domain,
    qmailHome: qmailHome(),
    now: Math.floor(Date.now() / 1000),
    ...(args.dns !== undefined ? { dnsServer: args.dns } : {}),
    ...(args.selector !== undefined ? { selector: args.selector } : {}),
    ...(args.type !== undefined ? { type: args.type } : {}),
    ...(args.bits !== undefined ? { bits: args.bits } : {}),
    ...(args.group !== undefined ? { groupFile: args.group } : {}),
  });
  await emit(`${outcome.lines.join('\n')}\n`);
  if (outcome.status === 'switched') return EXIT_OK;
  return outcome.status === 'temporary' ? EXIT_TEMPORARY : EXIT_PROBLEMS;
}

function usage(message: string): number {
  say(`qmail-remote-dkim keys rotate: ${message}`);
  return EXIT_USAGE;
}
