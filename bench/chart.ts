/**
 * Draws the chart that stands beside a table in RESULTS.md: one horizontal bar per row, as SVG
 * (no dependencies, readable on GitHub, JSR and npm). The figures come from the table itself, so
 * the chart cannot drift from it: each chart names its table by the heading above it and a column.
 *
 * ```sh
 * node scripts/run-ts.mjs bench/chart.ts            # redraws every chart CHARTS lists
 * ```
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { escape } from "./_svg.ts";

/** One chart: the first table under `heading` in RESULTS.md, its `column`, one bar per row. */
interface Chart {
  file: string;
  heading: string;
  column: string;
  title: string;
  /** Rows whose first cell matches are drawn; the others are left out. */
  rows?: RegExp;
}

const CHARTS: Chart[] = [
  { file: "app-hello.svg", heading: "## App server", column: "hello req/s", title: "hello behind nginx, req/s (more is better)" },
  { file: "app-download.svg", heading: "## App server", column: "1 MiB download req/s", title: "1 MiB downloads behind nginx, req/s (more is better)" },
  { file: "app-upload.svg", heading: "## App server", column: "64 MiB upload MiB/s", title: "64 MiB uploads behind nginx, MiB/s (more is better)" },
  { file: "issue12-pool-download.svg", heading: "### Issue 12: 1 MiB downloads with the body pool", column: "1 MiB download req/s", title: "1 MiB downloads behind nginx, before and after the body pool, req/s" },
  { file: "soak-bun-variants.svg", heading: "### Bun's swing: what it is, and what did not narrow it", column: "spread", title: "Bun's RSS spread in the soak, largest sample over smallest (less is better)" },
  { file: "workers-hello.svg", heading: "## Process manager", column: "hello req/s", title: "hello behind nginx on 2 cores, req/s (more is better)" },
  { file: "express-hello.svg", heading: "## Express (node:http apps)", column: "hello req/s", title: "Express hello: fcgi/node and node-fastcgi behind nginx, plain node:http, req/s" },
  { file: "proxy-hello.svg", heading: "## Proxy", column: "hello req/s", title: "PHP hello through an HTTP front, req/s (more is better)" },
  { file: "proxy-3-backends-hello.svg", heading: "### Proxy over three backends (issue 11)", column: "hello req/s", title: "PHP hello through an HTTP front over three PHP-FPM pools, req/s (more is better)" },
  { file: "proxy-profile-cpu.svg", heading: "#### On the CPU (perf): the kernel alone costs the runtimes more than all of nginx", column: "CPU µs/req", title: "front CPU per PHP hello (perf), µs (less is better)" },
  { file: "tls-hello.svg", heading: "## TLS behind HAProxy (issue 11)", column: "req/s", title: "hello behind HAProxy: plain, TLS, mutual TLS, req/s (more is better)" },
  { file: "client.svg", heading: "## Client", column: "fcgi `fetch(url)` req/s", title: "Client against PHP-FPM, req/s (more is better)" },
  { file: "access-log-hello.svg", heading: "## Access log", column: "hello req/s", title: "hello behind nginx with and without --access-log, req/s" },
  { file: "access-log-line.svg", heading: "### Access log: one line alone", column: "`AccessLog.write` µs/line", title: "one access log line: format, gather, write, µs (less is better)" },
  { file: "issue12-download.svg", heading: "### Issue 12: 1 MiB downloads after freeing written bodies on Bun", column: "1 MiB download req/s", title: "1 MiB downloads behind nginx, req/s (more is better)" },
  { file: "idle-connections.svg", heading: "## Idle connections", column: "growth", title: "RSS growth with 10 000 idle kept connections, MiB (less is better)" },
  { file: "fuzz-server-cases.svg", heading: "## Live server fuzzing", column: "cases", title: "live server fuzzing: cases in 10 minutes, all passed (more is better)" },
  { file: "fuzz-client-cases.svg", heading: "### Client fuzzer: the 10 minutes after the fixes", column: "cases", title: "client fuzzer: cases in 200 s per runtime after the fixes, all passed (more is better)" },
  { file: "issue13-hello.svg", heading: "### Issue 13 check: hello and uploads before and after", column: "hello req/s", title: "hello behind nginx before and after #13, req/s" },
  { file: "structure-hello.svg", heading: "### Issue 7 check: hello behind nginx", column: "hello req/s", title: "before and after the restructuring, req/s" },
];

const RESULTS = join(repoRoot, "bench", "RESULTS.md");

/** The cells of the first Markdown table after `heading`. */
function table(markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`RESULTS.md has no heading "${heading}"`);
  const lines = markdown.slice(start).split("\n");
  const first = lines.findIndex((line) => line.startsWith("|"));
  const rows: string[][] = [];
  for (let i = first; i < lines.length && lines[i]!.startsWith("|"); i++) {
    if (/^\|[-:| ]+\|$/.test(lines[i]!)) continue;
    rows.push(lines[i]!.split("|").slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

/** A horizontal bar chart of `bars`, as an SVG document. */
function barChart(title: string, bars: readonly { label: string; value: number }[]): string {
  const rowHeight = 22;
  // About 6.5 px a character at 12 px sans-serif: room for the longest label.
  const labelWidth = Math.max(120, Math.ceil(Math.max(...bars.map((bar) => bar.label.length)) * 6.5) + 16);
  const barWidth = 380;
  const width = labelWidth + barWidth + 80;
  const height = 34 + bars.length * rowHeight + 8;
  const max = Math.max(...bars.map((bar) => bar.value), 1);
  const body = bars.map((bar, i) => {
    const y = 30 + i * rowHeight;
    const w = Math.max(1, Math.round((bar.value / max) * barWidth));
    return `<text x="${labelWidth - 8}" y="${y + 14}" text-anchor="end">${escape(bar.label)}</text>` +
      `<rect x="${labelWidth}" y="${y + 3}" width="${w}" height="${rowHeight - 6}" fill="#4878a8"/>` +
      `<text x="${labelWidth + w + 6}" y="${y + 14}">${bar.value.toLocaleString("en-US")}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="8" y="18" font-weight="bold">${escape(title)}</text>${body.join("")}</svg>\n`;
}

{
  const markdown = readFileSync(RESULTS, "utf8");
  mkdirSync(join(repoRoot, "bench", "charts"), { recursive: true });
  for (const chart of CHARTS) {
    const [header, ...rows] = table(markdown, chart.heading);
    const column = header!.indexOf(chart.column);
    if (column < 0) throw new Error(`the table under "${chart.heading}" has no column "${chart.column}"`);
    const bars = rows
      .filter((row) => !chart.rows || chart.rows.test(row[0]!))
      .map((row) => ({ label: row[0]!, value: Number(row[column]!.replace(/[^0-9.]/g, "")) }))
      .filter((bar) => Number.isFinite(bar.value));
    writeFileSync(join(repoRoot, "bench", "charts", chart.file), barChart(chart.title, bars));
    console.log(`bench/charts/${chart.file}: ${bars.length} bars from "${chart.heading}"`);
  }
}
