// dknewkey, as libdomainkeys shipped it: `dknewkey selector [bits] > selector.pub` writes the
// private key to ./selector and prints the BIND record for it. Old scripts and howtos
// (`dknewkey default 1024 > default.pub`) keep working; -t ed25519 and -b are the additions.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { keygenCommand } from './keygen.ts';
import { say } from './output.ts';
import { EXIT_USAGE } from './exit-codes.ts';

const PROGRAM = 'dknewkey';

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  // yargs still runs the command after reporting a usage error when it may not exit itself.
  let failed = false;
  const parser = yargs(argv)
    .scriptName(PROGRAM)
    .command(
      '$0 <selector> [size]',
      'write a new private key to the file SELECTOR and print its DNS TXT record',
      (y) =>
        y
          .positional('selector', { type: 'string', describe: 'key file to create; its name is the selector', demandOption: true })
          .positional('size', { type: 'number', describe: 'RSA key size in bits, as dknewkey took it (same as -b)' })
          .option('type', { alias: 't', choices: ['rsa', 'ed25519'] as const, default: 'rsa' as const, describe: 'key algorithm' })
          .option('bits', { alias: 'b', type: 'number', describe: 'RSA key size in bits (default 2048)' })
          .option('group', { type: 'string', describe: 'group file to find group qmail in (default /etc/group)' }),
      async (args) => {
        if (failed) return;
        if (args.size !== undefined && args.bits !== undefined && args.size !== args.bits) {
          say(`${PROGRAM}: the size is given twice, as ${args.size} and -b ${args.bits}`);
          exitCode = EXIT_USAGE;
          return;
        }
        const bits = args.bits ?? args.size;
        exitCode = await keygenCommand({
          type: args.type,
          selector: args.selector,
          ...(bits !== undefined ? { bits } : {}),
          ...(args.group !== undefined ? { group: args.group } : {}),
        }, PROGRAM);
      },
    )
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((message, error) => {
      if (error) throw error;
      say(message);
      failed = true;
      exitCode = EXIT_USAGE;
    });
  await parser.parseAsync();
  return exitCode;
}

process.exitCode = await main(hideBin(process.argv));
