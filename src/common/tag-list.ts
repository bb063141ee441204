// Tag lists (RFC 6376 §3.2, RFC 4870 §3.2): "name=value; name=value", as DKIM-Signature and
// DomainKey-Signature fields and the DNS key records write them. One parser for the key audit
// and for verification, so a record the audit calls well formed is one the verifier reads.
//
// Strict where the RFC is: a part that is not name=value, a name twice, or a value with
// characters outside VALCHAR makes the whole text no tag list. White space around names and
// values is dropped; inside a value it is kept (b= and p= may be folded). One final ';' is
// allowed, and a text with nothing in it is an empty list.

// tag-name = ALPHA *ALNUMPUNC; tag-value = VALCHARs with inner white space.
const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const TAG_VALUE = /^(?:[\x21-\x3a\x3c-\x7e]+(?:[ \t\r\n]+[\x21-\x3a\x3c-\x7e]+)*)?$/;

export type TagList = ReadonlyMap<string, string>;

/** The tags in order, or why the text is not a tag list. */
export function parseTagList(text: string): Map<string, string> | string {
  const tags = new Map<string, string>();
  if (trimWsp(text) === '') return tags;
  const specs = text.split(';');
  if (specs.length > 1 && trimWsp(specs[specs.length - 1] ?? '') === '') specs.pop();
  for (const spec of specs) {
    const equals = spec.indexOf('=');
    if (equals === -1) return 'not a tag=value list';
    const name = trimWsp(spec.slice(0, equals));
    const value = trimWsp(spec.slice(equals + 1));
    if (!TAG_NAME.test(name)) return 'not a tag=value list';
    if (!TAG_VALUE.test(value)) return `bad value for ${name}=`;
    if (tags.has(name)) return `${name}= appears twice`;
    tags.set(name, value);
  }
  return tags;
}

/**
 * White space (FWS: space, tab, CR, LF) off both ends. A loop, not /[ \t\r\n]+$/: that pattern
 * retries from every position of a long inner run of spaces, and strangers write these values.
 */
function trimWsp(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isWsp(text.charCodeAt(start))) start++;
  while (end > start && isWsp(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

function isWsp(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0d || code === 0x0a;
}
