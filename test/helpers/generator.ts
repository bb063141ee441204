// A small deterministic generator for generated test inputs, so a failure names a reproducible
// case: `next(n)` is a number from 0 to n - 1, the same sequence for the same seed.
export function generator(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
}
