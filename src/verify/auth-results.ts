// The one Authentication-Results header field this program adds (RFC 8601), and the test for
// one already in the message that claims to be ours (§5: it is renamed, never trusted).
import type { DkResult } from './domainkeys.ts';
import type { DkimEntry } from './dkim-results.ts';
import type { AuthStatus } from './mailauth-checks.ts';

export interface Results {
  readonly dkim: readonly DkimEntry[];
  readonly dk: DkResult;
  readonly spf: AuthStatus;
  readonly dmarc: AuthStatus;
  readonly arc: AuthStatus;
}

const MAX_VALUE = 200;
const RESULT = /^[a-z]+$/;
// RFC 2045 token characters, and '@' and '.' for the address and domain forms of RFC 8601 pvalue.
const PLAIN_VALUE = /^[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+$/;

/** A comment's text: printable ASCII only, parentheses and backslashes escaped, bounded. */
function comment(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_VALUE);
  return `(${clean.replace(/[()\\]/g, (c) => `\\${c}`)})`;
}

/** A property value as a token (or addr-spec), else as a quoted-string; bounded. */
function value(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_VALUE);
  if (PLAIN_VALUE.test(clean) && !clean.startsWith('@')) return clean;
  return `"${clean.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** One result as its parts (method=result, comment, properties), each well under 998 octets. */
function resinfo(method: string, result: string, why: string | undefined | false, props: [string, unknown][]): string[] {
  const parts = [`${method}=${RESULT.test(result) ? result : 'permerror'}`];
  if (why) parts.push(comment(why));
  for (const [name, prop] of props) {
    if (typeof prop === 'string' && prop !== '') parts.push(`${name}=${value(prop)}`);
  }
  return parts;
}

/** mailauth's SPF, DMARC and ARC statuses: result, comment, then smtp.*, header.*, policy.*. */
function fromStatus(method: string, status: AuthStatus): string[] {
  const props: [string, unknown][] = [];
  for (const ptype of ['smtp', 'header', 'policy'] as const) {
    for (const [name, prop] of Object.entries(status[ptype] ?? {})) props.push([`${ptype}.${name}`, prop]);
  }
  return resinfo(method, status.result, status.comment, props);
}

function dkimInfo(entry: DkimEntry): string[] {
  if (entry.result === 'none') return resinfo('dkim', 'none', entry.comment, []);
  return resinfo('dkim', entry.result, entry.comment, [
    ['header.d', entry.d], ['header.s', entry.s], ['header.a', entry.a], ['header.b', entry.b],
  ]);
}

function dkInfo(dk: DkResult): string[] {
  const props: [string, unknown][] = [['header.d', dk.domain]];
  if (dk.identity) props.push([`header.${dk.identity.header}`, dk.identity.address]);
  return resinfo('domainkeys', dk.result, dk.comment, props);
}

// A result goes on as many lines as it needs: a part (at most ~420 octets, comments and values
// being bounded and escaped) starts a new line when the line would pass this length, so no
// line comes near RFC 5322's 998.
const FOLD_AT = 78;

const NAME = 'Authentication-Results:';

/**
 * The header field, each result starting a line, folded between parts, each line ending in `eol`.
 * `mark`, given the field's value, returns the entry mark that ends it (src/mail/entry-mark.ts).
 */
export function authResultsField(authservId: string, results: Results, eol: string, mark?: (value: string) => string): Buffer {
  const entries = [
    ...results.dkim.map(dkimInfo),
    dkInfo(results.dk),
    fromStatus('spf', results.spf),
    fromStatus('dmarc', results.dmarc),
    fromStatus('arc', results.arc),
  ];
  const lines = [`${NAME} ${value(authservId)};`];
  entries.forEach((parts, index) => {
    let line = '';
    for (const part of parts) {
      if (line !== '' && line.length + 1 + part.length > FOLD_AT) {
        lines.push(line);
        line = `\t${part}`;
      } else line = line === '' ? `\t${part}` : `${line} ${part}`;
    }
    lines.push(index < entries.length - 1 ? `${line};` : line);
  });
  if (mark) lines.push(`\t${mark(lines.join(eol).slice(NAME.length))}`);
  return Buffer.from(`${lines.join(eol)}${eol}`, 'latin1');
}

/**
 * The authserv-id of an Authentication-Results field value: the first token after any
 * comments and white space, or the quoted-string there, unquoted; lowercased.
 */
export function authservIdOf(fieldValue: string): string | null {
  let rest = fieldValue;
  for (;;) {
    rest = rest.replace(/^[ \t\r\n]+/, '');
    if (!rest.startsWith('(')) break;
    const end = commentEnd(rest);
    if (end === -1) return null;
    rest = rest.slice(end);
  }
  if (rest.startsWith('"')) {
    const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
    return quoted ? (quoted[1] ?? '').replace(/\\(.)/g, '$1').toLowerCase() : null;
  }
  const token = /^[^ \t\r\n;()"]+/.exec(rest);
  return token ? token[0].toLowerCase() : null;
}

function commentEnd(text: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return -1;
}
