// SVG pieces the bench charts share: text escaping and the line chart bench/soak.ts draws from its
// samples (bench/chart.ts draws the bar charts from RESULTS.md tables).

/** Text for an SVG text node (the `*` of Markdown bold dropped). */
export const escape = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/\*/g, "");

/** One line of a line chart: its label and its points, x ascending. */
export interface Series {
  label: string;
  points: readonly (readonly [number, number])[];
}

const COLOURS = ["#4878a8", "#c8553d", "#3d9a50", "#8a5fb0", "#b08a2e"];

/**
 * A line chart of `series` as an SVG document: axes from 0 to a round number above the largest
 * value, four gridlines each way, a legend, and a dashed vertical line at `markX` (with `markLabel`).
 */
export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly Series[], mark?: { x: number; label: string }): string {
  const left = 56;
  const top = 30;
  const plotWidth = 560;
  const plotHeight = 260;
  const width = left + plotWidth + 150;
  const height = top + plotHeight + 46;
  const all = series.flatMap((s) => s.points);
  const roundUp = (v: number) => {
    const step = 10 ** Math.floor(Math.log10(Math.max(v, 1e-9)));
    return Math.ceil(v / step) * step;
  };
  const maxX = roundUp(Math.max(1, ...all.map(([x]) => x)));
  const maxY = roundUp(Math.max(1, ...all.map(([, y]) => y)) * 1.1);
  const px = (x: number) => (left + (x / maxX) * plotWidth).toFixed(1);
  const py = (y: number) => (top + plotHeight - (y / maxY) * plotHeight).toFixed(1);
  const fmt = (v: number) => (Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(1));
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const x = (maxX * i) / 4;
    const y = (maxY * i) / 4;
    parts.push(`<line x1="${left}" y1="${py(y)}" x2="${left + plotWidth}" y2="${py(y)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${Number(py(y)) + 4}" text-anchor="end">${fmt(y)}</text>`,
      `<text x="${px(x)}" y="${top + plotHeight + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  parts.push(`<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="#444"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#444"/>`,
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 36}" text-anchor="middle">${escape(xLabel)}</text>`,
    `<text x="14" y="${top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + plotHeight / 2})">${escape(yLabel)}</text>`);
  if (mark) {
    parts.push(`<line x1="${px(mark.x)}" y1="${top}" x2="${px(mark.x)}" y2="${top + plotHeight}" stroke="#888" stroke-dasharray="4 3"/>`,
      `<text x="${Number(px(mark.x)) + 4}" y="${top + 12}" fill="#666">${escape(mark.label)}</text>`);
  }
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const path = s.points.map(([x, y]) => `${px(x)},${py(y)}`).join(" ");
    parts.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="1.5"/>`,
      `<line x1="${left + plotWidth + 16}" y1="${top + 8 + i * 20}" x2="${left + plotWidth + 36}" y2="${top + 8 + i * 20}" stroke="${colour}" stroke-width="3"/>`,
      `<text x="${left + plotWidth + 42}" y="${top + 12 + i * 20}">${escape(s.label)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="8" y="18" font-weight="bold">${escape(title)}</text>${parts.join("")}</svg>\n`;
}
