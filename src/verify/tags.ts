// Tag lists (RFC 4870 §3.2, RFC 6376 §3.2): "name=value; name=value", white space around
// names and values ignored. A list with a part that is not name=value, or a name twice, is not
// a tag list at all.
export type Tags = ReadonlyMap<string, string>;

export function parseTags(text: string): Tags | null {
  const tags = new Map<string, string>();
  const parts = text.split(';');
  // One final ";" is allowed.
  if (parts.length > 1 && (parts[parts.length - 1] ?? '').trim() === '') parts.pop();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq === -1) {
      if (part.trim() === '' && parts.length === 1) continue;
      return null;
    }
    const name = part.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || tags.has(name)) return null;
    tags.set(name, part.slice(eq + 1).trim());
  }
  return tags;
}
