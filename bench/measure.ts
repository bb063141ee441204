// Whole-process measurements: one child per run, its stdin a file opened here (seekable, as
// qmail-send gives the queue file), its stdout /dev/null unless asked for. Wall time is taken
// in this process from just before spawn to the child's exit, the same way for every
// alternative, so what the spawn itself costs cancels out of the ratios.
//
// CPU time and peak RSS come from GNU time (Debian package `time`), which reads them from
// wait4(2): Node's child_process does not expose a child's rusage.
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GNU_TIME = '/usr/bin/time';

/**
 * Every child runs with this environment (plus what its command adds), as qmail-send gives
 * qmail-remote a small one: variables of the shell that started the bench (NODE_OPTIONS,
 * NODE_EXTRA_CA_CERTS, PERL5OPT, PYTHON*...) would otherwise change what is measured.
 */
export const BASE_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };

export interface Command {
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
  /** A file to open as the child's fd 0. */
  readonly stdin?: string;
  /** Added to BASE_ENV. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface Sample {
  readonly ms: number;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** Only when run with rusage: user and system CPU seconds and peak RSS in KiB. */
  readonly user?: number;
  readonly sys?: number;
  readonly maxRssKiB?: number;
}

export interface RunOptions {
  /** Wrap the child in GNU time, when there is one, to get its CPU time and peak RSS. */
  readonly rusage?: boolean;
  /** Keep the child's stdout (otherwise it goes to /dev/null). */
  readonly captureStdout?: boolean;
}

const RUSAGE_TAG = 'bench-rusage';

// GNU time prints CPU seconds truncated to hundredths (tv_usec / 10000), so each figure is
// on average half a hundredth low; adding it back makes the mean of many runs unbiased.
// %M is ru_maxrss in KiB: the "Maximum resident set size" line of `time -v`.
const HALF_TICK = 0.005;
const TIME_FORMAT = `${RUSAGE_TAG} %U %S %M`;

/** Without GNU time (Debian package `time`) the bench still runs, without CPU and RSS figures. */
export const HAS_GNU_TIME = existsSync(GNU_TIME);

export async function runOnce(command: Command, options: RunOptions = {}): Promise<Sample> {
  const stdin = command.stdin === undefined ? 'ignore' : openSync(command.stdin, 'r');
  const stdout = options.captureStdout ? 'pipe' : openSync('/dev/null', 'w');
  const rusage = options.rusage === true && HAS_GNU_TIME;
  const [file, args] = rusage
    ? [GNU_TIME, ['-f', TIME_FORMAT, command.file, ...command.args]]
    : [command.file, [...command.args]];
  try {
    const started = process.hrtime.bigint();
    const child = spawn(file, args, { stdio: [stdin, stdout, 'pipe'], env: { ...BASE_ENV, ...command.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (status) => resolve(status));
    });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    let stderr = Buffer.concat(err).toString();
    let usage: Pick<Sample, 'user' | 'sys' | 'maxRssKiB'> = {};
    if (rusage) {
      const lines = stderr.trimEnd().split('\n');
      const match = /^bench-rusage (\S+) (\S+) (\d+)$/.exec(lines.at(-1) ?? '');
      if (!match) throw new Error(`${command.label}: no rusage line from ${GNU_TIME}: ${stderr}`);
      usage = {
        user: Number(match[1]) + HALF_TICK,
        sys: Number(match[2]) + HALF_TICK,
        maxRssKiB: Number(match[3]),
      };
      stderr = lines.slice(0, -1).join('\n');
    }
    if (code !== 0) throw new Error(`${command.label} exited with ${String(code)}: ${stderr.slice(0, 500)}`);
    return { ms, stdout: Buffer.concat(out), stderr, ...usage };
  } finally {
    if (typeof stdin === 'number') closeSync(stdin);
    if (typeof stdout === 'number') closeSync(stdout);
  }
}

export interface Stats {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function stats(values: readonly number[]): Stats {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { n: sorted.length, median, min: sorted[0] as number, max: sorted.at(-1) as number };
}

export const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/**
 * Runs every command `rounds` times, round by round, each round in a rotated order, so that
 * slow drift of the machine (frequency, page cache, a neighbour) falls on all of them alike
 * and none is always first or last. A command with `rounds` of its own takes part only in the
 * first that many rounds (the slow alternatives of the big cases).
 */
export async function interleave(
  commands: readonly (Command & { rounds?: number })[],
  rounds: number,
  options: RunOptions & { check?: (command: Command, sample: Sample) => void } = {},
): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(commands.map((c) => [c.label, []]));
  for (let round = 0; round < rounds; round += 1) {
    for (let i = 0; i < commands.length; i += 1) {
      const command = commands[(i + round) % commands.length] as Command & { rounds?: number };
      if (round >= (command.rounds ?? rounds)) continue;
      const sample = await runOnce(command, options);
      options.check?.(command, sample);
      samples.get(command.label)?.push(sample);
    }
  }
  return samples;
}

/** Runs `total` commands with at most `concurrency` alive at once; returns the samples and the wall time. */
export async function pool(
  make: (i: number) => Command,
  total: number,
  concurrency: number,
  options: RunOptions,
): Promise<{ samples: Sample[]; ms: number }> {
  const samples: Sample[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next;
      next += 1;
      samples.push(await runOnce(make(i), options));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return { samples, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

/**
 * bin/ and `bundles` copied under `dir` without their code caches (bin/run-bundle.cjs), its
 * packages found through a link to ours: the launcher `launcher` of that copy.
 */
export function untrainedCopy(dir: string, launcher: string, ...bundles: string[]): string {
  const ROOT = fileURLToPath(new URL('..', import.meta.url));
  const root = join(dir, 'untrained');
  cpSync(join(ROOT, 'bin'), join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'dist'), { recursive: true });
  for (const bundle of bundles) copyFileSync(join(ROOT, 'dist', bundle), join(root, 'dist', bundle));
  if (!existsSync(join(root, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  return join(root, 'bin', launcher);
}
