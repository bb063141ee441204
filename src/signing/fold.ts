// Folding of the signature header fields we write. Folding whitespace is free in both
// signatures — relaxed canonicalization unfolds it, and a DomainKey-Signature does not cover
// itself — so lines are folded only to stay readable and well under 998 bytes.
const WIDTH = 76;

/** "Name: tag; tag; ..." folded between tags, long values split, each line ≤ WIDTH where possible. */
export function foldTags(name: string, tags: readonly string[]): string {
  let out = `${name}:`;
  let lineLength = out.length;
  tags.forEach((tag, index) => {
    const text = index < tags.length - 1 ? `${tag};` : tag;
    if (lineLength + 1 + text.length <= WIDTH) {
      out += ` ${text}`;
      lineLength += 1 + text.length;
      return;
    }
    for (const piece of split(text, WIDTH - 1)) {
      out += `\r\n\t${piece}`;
      lineLength = 1 + piece.length;
    }
  });
  return out + '\r\n';
}

/** A tag too long for one line, cut after ':' (h=) or anywhere (b=), into pieces of at most `width`. */
function split(text: string, width: number): string[] {
  if (text.length <= width) return [text];
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > width) {
    const colon = rest.lastIndexOf(':', width - 1);
    const cut = !rest.startsWith('b=') && colon > 0 ? colon + 1 : width;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  pieces.push(rest);
  return pieces;
}
