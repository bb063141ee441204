// `qmail-remote-dkim keygen` and `dknewkey`: make a key file and print the TXT record that
// publishes it. Plain form: `keygen SELECTOR` writes ./SELECTOR, as dknewkey always did.
// With --domain, the key goes where control/dksign will look for that domain, so what is
// generated is what gets used. --print shows the record of a key that already exists.
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { controlDir } from '../common/control.ts';
import { canonicalDomain } from '../mail/domain.ts';
import { isSelector, parseKey, type KeyType } from '../signing/keys.ts';
import { bindRecord, keyRecord } from '../keys/key-record.ts';
import { checkKeySpec, generateKey, writeKeyFile } from '../keys/keygen.ts';
import { loadSignConfig } from '../signing/config.ts';
import { emit, say } from './output.ts';
import { EXIT_OK, EXIT_TEMPORARY, EXIT_USAGE } from './exit-codes.ts';

export interface KeygenArgs {
  type?: KeyType;
  bits?: number;
  /** The key file (plain form), or which dksign line by its selector (with --domain). */
  selector?: string;
  domain?: string;
  control?: string;
  print?: boolean;
  /** The group file to find group qmail in, instead of /etc/group. */
  group?: string;
}

interface Target {
  readonly path: string;
  readonly selector: string;
  /** The record's owner name: relative to the zone, or absolute when the domain is known. */
  readonly owner: string;
}

type Step<T> = { ok: true; value: T } | { ok: false; code: number };

export async function keygenCommand(args: KeygenArgs, program: string): Promise<number> {
  const target = args.domain !== undefined ? domainTarget(args, program) : fileTarget(args, program);
  if (!target.ok) return target.code;
  if (args.print) return printRecord(target.value, program);
  return makeKey(args, target.value, program, args.domain !== undefined);
}

function fileTarget(args: KeygenArgs, program: string): Step<Target> {
  if (args.selector === undefined || args.selector === '') {
    say(`${program}: name the key file (its name is the selector), or give --domain`);
    return { ok: false, code: EXIT_USAGE };
  }
  const selector = basename(args.selector);
  if (!checkSelector(selector, program)) return { ok: false, code: EXIT_USAGE };
  return { ok: true, value: { path: args.selector, selector, owner: `${selector}._domainkey` } };
}

/** The key path control/dksign gives for the domain: its first line, or the one whose selector was named. */
function domainTarget(args: KeygenArgs, program: string): Step<Target> {
  const domain = canonicalDomain(args.domain ?? '');
  if (domain === null) {
    say(`${program}: not a domain name: ${JSON.stringify(args.domain)}`);
    return { ok: false, code: EXIT_USAGE };
  }
  const dir = args.control ?? controlDir();
  const config = loadSignConfig(dir);
  if (!config.ok) {
    say(`${program}: cannot read ${dir}/dksign`);
    return { ok: false, code: EXIT_TEMPORARY };
  }
  const { templates, qmailHome } = config.value;
  const template = args.selector === undefined ? templates[0] : templates.find((line) => basename(line) === args.selector);
  if (template === undefined) {
    say(args.selector === undefined
      ? `${program}: ${dir}/dksign names no key files; add a line such as /etc/domainkeys/%/default`
      : `${program}: no line of ${dir}/dksign has the selector ${args.selector}`);
    return { ok: false, code: EXIT_USAGE };
  }
  const path = (isAbsolute(template) ? template : resolve(qmailHome, template)).replaceAll('%', domain);
  const selector = basename(path);
  if (!checkSelector(selector, program)) return { ok: false, code: EXIT_USAGE };
  return { ok: true, value: { path, selector, owner: `${selector}._domainkey.${domain}.` } };
}

function checkSelector(selector: string, program: string): boolean {
  if (isSelector(selector)) return true;
  say(`${program}: ${JSON.stringify(selector)} cannot be a selector (letters, digits, '-', '_' and dots only)`);
  return false;
}

async function printRecord(target: Target, program: string): Promise<number> {
  let pem: Buffer;
  try {
    pem = readFileSync(target.path);
  } catch (error) {
    say(`${program}: cannot read ${target.path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    return EXIT_TEMPORARY;
  }
  const parsed = parseKey(pem);
  if (typeof parsed === 'string') {
    say(`${program}: ${target.path}: ${parsed}`);
    return EXIT_USAGE;
  }
  await emit(`${bindRecord(target.owner, keyRecord(parsed.key))}\n`);
  return EXIT_OK;
}

async function makeKey(args: KeygenArgs, target: Target, program: string, makeDirectory: boolean): Promise<number> {
  const check = checkKeySpec(args.type, args.bits);
  if (!check.ok) {
    say(`${program}: ${check.reason}`);
    return EXIT_USAGE;
  }
  if (check.warning) say(`${program}: warning: ${check.warning}`);
  if (makeDirectory) {
    try {
      // Directories stay searchable by qmailr; the secret is the key file, mode 0640.
      mkdirSync(dirname(target.path), { recursive: true, mode: 0o755 });
    } catch (error) {
      say(`${program}: cannot create ${dirname(target.path)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return EXIT_TEMPORARY;
    }
  }
  const { key, pem } = generateKey(check.spec);
  const written = writeKeyFile(target.path, pem, args.group !== undefined ? { groupFile: args.group } : {});
  if (!written.ok) {
    say(`${program}: ${target.path}: ${written.reason}`);
    return written.exists ? EXIT_USAGE : EXIT_TEMPORARY;
  }
  await emit(`${bindRecord(target.owner, keyRecord(key))}\n`);
  if (makeDirectory) {
    say(`${program}: wrote ${check.spec.type} key to ${target.path} (mode 0640${written.group ? `, group ${written.group}` : ''}); publish the record above`);
  }
  return EXIT_OK;
}
