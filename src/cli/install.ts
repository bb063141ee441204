// `qmail-remote-dkim install` and `uninstall`: see src/install/shim.ts and docs/install.md.
// The shim names this installation's bin/qmail-remote (which checks the Node it runs on) and,
// by default, the Node running this command: the one the administrator has just used.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { qmailHome } from '../common/control.ts';
import { checkNode, defaultTarget, install, InstallError, makeStsCache, safeCacheDir, uninstall } from '../install/shim.ts';
import { findUser, readUsers, PASSWD_FILE } from '../keys/accounts.ts';
import { makeEntryKey } from '../install/entry-key.ts';
import { makeTcpto6 } from '../install/tcpto6.ts';
import { codeCacheNote } from '../install/code-cache.ts';
import { say } from './output.ts';
import { EXIT_OK, EXIT_TEMPORARY, EXIT_USAGE } from './exit-codes.ts';

const PACKAGE = fileURLToPath(new URL('../..', import.meta.url));
const PROGRAM = fileURLToPath(new URL('../../bin/qmail-remote', import.meta.url));

export interface InstallArgs {
  to?: string;
  node?: string;
  cache?: string;
  /** The passwd file to find qmailr in (default /etc/passwd). */
  passwd?: string;
  /** The user qmail-smtpd (and so qmail-dkverify) runs as: qmaild unless told. */
  smtpdUser?: string;
}

export function installCommand(args: InstallArgs): number {
  // Absolute: qmail-send's PATH is minimal, and the shim runs from any directory.
  const node = resolve(args.node ?? process.execPath);
  const problem = checkNode(node);
  if (problem) {
    say(`qmail-remote-dkim install: ${problem}`);
    return EXIT_USAGE;
  }
  if (args.cache && !safeCacheDir(args.cache)) {
    say(`qmail-remote-dkim install: ${args.cache} must be an existing directory that only its owner can write`);
    return EXIT_USAGE;
  }
  try {
    const home = resolve(qmailHome());
    const target = args.to !== undefined ? resolve(args.to) : defaultTarget(home);
    const cacheDir = args.cache ? resolve(args.cache) : '';
    const plan = { target, node, program: PROGRAM, cacheDir, qmailHome: home, replacing: args.to === undefined };
    for (const line of install(plan)) say(line);
    const note = codeCacheNote(node, PACKAGE);
    if (note) say(note);
    // The MTA-STS cache and the entry key belong to qmail's home: a shim elsewhere (--to) leaves them alone.
    if (args.to === undefined) {
      const accounts = readUsers(args.passwd ?? PASSWD_FILE);
      const qmailr = findUser(accounts, 'qmailr') ?? null;
      for (const line of makeStsCache(home, qmailr)) say(line);
      for (const line of makeTcpto6(home, qmailr)) say(line);
      const smtpd = findUser(accounts, args.smtpdUser ?? 'qmaild') ?? null;
      for (const line of makeEntryKey(home, { smtpd, remote: qmailr })) say(line);
    }
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof InstallError)) throw error;
    say(`qmail-remote-dkim install: ${error.message}`);
    return EXIT_TEMPORARY;
  }
}

export function uninstallCommand(args: { to?: string }): number {
  try {
    for (const line of uninstall(args.to ?? defaultTarget(qmailHome()))) say(line);
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof InstallError)) throw error;
    say(`qmail-remote-dkim uninstall: ${error.message}`);
    return EXIT_TEMPORARY;
  }
}
