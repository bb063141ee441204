// Which domain signs a message: that of the Sender: header if there is one, else From:
// (the bltweb qmail DKIM patch, docs/qmail-remote.md §7). Both come from strangers and the result is spliced
// into a file path, so this module only extracts text; keys.ts decides whether it is a domain.
//
// Address lists are read as RFC 5322 mailbox lists: display names, comments, quoted local
// parts, angle addresses and groups. With several mailboxes the first one that has an
// address wins — the author a reader sees first.
import { fieldValue, type Head } from './header.ts';

export type DomainSource =
  | { found: true; header: 'Sender' | 'From'; domain: string }
  | { found: false; reason: string };

export function keyDomainSource(head: Head): DomainSource {
  const sender = head.fields.find((field) => field.key === 'sender');
  const from = head.fields.find((field) => field.key === 'from');
  const field = sender ?? from;
  if (!field) return { found: false, reason: 'no From: or Sender: header' };
  const header = sender ? 'Sender' : 'From';
  const domain = firstMailboxDomain(fieldValue(field).toString('utf8'));
  if (domain === null) return { found: false, reason: `no address in the ${header}: header` };
  return { found: true, header, domain };
}

type Token = { kind: 'atom' | 'quoted' | 'literal'; text: string } | { kind: 'special'; text: string };

/** The domain of the first mailbox in an address list, or null if none has one. */
export function firstMailboxDomain(value: string): string | null {
  return mailboxAddresses(value)[0]?.domain ?? null;
}

/**
 * Every mailbox of an address list that has a domain, as local part and domain, read the way
 * firstMailboxDomain() reads them: a quoted display name ("<ceo@bank.test>") is a name, not an
 * address. At most `limit` of them: a stranger writes the list.
 */
export function mailboxAddresses(value: string, limit = 64): { local: string; domain: string }[] {
  const found: { local: string; domain: string }[] = [];
  for (const mailbox of mailboxes(tokenize(value))) {
    const at = mailbox.map((token) => token.kind === 'special' && token.text === '@').lastIndexOf(true);
    if (at === -1) continue;
    const text = (tokens: Token[]): string => tokens.map((token) => token.text).join('');
    const domain = text(mailbox.slice(at + 1));
    if (domain === '') continue;
    found.push({ local: text(mailbox.slice(0, at)), domain });
    if (found.length >= limit) break;
  }
  return found;
}

/** Splits tokens into mailboxes, keeping the address of an angle address and dropping group names. */
function* mailboxes(tokens: Token[]): Generator<Token[]> {
  let current: Token[] = [];
  let angle: Token[] | null = null;
  let inAngle = false;
  const flush = function* (): Generator<Token[]> {
    const mailbox = angle ?? current;
    if (mailbox.length > 0) yield mailbox;
    current = [];
    angle = null;
  };
  for (const token of tokens) {
    if (token.kind !== 'special') {
      (inAngle ? (angle ??= []) : current).push(token);
      continue;
    }
    switch (token.text) {
      case '<':
        inAngle = true;
        angle = [];
        break;
      case '>':
        inAngle = false;
        break;
      case ':':
        // A group's display name, or a source route inside <@a,@b:x@y>: both end here.
        if (inAngle) angle = [];
        else current = [];
        break;
      case ',':
      case ';':
        if (!inAngle) yield* flush();
        else angle = [];
        break;
      default:
        (inAngle ? (angle ??= []) : current).push(token);
    }
  }
  yield* flush();
}

function tokenize(value: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i] as string;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      i = skipComment(value, i);
    } else if (c === '"') {
      const end = closing(value, i + 1, '"');
      tokens.push({ kind: 'quoted', text: value.slice(i, end + 1) });
      i = end + 1;
    } else if (c === '[') {
      const end = closing(value, i + 1, ']');
      tokens.push({ kind: 'literal', text: value.slice(i, end + 1) });
      i = end + 1;
    } else if ('<>@,;:'.includes(c)) {
      tokens.push({ kind: 'special', text: c });
      i++;
    } else {
      let end = i;
      while (end < value.length && !' \t\r\n()"[<>@,;:'.includes(value[end] as string)) end++;
      tokens.push({ kind: 'atom', text: value.slice(i, end) });
      i = end;
    }
  }
  return tokens;
}

/** Index of the unescaped `close` from `start`, or the end of the text when it never comes. */
function closing(value: string, start: number, close: string): number {
  let i = start;
  while (i < value.length && value[i] !== close) i += value[i] === '\\' ? 2 : 1;
  return Math.min(i, value.length);
}

function skipComment(value: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < value.length) {
    const c = value[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
    i++;
  }
  return i;
}
