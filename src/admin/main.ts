// qmail-remote-dkim: the administrator's command. qmail never runs this; qmail-remote has its
// own entry point (src/qmail-remote.ts) that loads none of it.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT_USAGE, signCommand } from './sign.ts';
import { say } from './output.ts';

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const parser = yargs(argv)
    .scriptName('qmail-remote-dkim')
    .command(
      'sign',
      'sign a message from stdin as qmail-remote would, and write it to stdout',
      (y) =>
        y
          .option('control', { type: 'string', describe: 'qmail control directory (default: $CONTROLDIR, $QMAILHOME/control, /var/qmail/control)' })
          .option('explain', { type: 'boolean', describe: 'say on stderr which domain, key and selector were used, or why nothing was signed' })
          .option('time', { type: 'number', describe: 'DKIM t= in seconds since the epoch (for reproducible output)' })
          .option('canonicalization', { choices: ['nofws', 'simple'] as const, describe: 'DomainKeys canonicalization (default nofws)' }),
      async (args) => {
        exitCode = await signCommand(args);
      },
    )
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .exitProcess(false)
    .fail((message, error) => {
      if (error) throw error;
      say(message);
      exitCode = EXIT_USAGE;
    });
  await parser.parseAsync();
  return exitCode;
}

process.exitCode = await main(hideBin(process.argv));
