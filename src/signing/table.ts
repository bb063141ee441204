// control/dkimkeys, the signing table (docs/signing.md, "The signing table"): per-domain keys and
// options in one file, read instead of control/dksign when it is there. One line a key:
//
//   domain:keypath[:options]
//
// `domain` is a domain, whose subdomains it also covers, or `*` for every domain; the most
// specific lines that match the signing domain are used, all of them (several lines, several
// signatures). `keypath` is a file, or a template with `%` as in control/dksign. Options,
// comma-separated, as indimail's control/dkimkeys names them where it has a name:
//
//   rsa-sha256 | ed25519-sha256   the key must be of this kind
//   dk=no                         no DomainKey-Signature for this domain
//   x=SECONDS                     signatures expire (x=) this long after t=
//   i=IDENTITY                    i= of the signature (@domain or user@domain, within d=)
//   oversign=Name:Name...         the fields to oversign instead of the default list
//   d=DOMAIN                      sign as DOMAIN (the operator's domain, say); `%` is DOMAIN
//   nosign                        do not sign this domain at all
//
// A line that cannot be read is kept with its reason: mail for the domain it names is deferred
// (Z) until it is fixed, and mail for other domains goes on.
import { canonicalDomain, parentDomains } from '../mail/domain.ts';

export interface LineOptions {
  readonly algorithm?: 'rsa-sha256' | 'ed25519-sha256';
  readonly dk?: boolean;
  readonly expireAfter?: number;
  readonly identity?: string;
  readonly oversign?: readonly string[];
  readonly d?: string;
  readonly nosign?: boolean;
}

export interface TableLine {
  /** 1-based, for messages. */
  readonly number: number;
  /** Canonical domain, or '*'. */
  readonly domain: string;
  readonly keypath: string;
  readonly options: LineOptions;
  /** Why the line cannot be used; the other fields are then what could be read. */
  readonly problem?: string;
}

export type SigningTable = readonly TableLine[];

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** x= beyond ten years is a mistake rather than a policy. */
const MAX_EXPIRY = 10 * 365 * 86400;

/** The lines of control/dkimkeys, comments and empty lines left out. */
export function parseTable(lines: readonly string[]): SigningTable {
  const table: TableLine[] = [];
  lines.forEach((raw, index) => {
    const text = raw.trim();
    if (text === '' || text.startsWith('#')) return;
    table.push(parseLine(text, index + 1));
  });
  return table;
}

function parseLine(text: string, number: number): TableLine {
  const first = text.indexOf(':');
  const rawDomain = first === -1 ? text : text.slice(0, first);
  const rest = first === -1 ? '' : text.slice(first + 1);
  const second = rest.indexOf(':');
  const keypath = (second === -1 ? rest : rest.slice(0, second)).trim();
  const optionText = second === -1 ? '' : rest.slice(second + 1);
  const domain = rawDomain.trim() === '*' ? '*' : canonicalDomain(rawDomain.trim());
  const base = { number, domain: domain ?? rawDomain.trim().toLowerCase(), keypath, options: {} };
  if (domain === null) return { ...base, problem: `not a domain: ${JSON.stringify(rawDomain.slice(0, 80))}` };
  const options = parseOptions(optionText);
  if (typeof options === 'string') return { ...base, problem: options };
  if (keypath === '' && !options.nosign) return { ...base, options, problem: 'no key path' };
  return { ...base, options };
}

function parseOptions(text: string): LineOptions | string {
  const options: { -readonly [K in keyof LineOptions]: LineOptions[K] } = {};
  for (const raw of text.split(',')) {
    const option = raw.trim();
    if (option === '') continue;
    const eq = option.indexOf('=');
    const name = (eq === -1 ? option : option.slice(0, eq)).toLowerCase();
    const value = eq === -1 ? '' : option.slice(eq + 1).trim();
    if (name === 'rsa-sha256' || name === 'ed25519-sha256') options.algorithm = name;
    else if (name === 'nosign') options.nosign = true;
    else if (name === 'dk' && (value === 'no' || value === 'yes')) options.dk = value === 'yes';
    else if (name === 'x' && /^\d{1,9}$/.test(value) && Number(value) > 0 && Number(value) <= MAX_EXPIRY) options.expireAfter = Number(value);
    else if (name === 'i' && /^[^\s;@]*@[A-Za-z0-9.-]+$/.test(value)) options.identity = value;
    else if (name === 'd' && canonicalDomain(value) !== null) options.d = canonicalDomain(value) as string;
    else if (name === 'oversign' && value.split(':').every((field) => FIELD_NAME.test(field))) {
      options.oversign = value.split(':').map((field) => field.toLowerCase());
    } else return `not an option: ${JSON.stringify(option.slice(0, 80))}`;
  }
  return options;
}

/**
 * The lines for `domain`: those of the most specific domain that has any (the domain itself,
 * then its parents, then `*`). Lines with problems are included: the caller defers on them.
 */
export function linesFor(table: SigningTable, domain: string): { readonly matched: string; readonly lines: readonly TableLine[] } | null {
  for (const candidate of [...parentDomains(domain), '*']) {
    const lines = table.filter((line) => line.domain === candidate);
    if (lines.length > 0) return { matched: candidate, lines };
  }
  return null;
}

/**
 * The domain a line's key is for, given the message's signing domain: d= when the line sets
 * it; the message's domain (its parents tried, as for control/dksign) when the path has `%` or
 * the line is for `*`; else the line's own domain.
 */
export function keyDomain(line: TableLine, domain: string): string {
  return line.options.d ?? (line.keypath.includes('%') || line.domain === '*' ? domain : line.domain);
}
