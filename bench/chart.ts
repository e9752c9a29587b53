/**
 * A small SVG line chart writer for the bench (no dependency): panels side by side in a grid, each
 * with a log-scale x axis (N), a linear y axis from 0, one line per series (dashed for baselines and
 * targets) and a legend.
 */

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const W = 480;
const H = 320;
const M = { l: 58, r: 16, t: 34, b: 44 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round step for about 5 ticks up to `max`. */
function step(max: number): number {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? raw;
}

function panel(p: Panel, ox: number, oy: number): string {
  const pts = p.series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && Number.isFinite(y));
  const xs = [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b);
  const lx0 = Math.log10(xs[0] ?? 1);
  const lx1 = Math.log10(xs.at(-1) ?? 10);
  const st = step(Math.max(1e-9, ...pts.map(([, y]) => y)) * 1.1);
  const ymax = st * Math.ceil((Math.max(1e-9, ...pts.map(([, y]) => y)) * 1.1) / st);
  const px = (x: number) => ox + M.l + ((Math.log10(x) - lx0) / Math.max(1e-9, lx1 - lx0)) * (W - M.l - M.r);
  const py = (y: number) => oy + H - M.b - (y / ymax) * (H - M.t - M.b);
  const out: string[] = [`<text x="${ox + W / 2}" y="${oy + 20}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`];
  for (let y = 0; y <= ymax + st / 2; y += st) {
    out.push(`<line x1="${ox + M.l}" x2="${ox + W - M.r}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${ox + M.l - 6}" y="${py(y) + 4}" text-anchor="end" font-size="11">${+y.toPrecision(4)}</text>`);
  }
  for (const x of xs) out.push(`<text x="${px(x)}" y="${oy + H - M.b + 16}" text-anchor="middle" font-size="11">${x}</text>`);
  out.push(`<text x="${ox + (W + M.l) / 2}" y="${oy + H - 8}" text-anchor="middle" font-size="11">N connections (log scale)</text>`);
  out.push(`<text transform="translate(${ox + 14} ${oy + (H - M.b + M.t) / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(p.yLabel)}</text>`);
  out.push(`<rect x="${ox + M.l}" y="${oy + M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#888"/>`);
  const dash = (s: Series) => (s.dashed ? ' stroke-dasharray="6 4"' : '');
  for (const s of p.series) {
    const sp = s.points.filter(([x, y]) => x > 0 && Number.isFinite(y));
    if (sp.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash(s)} points="${sp.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of sp) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  const lw = 34 + 6.2 * Math.max(0, ...p.series.map((s) => s.name.length));
  out.push(`<rect x="${ox + M.l + 4}" y="${oy + M.t + 3}" width="${lw}" height="${p.series.length * 15 + 6}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`);
  p.series.forEach((s, i) => {
    const ly = oy + M.t + 16 + i * 15;
    out.push(`<line x1="${ox + M.l + 8}" x2="${ox + M.l + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash(s)}/>`);
    out.push(`<text x="${ox + M.l + 32}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

/** The panels in a grid `cols` wide, with a caption line at the bottom. */
export function chartSvg(panels: Panel[], caption: string, cols = 2): string {
  const rows = Math.ceil(panels.length / cols);
  const width = cols * W;
  const height = rows * H + 24;
  const body = panels.map((p, i) => panel(p, (i % cols) * W, Math.floor(i / cols) * H)).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    body,
    `<text x="8" y="${height - 8}" font-size="11" fill="#555">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
