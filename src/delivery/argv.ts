// The arguments qmail-rspawn gave, as bytes. qmail-remote sends the sender and recipients
// exactly as it got them, but Node decodes process.argv as UTF-8 and turns every byte that is
// not UTF-8 into U+FFFD: `caf\xe9@example.net` would go out as `caf\xef\xbf\xbd@…`. So the
// arguments are read again from the kernel's copy of them.
//
// Each argument comes back as a string with one char per byte (latin1), the form the rest of
// the delivery path carries addresses in, down to the bytes written on the wire.
//
// Where it works: Linux (and anything with a Linux-style /proc/self/cmdline). Elsewhere, or
// when that file cannot be read or does not match process.argv, the arguments are taken from
// process.argv re-encoded as UTF-8: exact for UTF-8 and ASCII addresses, while a byte that is
// not UTF-8 arrives as the three bytes of U+FFFD, as it would have without this module.
import { readFileSync } from 'node:fs';

/** The command's arguments after the script (argv[2]…), one char per byte. */
export function argumentBytes(
  argv: readonly string[] = process.argv,
  readCmdline: () => Buffer = () => readFileSync('/proc/self/cmdline'),
): string[] {
  const decoded = argv.slice(2);
  const fromKernel = kernelArguments(readCmdline, decoded);
  return fromKernel ?? decoded.map((arg) => Buffer.from(arg, 'utf8').toString('latin1'));
}

/**
 * The last `expected.length` NUL-terminated entries of /proc/self/cmdline (Node's own options
 * and the script come before them), or null unless each decodes to what Node made of it.
 */
function kernelArguments(readCmdline: () => Buffer, expected: readonly string[]): string[] | null {
  let cmdline: Buffer;
  try {
    cmdline = readCmdline();
  } catch {
    return null;
  }
  if (cmdline.length === 0 || cmdline[cmdline.length - 1] !== 0) return null;
  const entries = cmdline.subarray(0, -1).toString('latin1').split('\0');
  if (entries.length < expected.length) return null;
  const args = expected.length === 0 ? [] : entries.slice(-expected.length);
  const agrees = args.every((arg, i) => Buffer.from(arg, 'latin1').toString('utf8') === expected[i]);
  return agrees ? args : null;
}
