// Which keys sign a message of a given domain, and how: from control/dkimkeys when there is one
// (table.ts), else from control/dksign's templates (keys.ts), as ever. Each key comes with the
// options of the line that named it and the line itself, for the log and `sign --explain`.
import { failure, fail, ok, type Result } from '../common/failures.ts';
import { lookupKey, type ReadFile, type SigningKey } from './keys.ts';
import { keyDomain, linesFor, type LineOptions, type SigningTable, type TableLine } from './table.ts';

export interface ChosenKey {
  readonly key: SigningKey;
  readonly options: LineOptions;
  /** Where it was named: `control/dkimkeys line 3`, `control/dksign line 1`. */
  readonly source: string;
}

export interface Choice {
  readonly keys: readonly ChosenKey[];
  /** Whether a DomainKey-Signature may be made (dk=no turns it off). */
  readonly dk: boolean;
  /** Why a key is missing, or why nothing is signed. */
  readonly notes: readonly string[];
}

export interface ChooseConfig {
  readonly templates: readonly string[];
  readonly table?: SigningTable;
  readonly qmailHome: string;
  readonly readFile?: ReadFile;
}

/** The keys for `domain`; a failure (Z) when a key or the table line for this domain is unusable. */
export function chooseKeys(domain: string, config: ChooseConfig): Result<Choice> {
  return config.table ? fromTable(config.table, domain, config) : fromTemplates(domain, config);
}

function fromTemplates(domain: string, config: ChooseConfig): Result<Choice> {
  const keys: ChosenKey[] = [];
  const notes: string[] = [];
  for (const [index, template] of config.templates.entries()) {
    const lookup = lookupKey(template, domain, config.qmailHome, config.readFile);
    if (lookup.kind === 'error') return fail(failure('READ_KEY', `${lookup.path}: ${lookup.reason}`));
    if (lookup.kind === 'none') notes.push(lookup.reason);
    else if (!keys.some((chosen) => chosen.key.path === lookup.key.path)) {
      keys.push({ key: lookup.key, options: {}, source: `control/dksign line ${index + 1}` });
    }
  }
  return ok({ keys, dk: true, notes });
}

function fromTable(table: SigningTable, domain: string, config: ChooseConfig): Result<Choice> {
  const found = linesFor(table, domain);
  if (found === null) return ok({ keys: [], dk: true, notes: [`control/dkimkeys has no line for ${domain} nor *: not signed`] });
  const broken = found.lines.find((line) => line.problem !== undefined);
  if (broken) return fail(failure('READ_CONTROL', `control/dkimkeys line ${broken.number}: ${broken.problem ?? ''}`));
  const nosign = found.lines.find((line) => line.options.nosign);
  if (nosign) return ok({ keys: [], dk: false, notes: [`control/dkimkeys line ${nosign.number}: nosign for ${found.matched}`] });
  const keys: ChosenKey[] = [];
  const notes: string[] = [];
  for (const line of found.lines) {
    const chosen = keyOfLine(line, domain, config);
    if (!chosen.ok) return chosen;
    const value = chosen.value;
    if (typeof value === 'string') notes.push(value);
    else if (!keys.some((k) => k.key.path === value.key.path && k.key.domain === value.key.domain)) keys.push(value);
  }
  return ok({ keys, dk: found.lines.every((line) => line.options.dk !== false), notes });
}

/** The key a line names for `domain`, or why it names none here (a string: unsigned by it). */
function keyOfLine(line: TableLine, domain: string, config: ChooseConfig): Result<ChosenKey | string> {
  const source = `control/dkimkeys line ${line.number}`;
  const lookup = lookupKey(line.keypath, keyDomain(line, domain), config.qmailHome, config.readFile);
  if (lookup.kind === 'error') return fail(failure('READ_KEY', `${lookup.path}: ${lookup.reason}`));
  if (lookup.kind === 'none') return ok(`${source}: ${lookup.reason}`);
  const { key } = lookup;
  const wanted = line.options.algorithm;
  if (wanted !== undefined && wanted !== (key.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256')) {
    return fail(failure('READ_KEY', `${key.path}: ${source} asks for ${wanted}, the key is ${key.type}`));
  }
  const identityDomain = line.options.identity?.slice(line.options.identity.lastIndexOf('@') + 1).toLowerCase();
  if (identityDomain !== undefined && identityDomain !== key.domain && !identityDomain.endsWith(`.${key.domain}`)) {
    // RFC 6376 §3.5: i= must be d= or a subdomain of it, or every verifier fails the signature.
    return fail(failure('READ_CONTROL', `${source}: i=${line.options.identity ?? ''} is not within d=${key.domain}`));
  }
  return ok({ key, options: line.options, source });
}
