// Throughput against latency: requests/s (y) against mean end-to-end latency (x), one curve
// per target, each point labelled with its number of users N. SVG written by hand; PNG from
// the same SVG through resvg.
import * as fs from 'node:fs';
import { type TargetResult, targetLabel } from './report';

const W = 800;
const H = 520;
const M = { left: 70, right: 20, top: 50, bottom: 60 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** About 5 round ticks from 0 to at least max. */
export function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function renderSvg(targets: TargetResult[], title: string): string {
  const pts = targets.flatMap((t) => t.levels.filter((l) => l.requests > 0));
  const xt = ticks(Math.max(...pts.map((l) => l.latency_ms.mean / 1000), 0) * 1.05);
  const yt = ticks(Math.max(...pts.map((l) => l.requests_per_s), 0) * 1.05);
  const xMax = xt[xt.length - 1];
  const yMax = yt[yt.length - 1];
  const px = (s: number) => M.left + (s / xMax) * (W - M.left - M.right);
  const py = (r: number) => H - M.bottom - (r / yMax) * (H - M.top - M.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (const v of xt) {
    out.push(`<line x1="${px(v)}" y1="${M.top}" x2="${px(v)}" y2="${H - M.bottom}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${px(v)}" y="${H - M.bottom + 18}" text-anchor="middle">${v}</text>`);
  }
  for (const v of yt) {
    out.push(`<line x1="${M.left}" y1="${py(v)}" x2="${W - M.right}" y2="${py(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 8}" y="${py(v) + 4}" text-anchor="end">${v}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 18}" text-anchor="middle">mean end-to-end latency (s)</text>`);
  out.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">throughput (requests/s)</text>`);
  targets.forEach((t, i) => {
    const color = COLORS[i % COLORS.length];
    const levels = t.levels.filter((l) => l.requests > 0);
    const path = levels.map((l) => `${px(l.latency_ms.mean / 1000).toFixed(1)},${py(l.requests_per_s).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const l of levels) {
      const x = px(l.latency_ms.mean / 1000);
      const y = py(l.requests_per_s);
      out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`);
      // Labels step down per target, so coincident points stay readable.
      out.push(`<text x="${(x + 6).toFixed(1)}" y="${(y - 6 + 11 * i).toFixed(1)}" fill="${color}" font-size="10">N=${l.concurrency}</text>`);
    }
    const ly = M.top + 16 + i * 18;
    out.push(`<line x1="${M.left + 12}" y1="${ly - 4}" x2="${M.left + 36}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${M.left + 42}" y="${ly}">${esc(targetLabel(t))}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes BASE.svg and BASE.png; returns their paths. */
export async function writePlot(base: string, targets: TargetResult[], title: string): Promise<string[]> {
  const svg = renderSvg(targets, title);
  fs.writeFileSync(`${base}.svg`, svg);
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 1.5 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } })
    .render().asPng();
  fs.writeFileSync(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}
