// Question: what does one access log line cost the request that writes it, and how much of that is
// the write(2) of the 64 KiB chunks rather than the formatting? (bench/nginx.ts --access-log gives
// the cost under real load; this splits it.)
// Run: node scripts/run-ts.mjs bench/access_log.ts | deno run -A bench/access_log.ts | bun bench/access_log.ts
import { closeSync, openSync, writeSync } from "node:fs";
import { AccessLog, formatAccessLine } from "../src/app/access_log.ts";
import type { AccessEntry } from "../src/app/access_log.ts";
import { makeTempDir, removeDir } from "../test/interop/_servers.ts";

const ENTRIES = 300_000;
const dir = makeTempDir("fcgi-bench-access-log-");

function entry(i: number, startedAt: number): AccessEntry {
  return {
    time: Date.now(),
    pid: 4242,
    requestId: 1 + (i & 7),
    method: "GET",
    uri: "/hello?n=" + i, // a new string each time, as params give
    protocol: "HTTP/1.1",
    status: 200,
    bytes: 13,
    durationMs: performance.now() - startedAt,
    remoteAddr: "127.0.0.1",
    user: undefined,
  };
}

try {
  for (let round = 1; round <= 3; round++) {
    let t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < ENTRIES; i++) sink += formatAccessLine(entry(i, t0), "json").length;
    const formatUs = ((performance.now() - t0) * 1000) / ENTRIES;

    const log = new AccessLog(`${dir}/access-${round}.log`, "json");
    t0 = performance.now();
    for (let i = 0; i < ENTRIES; i++) log.write(entry(i, t0));
    log.flush();
    const writeUs = ((performance.now() - t0) * 1000) / ENTRIES;
    await log.close();

    // The write(2) alone: the same number of 64 KiB chunks of lines, formatted beforehand.
    let chunk = "";
    while (chunk.length < 64 * 1024) chunk += formatAccessLine(entry(0, t0), "json");
    const chunks = Math.ceil(sink / chunk.length);
    const linesPerChunk = chunk.length / (sink / ENTRIES);
    const fd = openSync(`${dir}/raw-${round}.log`, "a");
    t0 = performance.now();
    for (let i = 0; i < chunks; i++) writeSync(fd, chunk);
    const perChunkUs = ((performance.now() - t0) * 1000) / chunks;
    closeSync(fd);

    console.log(
      `round ${round}: format ${formatUs.toFixed(2)} µs/line; AccessLog.write (format, gather, write) ${writeUs.toFixed(2)} µs/line; ` +
        `writeSync of a 64 KiB chunk ${perChunkUs.toFixed(0)} µs (${(perChunkUs / linesPerChunk).toFixed(2)} µs/line)`,
    );
  }
} finally {
  removeDir(dir);
}
