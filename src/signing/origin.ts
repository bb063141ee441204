// Where a message came from, as far as signing and sealing care (docs/signing.md, "Forwarded
// mail"): from outside, when it carries the Authentication-Results field qmail-dkverify wrote
// on entry with an entry mark that verifies (src/mail/entry-mark.ts); else local, which is how
// it has always been signed. A mark that does not verify (a local user's forgery, a mark moved
// from another message, a stale one, no shared key) is the same as none, and said so.
import { entryFacts, markVerifies, splitMark, type EntryFacts } from '../mail/entry-mark.ts';
import type { MessageSource } from '../mail/message.ts';
import type { Head } from '../mail/header.ts';
import { headerBeyondBounds } from '../mail/header-bounds.ts';

/** What qmail-dkverify recorded on entry, read back from its own field. */
export interface Claims {
  /** header.d of every dkim=pass. */
  readonly dkimPass: readonly string[];
  /** header.from of a dmarc=pass. */
  readonly dmarcPass: readonly string[];
  /** The arc= result: the chain's state on entry. */
  readonly arc: string;
}

export type Origin =
  | { readonly kind: 'local'; readonly note?: string }
  | {
      readonly kind: 'outside';
      readonly facts: EntryFacts;
      readonly claims: Claims;
      /** The field's results (authserv-id first) without the mark: the ARC-Authentication-Results payload. */
      readonly results: string;
      /** Why mailauth may not be given this header to seal (src/mail/header-bounds.ts), if so. */
      readonly unsealable?: string;
    };

export interface OriginOptions {
  /**
   * control/entrykey; null: no mark is believed. Asked for only when a field carries a mark, so
   * mail without one (nearly all) reads no key file.
   */
  readonly key: () => Buffer | null;
  /** Seconds since the epoch. */
  readonly now: number;
  /** How old a mark may be, in seconds: qmail-send's queue lifetime and a day. */
  readonly maxAge: number;
}

/** Authentication-Results fields looked at, from the top: a stranger may write thousands. */
const MAX_FIELDS = 32;
/** A mark from the future by more than this is not one of ours. */
const CLOCK_SKEW = 3600;

export function originOf(head: Head, source: MessageSource, options: OriginOptions): Origin {
  const marked = head.fields
    .filter((field) => field.key === 'authentication-results')
    .slice(0, MAX_FIELDS)
    .flatMap((field) => {
      const raw = field.raw.toString('latin1');
      const mark = splitMark(raw.slice(raw.indexOf(':') + 1));
      return mark ? [mark] : [];
    });
  if (marked.length === 0) return { kind: 'local' };
  const key = options.key();
  if (key === null) return { kind: 'local', note: 'an entry mark, but no control/entrykey to check it with: local mail' };
  let here: EntryFacts | null = null;
  for (const mark of marked) {
    const { t } = mark.facts;
    if (t > options.now + CLOCK_SKEW || options.now - t > options.maxAge) continue;
    if (!markVerifies(key, mark)) continue;
    here ??= entryFacts(source, options.now);
    if (here.bh !== mark.facts.bh) continue;
    const beyond = headerBeyondBounds(head);
    return { kind: 'outside', facts: mark.facts, claims: claimsOf(mark.results), results: mark.results.trim(), ...(beyond ? { unsealable: beyond } : {}) };
  }
  return { kind: 'local', note: 'an entry mark that does not verify (forged, stale or from another message): local mail' };
}

/**
 * Whether entry authenticated `domain`: dkim=pass with header.d that domain or a parent of it,
 * or dmarc=pass for it.
 */
export function authenticatedOnEntry(claims: Claims, domain: string): boolean {
  const underOrAt = (d: string): boolean => domain === d || domain.endsWith(`.${d}`);
  return claims.dkimPass.some(underOrAt) || claims.dmarcPass.includes(domain);
}

/** The results of our own field (src/verify/auth-results.ts writes it): method=result and ptype.property=value. */
export function claimsOf(results: string): Claims {
  const dkimPass: string[] = [];
  const dmarcPass: string[] = [];
  let arc = 'none';
  for (const resinfo of segments(results).slice(1)) {
    const [methodspec, ...props] = resinfo;
    const [method, result] = (methodspec ?? '').split('=');
    const prop = (name: string): string | undefined =>
      props.find((p) => p.toLowerCase().startsWith(`${name}=`))?.slice(name.length + 1).toLowerCase();
    if (method === 'dkim' && result === 'pass') dkimPass.push(prop('header.d') ?? '');
    if (method === 'dmarc' && result === 'pass') dmarcPass.push(prop('header.from') ?? '');
    if (method === 'arc' && result !== undefined) arc = result;
  }
  return { dkimPass: dkimPass.filter(Boolean), dmarcPass: dmarcPass.filter(Boolean), arc };
}

/** The field split at ';' into words, comments dropped and quoted strings unquoted. */
function segments(text: string): string[][] {
  const out: string[][] = [[]];
  let word = '';
  let depth = 0;
  let quoted = false;
  const endWord = (): void => {
    if (word !== '') (out[out.length - 1] as string[]).push(word);
    word = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && (quoted || depth > 0)) {
      if (quoted) word += text[i + 1] ?? '';
      i++;
    } else if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (quoted) {
      if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') quoted = true;
    else if (c === '(') {
      endWord();
      depth = 1;
    } else if (c === ';') {
      endWord();
      out.push([]);
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\n') endWord();
    else word += c;
  }
  endWord();
  return out;
}
