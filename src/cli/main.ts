// qmail-remote-dkim: the administrator's command. qmail never runs this; qmail-remote has its
// own entry point (src/delivery/qmail-remote.ts) that loads none of it.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { signCommand } from './sign.ts';
import { EXIT_USAGE } from './exit-codes.ts';
import { say } from './output.ts';
import { keygenCommand } from './keygen.ts';
import { keysCommand } from './keys.ts';

class UsageError extends Error {}

const CONTROL_OPTION = {
  type: 'string',
  describe: 'qmail control directory (default: $CONTROLDIR, $QMAILHOME/control, /var/qmail/control)',
} as const;

// The accounts files: qmail's install reads the system's; an audit of another host's tree (or
// a test) names copies.
const PASSWD_OPTION = { type: 'string', describe: 'passwd file to find user qmailr in (default /etc/passwd)' } as const;
const GROUP_OPTION = { type: 'string', describe: 'group file to find group qmail in (default /etc/group)' } as const;

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const parser = yargs(argv)
    .scriptName('qmail-remote-dkim')
    .command(
      'sign',
      'sign a message from stdin as qmail-remote would, and write it to stdout',
      (y) =>
        y
          .option('control', CONTROL_OPTION)
          .option('explain', { type: 'boolean', describe: 'say on stderr which domain, key and selector were used, or why nothing was signed' })
          .option('time', { type: 'number', describe: 'DKIM t= in seconds since the epoch (for reproducible output)' })
          .option('canonicalization', { choices: ['nofws', 'simple'] as const, describe: 'DomainKeys canonicalization (default nofws)' }),
      async (args) => {
        exitCode = await signCommand(args);
      },
    )
    .command(
      'keygen [selector]',
      'make a signing key and print its DNS TXT record (dknewkey); with --domain, where control/dksign looks for it',
      (y) =>
        y
          .positional('selector', { type: 'string', describe: 'key file to create (its name is the selector); with --domain, which dksign line by its selector' })
          .option('type', { alias: 't', choices: ['rsa', 'ed25519'] as const, default: 'rsa' as const, describe: 'key algorithm' })
          .option('bits', { alias: 'b', type: 'number', describe: 'RSA key size in bits (default 2048)' })
          .option('domain', { type: 'string', describe: 'put the key where control/dksign names it for this domain, creating the directory' })
          .option('control', CONTROL_OPTION)
          .option('group', GROUP_OPTION)
          .option('print', { type: 'boolean', describe: 'print the record for the existing key file instead of making one' }),
      async (args) => {
        exitCode = await keygenCommand(args, 'qmail-remote-dkim keygen');
      },
    )
    .command(
      'keys',
      'audit every key control/dksign can reach: permissions, key sizes, and with --dns the published records',
      (y) =>
        y
          .command(
            'rotate <domain>',
            'make a new key for DOMAIN beside the current one, print its record, and switch control/dkimkeys to it once DNS serves it',
            (y) =>
              y
                .positional('domain', { type: 'string', demandOption: true })
                .option('control', CONTROL_OPTION)
                .option('dns', { type: 'string', describe: 'check the record at this server only (default: the domain\'s authoritative servers)' })
                .option('selector', { type: 'string', describe: 'the new selector (default sYYYYMMDD)' })
                .option('type', { alias: 't', choices: ['rsa', 'ed25519'] as const, describe: 'key algorithm (default: the current key\'s)' })
                .option('bits', { alias: 'b', type: 'number', describe: 'RSA key size in bits (default 2048)' })
                .option('group', GROUP_OPTION),
            async (args) => {
              exitCode = await (await import('./rotate.ts')).rotateCommand(args);
            },
          )
          .option('control', CONTROL_OPTION)
          .option('dns', { type: 'string', describe: 'DNS server to check each key\'s TXT record at, e.g. 127.0.0.1 or 127.0.0.1:5353' })
          .option('passwd', PASSWD_OPTION)
          .option('group', GROUP_OPTION)
          .option('json', { type: 'boolean', describe: 'one JSON document on stdout, for monitoring' }),
      async (args) => {
        exitCode = await keysCommand(args);
      },
    )
    .command(
      'install',
      'put the shim in place of $QMAILHOME/bin/qmail-remote, keeping the original as qmail-remote.orig',
      (y) =>
        y
          .option('to', { type: 'string', describe: 'write the shim here instead (for $QMAILREMOTE)' })
          .option('node', { type: 'string', describe: 'absolute path of Node >= 22.19 (default: the one running this)' })
          .option('cache', { type: 'string', describe: "Node compile cache directory, writable by qmailr (default: none)" })
          .option('passwd', PASSWD_OPTION)
          .option('smtpd-user', { type: 'string', describe: 'the user qmail-smtpd runs as, who reads control/entrykey with qmailr (default: qmaild)' }),
      async (args) => {
        exitCode = (await import('./install.ts')).installCommand(args);
      },
    )
    .command('uninstall', 'put qmail-remote.orig back', (y) => y.option('to', { type: 'string' }), async (args) => {
      exitCode = (await import('./install.ts')).uninstallCommand(args);
    })
    .command('demo', 'sign and deliver a sample message to a built-in loopback SMTP server, then verify it', {}, async () => {
      exitCode = await (await import('./demo.ts')).demoCommand();
    })
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .exitProcess(false)
    .fail((message, error) => {
      // Throwing stops yargs before the command's handler runs: a mistyped option must not
      // go on to sign or install anything.
      throw error ?? new UsageError(message);
    });
  try {
    await parser.parseAsync();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    say(error.message);
    return EXIT_USAGE;
  }
  return exitCode;
}

process.exitCode = await main(hideBin(process.argv));
