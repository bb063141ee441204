// The admin commands' only way to the terminal. They are never run by qmail-rspawn, so stdout
// and stderr are theirs; keeping every write here keeps them out of the qmail-remote path.
import { writeSync } from 'node:fs';

/** A line of diagnostics on stderr (small, so a synchronous write is fine). */
export function say(text: string): void {
  writeSync(2, text.endsWith('\n') ? text : `${text}\n`);
}

/** Text or bytes for stdout, honouring back-pressure so large output is not lost on a pipe. */
export function emit(data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (error) => (error ? reject(error) : resolve()));
  });
}
