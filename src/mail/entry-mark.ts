// The entry mark: how qmail-remote tells the Authentication-Results field qmail-dkverify wrote
// when mail came in from outside from one that anybody else wrote (docs/signing.md, "Forwarded
// mail"). qmail-dkverify ends its field with a comment
//
//   (entry v=1 t=<unix time> sd=<signing domain> bh=<body hash> mac=<HMAC-SHA256>)
//
// whose MAC, keyed with control/entrykey (readable by qmail's users only), covers the field's
// results, the time, the domain whose key would sign the message (Sender:, else From:) and the
// relaxed SHA-256 hash of the body as it entered. So a local user can neither write a mark
// (no key) nor move one to another message (another body), and an old one goes stale.
//
// A message is strangers' text: the field and the mark are read with bounds, and anything that
// does not verify is no mark at all.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { readBounded } from '../common/read-bounded.ts';
import { RelaxedBodyHash } from '../canon/dkim-body.ts';
import { canonicalDomain } from './domain.ts';
import { CrlfNormalizer, type MessageSource } from './message.ts';
import { HeadReader, type Head } from './header.ts';
import { keyDomainSource } from './sender-domain.ts';

/** The control file holding the shared secret (made by `qmail-remote-dkim install`). */
export const ENTRY_KEY_FILE = 'entrykey';
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 4096;
const VERSION = '1';

/** What the mark binds, besides the field's own results. */
export interface EntryFacts {
  /** Seconds since the epoch when the message entered. */
  readonly t: number;
  /** The canonical domain of Sender:, else From:, as it entered; '' when there was none. */
  readonly sd: string;
  /** base64 SHA-256 of the body in DKIM relaxed canonical form (RFC 6376 §3.4.4). */
  readonly bh: string;
}

/** The secret, or null when there is none or it cannot be read (then nothing is marked or believed). */
export function readEntryKey(controlDir: string): Buffer | null {
  try {
    const text = readBounded(join(controlDir, ENTRY_KEY_FILE), MAX_KEY_BYTES).toString('latin1').trim();
    return text.length >= MIN_KEY_BYTES ? Buffer.from(text, 'latin1') : null;
  } catch {
    return null;
  }
}

/** The signing domain and the body hash of a message, read in one pass. */
export function entryFacts(source: MessageSource, t: number): EntryFacts {
  const reader = new HeadReader();
  const normalizer = new CrlfNormalizer();
  const hash = new RelaxedBodyHash('sha256');
  let head: Head | null = null;
  const feed = (bytes: Buffer): void => {
    if (head !== null) {
      hash.update(bytes);
      return;
    }
    const body = reader.push(bytes);
    if (body !== null) {
      head = reader.head as Head;
      hash.update(body);
    }
  };
  for (const chunk of source.chunks()) feed(normalizer.push(chunk));
  feed(normalizer.end());
  const domainSource = keyDomainSource(head ?? reader.end());
  const sd = domainSource.found ? (canonicalDomain(domainSource.domain) ?? '') : '';
  return { t, sd, bh: hash.digest() };
}

/** The comment that ends qmail-dkverify's field; `results` is the field's value before it. */
export function markComment(key: Buffer, facts: EntryFacts, results: string): string {
  return `(entry v=${VERSION} t=${facts.t} sd=${facts.sd} bh=${facts.bh} mac=${mac(key, facts, results)})`;
}

const MARK = /\(entry v=(\d+) t=(\d{1,12}) sd=([a-z0-9.-]{0,253}) bh=([A-Za-z0-9+/=]{44}) mac=([A-Za-z0-9+/=]{44})\)[ \t\r\n]*$/;

/** A field value split into its results and a well-formed mark, or null when it ends in none. */
export function splitMark(value: string): { results: string; facts: EntryFacts; mac: string } | null {
  // Only the end is searched: the mark is the last thing in the field, and a stranger's field
  // can be long.
  const found = MARK.exec(value.slice(-1024));
  if (!found || found[1] !== VERSION) return null;
  return {
    results: value.slice(0, value.length - found[0].length),
    facts: { t: Number(found[2]), sd: found[3] ?? '', bh: found[4] ?? '' },
    mac: found[5] ?? '',
  };
}

/** Whether `mark` was made with `key` over these results and facts. */
export function markVerifies(key: Buffer, mark: { results: string; facts: EntryFacts; mac: string }): boolean {
  const expected = Buffer.from(mac(key, mark.facts, mark.results), 'latin1');
  const given = Buffer.from(mark.mac, 'latin1');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

function mac(key: Buffer, facts: EntryFacts, results: string): string {
  return createHmac('sha256', key)
    .update(`v=${VERSION};t=${facts.t};sd=${facts.sd};bh=${facts.bh};ar=${unfolded(results)}`, 'latin1')
    .digest('base64');
}

/** The results as the MAC sees them: white space runs (line ends included) as one space. */
function unfolded(results: string): string {
  return results.replace(/[ \t\r\n]+/g, ' ').trim();
}
