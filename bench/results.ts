// What one run of the bench found, as written to bench/results/latest.json, and its Markdown
// rendering (stdout, bench/results/latest.md and the generated part of docs/performance.md).
import type { Stats } from './measure.ts';

export interface Timing {
  readonly label: string;
  readonly ms: Stats;
  /**
   * CPU time (user + system) of the whole process, ms: the mean, since GNU time counts in 10 ms
   * steps and only a mean of many runs is finer than that. Null without GNU time.
   */
  readonly cpuMs: { readonly mean: number; readonly min: number; readonly max: number } | null;
  readonly samples: readonly number[];
}

export interface StartupRow extends Timing {
  /** Median minus the median of `node -e 0`. */
  readonly addedMs: number;
}

/** Peak RSS is null without GNU time. */
export interface Measured {
  readonly ms: Stats;
  readonly rssKiB: Stats | null;
}

export interface SizeRow {
  readonly mib: number;
  readonly bytes: number;
  readonly qmailRemote: Measured;
  readonly ioFloor: Measured;
}

export interface Concurrency {
  readonly deliveries: number;
  readonly concurrency: number;
  readonly wallMs: number;
  readonly perSecond: number;
  /** 1000 / median wall time of one delivery in case (a). */
  readonly sequentialPerSecond: number;
  /** CPU and peak RSS are null without GNU time. */
  readonly cpuMsPerDelivery: number | null;
  readonly singleCpuMsPerDelivery: number | null;
  readonly singleRuns: number;
  readonly singleRssKiB: Stats | null;
  /** The same deliveries through a C qmail-remote, when one was given. */
  readonly c?: { readonly wallMs: number; readonly cpuMsPerDelivery: number | null };
}

export interface Target {
  readonly name: string;
  readonly goal: string;
  readonly measured: string;
  /** null when an alternative it needs is not installed. */
  readonly pass: boolean | null;
}

export interface Results {
  readonly date: string;
  readonly quick: boolean;
  readonly environment: Readonly<Record<string, string>>;
  readonly small: { readonly bytes: number; readonly rows: readonly Timing[] };
  readonly big: { readonly bytes: number; readonly rows: readonly Timing[] };
  /** The same size of white-space-heavy text: short lines, runs of spaces and tabs, leading dots. */
  readonly bigWhitespace: { readonly bytes: number; readonly rows: readonly Timing[] };
  readonly startup: readonly StartupRow[];
  readonly concurrency: Concurrency;
  readonly sizes: readonly SizeRow[];
  readonly targets: readonly Target[];
}

export const LABELS = {
  qmailRemote: 'bin/qmail-remote (sign DK+DKIM, deliver)',
  node: 'node -e 0',
  perl: 'Mail::DKIM, Perl (sign DKIM+DK, no delivery)',
  dkimpy: 'dkimpy dkimsign, Python (sign DKIM only, no delivery)',
  ioFloor: 'I/O floor (read, SHA-256 + SHA-1, send)',
  cQmailRemote: 'C qmail-remote (no signing, deliver)',
  perlWrapper: 'Perl wrapper model (Mail::DKIM signs, then delivery)',
} as const;

const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const range = (s: Stats, f: (n: number) => string = ms): string => `${f(s.min)}–${f(s.max)}`;
const times = (n: number): string => `${n.toFixed(2)}×`;
const mib = (kib: number): string => (kib / 1024).toFixed(1);
const NA = 'n/a (no GNU time)';
const verdict = (pass: boolean | null): string => (pass === null ? 'n/a' : pass ? '**PASS**' : '**FAIL**');

const cpuOf = (row: Timing, f: (n: number) => string): string => (row.cpuMs ? f(row.cpuMs.mean) : 'n/a');

/** Wall and CPU time of `row` over those of `base`, as two table cells. */
function ratios(row: Timing, base: Timing | undefined): string {
  if (!base) return ' | ';
  const wall = times(row.ms.median / base.ms.median);
  const cpu = row.cpuMs && base.cpuMs ? times(row.cpuMs.mean / base.cpuMs.mean) : 'n/a';
  return `${wall} | ${cpu}`;
}

export function find(rows: readonly Timing[], label: string): Timing | undefined {
  return rows.find((row) => row.label === label);
}

/** `plot` is where the size plot is, relative to the Markdown file. */
export function renderMarkdown(r: Results, plot: string): string {
  const out: string[] = [];
  const env = Object.entries(r.environment).map(([k, v]) => `${k} ${v}`).join(', ');
  out.push(`Measured ${r.date}${r.quick ? ' (**--quick**: few repetitions, not for the docs)' : ''}; ${env}.`);
  out.push('');

  out.push('### Targets', '');
  out.push('| target | goal | measured | result |', '| --- | --- | --- | --- |');
  for (const t of r.targets) out.push(`| ${t.name} | ${t.goal} | ${t.measured} | ${verdict(t.pass)} |`);
  out.push('');

  const smallNode = find(r.small.rows, LABELS.node);
  const smallQr = find(r.small.rows, LABELS.qmailRemote);
  out.push(`### (a) A ${(r.small.bytes / 1024).toFixed(1)} KiB message, whole process`, '');
  out.push(`${smallQr?.ms.n ?? 0} runs each, interleaved. Wall: ratios of medians. CPU: user + system time, mean of the runs (GNU time counts in 10 ms steps).`, '');
  out.push(
    '| program | CPU ms (mean) | wall median ms | wall min–max ms | wall ÷ `node -e 0` | CPU ÷ `node -e 0` | wall ÷ qmail-remote | CPU ÷ qmail-remote |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const row of r.small.rows) {
    out.push(`| ${row.label} | ${cpuOf(row, ms)} | ${ms(row.ms.median)} | ${range(row.ms)} | ${ratios(row, smallNode)} | ${ratios(row, smallQr)} |`);
  }
  out.push('');

  const s = (n: number): string => (n / 1000).toFixed(2);
  const bigTable = (title: string, big: Results['big']): void => {
    const bigFloor = find(big.rows, LABELS.ioFloor);
    const bigQr = find(big.rows, LABELS.qmailRemote);
    out.push(`### ${title.replace('%', (big.bytes / 2 ** 20).toFixed(0))}`, '');
    out.push('Interleaved; the slow alternatives take part in fewer rounds (n). CPU as in (a).', '');
    out.push(
      '| program | n | CPU s (mean) | wall median s | wall min–max s | wall ÷ I/O floor | CPU ÷ I/O floor | wall ÷ qmail-remote | CPU ÷ qmail-remote |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const row of big.rows) {
      out.push(`| ${row.label} | ${row.ms.n} | ${cpuOf(row, s)} | ${s(row.ms.median)} | ${range(row.ms, s)} | ${ratios(row, bigFloor)} | ${ratios(row, bigQr)} |`);
    }
    out.push('');
  };
  bigTable('(b) A % MiB message, whole process', r.big);
  bigTable('(b2) A % MiB message of white-space-heavy text (short lines, runs of spaces and tabs, leading dots)', r.bigWhitespace);

  const c = r.concurrency;
  out.push(`### (c) ${c.deliveries} deliveries of the small message, ${c.concurrency} at a time`, '');
  out.push('| measure | value |', '| --- | ---: |');
  out.push(`| wall time for all | ${(c.wallMs / 1000).toFixed(2)} s |`);
  out.push(`| deliveries per second, concurrency ${c.concurrency} | ${c.perSecond.toFixed(1)} |`);
  out.push(`| deliveries per second, one at a time (1000 ÷ median of (a)) | ${c.sequentialPerSecond.toFixed(1)} |`);
  const cpu = (n: number | null): string => (n === null ? NA : `${ms(n)} ms`);
  out.push(`| CPU (user+sys) per delivery, concurrency ${c.concurrency} | ${cpu(c.cpuMsPerDelivery)} |`);
  out.push(`| CPU (user+sys) per delivery, one at a time (${c.singleRuns} runs) | ${cpu(c.singleCpuMsPerDelivery)} |`);
  if (c.cpuMsPerDelivery !== null && c.singleCpuMsPerDelivery !== null) {
    out.push(`| ratio | ${times(c.cpuMsPerDelivery / c.singleCpuMsPerDelivery)} |`);
  }
  const rss = c.singleRssKiB;
  out.push(`| peak RSS of one delivery (median, min–max) | ${rss ? `${mib(rss.median)} MiB (${range(rss, mib)})` : NA} |`);
  if (c.c) {
    out.push(`| C qmail-remote (unsigned), the same ${c.deliveries}: wall time for all | ${(c.c.wallMs / 1000).toFixed(2)} s (ours ÷ its: ${times(c.wallMs / c.c.wallMs)}) |`);
    out.push(`| C qmail-remote: CPU per delivery | ${cpu(c.c.cpuMsPerDelivery)} |`);
  }
  out.push('');

  out.push('### (d) Wall time and peak RSS against message size', '');
  out.push('Peak RSS is GNU time\'s "Maximum resident set size".', '');
  out.push('| size | qmail-remote median s (min–max) | qmail-remote peak RSS MiB | I/O floor median s | I/O floor peak RSS MiB | ÷ floor |');
  out.push('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of r.sizes) {
    const q = row.qmailRemote;
    const f = row.ioFloor;
    const rss = (m: Measured): string => (m.rssKiB ? mib(m.rssKiB.median) : NA);
    out.push(`| ${row.mib} MiB | ${s(q.ms.median)} (${range(q.ms, s)}) | ${rss(q)} | ${s(f.ms.median)} | ${rss(f)} | ${times(q.ms.median / f.ms.median)} |`);
  }
  out.push('', `![Wall time and peak RSS against message size](${plot})`, '');

  out.push('### Start-up breakdown (what one delivery of the small message spends where)', '');
  out.push('Each row is a whole `node` process; "added" is its median minus that of `node -e 0`.', '');
  out.push('| process | median ms | min–max ms | added ms |', '| --- | ---: | ---: | ---: |');
  for (const row of r.startup) out.push(`| ${row.label} | ${ms(row.ms.median)} | ${range(row.ms)} | ${ms(row.addedMs)} |`);
  out.push('');
  return out.join('\n');
}
