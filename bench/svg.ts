// A small SVG line chart, enough for the bench's size plot: linear axes from zero with round
// ticks, one polyline per series with its points marked, optional min–max whiskers and a
// dashed reference line. No dependencies; the output is plain SVG 1.1 text.

export interface Point {
  readonly x: number;
  readonly y: number;
  readonly lo?: number;
  readonly hi?: number;
}

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: readonly Point[];
}

export interface Chart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly reference?: { readonly y: number; readonly label: string };
}

const WIDTH = 440;
const HEIGHT = 320;
const MARGIN = { left: 64, right: 16, top: 36, bottom: 76 };

const escape = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/0+$/, '').replace(/\.$/, ''));

/** Round tick steps (1, 2, 5 × 10^k) covering 0..max in about five steps. */
export function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
  const out: number[] = [];
  for (let t = 0; t < max + step / 2; t += step) out.push(Number(t.toPrecision(12)));
  if ((out.at(-1) as number) < max) out.push(Number(((out.at(-1) as number) + step).toPrecision(12)));
  return out;
}

function chart(c: Chart, offsetX: number): string {
  const xs = c.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = c.series.flatMap((s) => s.points.map((p) => p.hi ?? p.y));
  if (c.reference) ys.push(c.reference.y);
  const xTicks = ticks(Math.max(...xs));
  const yTicks = ticks(Math.max(...ys));
  const xMax = xTicks.at(-1) as number;
  const yMax = yTicks.at(-1) as number;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number): number => offsetX + MARGIN.left + (x / xMax) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - (y / yMax) * plotH;
  const parts: string[] = [];

  parts.push(`<text x="${px(xMax / 2)}" y="20" text-anchor="middle" font-weight="bold">${escape(c.title)}</text>`);
  for (const t of yTicks) {
    parts.push(`<line x1="${px(0)}" x2="${px(xMax)}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${px(0) - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${py(0)}" y2="${py(0) + 4}" stroke="#333"/>`);
    parts.push(`<text x="${px(t)}" y="${py(0) + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${px(0)}" x2="${px(xMax)}" y1="${py(0)}" y2="${py(0)}" stroke="#333"/>`);
  parts.push(`<line x1="${px(0)}" x2="${px(0)}" y1="${py(0)}" y2="${py(yMax)}" stroke="#333"/>`);
  parts.push(`<text x="${px(xMax / 2)}" y="${py(0) + 36}" text-anchor="middle">${escape(c.xLabel)}</text>`);
  const yMid = py(yMax / 2);
  parts.push(`<text x="${offsetX + 16}" y="${yMid}" text-anchor="middle" transform="rotate(-90 ${offsetX + 16} ${yMid})">${escape(c.yLabel)}</text>`);

  if (c.reference) {
    const y = py(c.reference.y);
    parts.push(`<line x1="${px(0)}" x2="${px(xMax)}" y1="${y}" y2="${y}" stroke="#c00" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${px(xMax) - 4}" y="${y - 5}" text-anchor="end" fill="#c00">${escape(c.reference.label)}</text>`);
  }
  for (const s of c.series) {
    const points = [...s.points].sort((a, b) => a.x - b.x);
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of points) {
      if (p.lo !== undefined && p.hi !== undefined) {
        parts.push(`<line x1="${px(p.x)}" x2="${px(p.x)}" y1="${py(p.lo).toFixed(1)}" y2="${py(p.hi).toFixed(1)}" stroke="${s.color}"/>`);
      }
      parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${escape(`${s.name}: ${fmt(p.x)} → ${p.y.toFixed(3)}`)}</title></circle>`);
    }
  }
  c.series.forEach((s, i) => {
    const x = offsetX + MARGIN.left + i * 170;
    const y = HEIGHT - 16;
    parts.push(`<line x1="${x}" x2="${x + 18}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${x + 24}" y="${y}">${escape(s.name)}</text>`);
  });
  return parts.join('\n');
}

/** Charts side by side in one SVG document. */
export function svgCharts(charts: readonly Chart[], caption: string): string {
  const width = WIDTH * charts.length;
  const height = HEIGHT + 22;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...charts.map((c, i) => chart(c, i * WIDTH)),
    `<text x="8" y="${height - 4}" font-size="10" fill="#555">${escape(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
