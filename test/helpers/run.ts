// Running a program as the tests need it: asynchronously (a server in the test process must
// keep answering while the child runs), with fd 0 a file descriptor, bytes written to a pipe,
// or nothing, and both outputs collected whole as bytes.
import { spawn } from 'node:child_process';

export interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  /** latin1: one character per byte, so reports and replies keep every byte. */
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** A file descriptor for fd 0, or bytes to write to it; nothing (/dev/null) when absent. */
  readonly stdin?: number | Buffer;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Runs `command args…` to its end. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<Run> {
  const stdin = options.stdin;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [typeof stdin === 'number' ? stdin : stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (status, signal) =>
      resolve({ status, signal, stdout: Buffer.concat(out).toString('latin1'), stderr: Buffer.concat(err).toString('latin1') }),
    );
    if (Buffer.isBuffer(stdin)) {
      child.stdin?.on('error', () => undefined); // a child that exits without reading its input
      child.stdin?.end(stdin);
    }
  });
}

/** Runs a Node script with the Node running the tests. */
export function runNode(script: string, args: readonly string[], options: RunOptions = {}): Promise<Run> {
  return run(process.execPath, [script, ...args], options);
}
