// Exhaustive inputs for the stand-ins' tests: every short string over a small alphabet.

/** Every string of up to `max` characters over `alphabet`, shortest first. */
export function* allStrings(alphabet: string, max: number): Generator<string> {
  let layer = [''];
  for (let length = 0; length <= max; length += 1) {
    yield* layer;
    layer = layer.flatMap((prefix) => [...alphabet].map((c) => prefix + c));
  }
}
