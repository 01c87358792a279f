// Live fuzzer for `fcgi serve` (#13): seeded hostile record streams (test/_support/fuzz_server.ts)
// sent to a running server on each runtime at once, which after every case must be alive, answer
// a fresh /hello within 5 s, and keep its RSS within 128 MiB of its post-start baseline (Node's
// and Deno's old space capped at 64 MiB: see HEAP_LIMIT_MIB).
//
//   npm run fuzz:server -- [--runtimes node,deno,bun] [--seconds 60] [--seed S] [--cases N]
//   npm run fuzz:server -- --runtime bun --seed N --cases 1      (replays one case)
//   --verbose prints every case: its seed, kind, time and the server's RSS after it.
//
// Runs on Node (the servers run on the runtimes asked for). Without --seed it starts from a
// time-based seed; every runtime runs the same seeds from there. A failure prints its seed and the
// command that replays it, the server is restarted, and the run goes on (up to 5 failures per
// runtime); the exit status is 1 if any case failed.
import process from "node:process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, sourcePath } from "../test/_support/env.ts";
import { FUZZ_APP, FUZZ_SERVE_FLAGS, HEALTH_TIMEOUT_MS, HEAP_LIMIT_MIB, RSS_MARGIN_MIB, describeServerCase, fuzzServer, type FuzzReport } from "../test/_support/fuzz_server.ts";
import { freePort } from "../test/interop/_servers.ts";
import { fuzzArgs, runtimeBin, runtimeVersion } from "./_fuzz_cli.ts";

const { runtimes, seconds, firstSeed, maxCases, verbose } = fuzzArgs();

// Node runs the CLI as this script runs (the dist/ copy on Node < 22.18); Deno and Bun from source.
const commands: Record<string, (app: string, port: number) => [string, string[]]> = {
  node: (app, port) => [process.execPath, [sourcePath("src/cli.ts"), "serve", app, "--listen", `127.0.0.1:${port}`, ...FUZZ_SERVE_FLAGS]],
  deno: (app, port) => [runtimeBin("deno"), ["run", "-A", join(repoRoot, "src", "cli.ts"), "serve", app, "--listen", `127.0.0.1:${port}`, ...FUZZ_SERVE_FLAGS]],
  bun: (app, port) => [runtimeBin("bun"), [join(repoRoot, "src", "cli.ts"), "serve", app, "--listen", `127.0.0.1:${port}`, ...FUZZ_SERVE_FLAGS]],
};
for (const runtime of runtimes) {
  if (!commands[runtime]) {
    console.error(`unknown runtime ${runtime}: node, deno or bun`);
    process.exit(2);
  }
}

const dir = mkdtempSync(join(tmpdir(), "fcgi-fuzz-server-"));
const app = join(dir, "app.mjs");
writeFileSync(app, FUZZ_APP);
let failed = false;
try {
  console.log(`fuzz:server: ${runtimes.map(runtimeVersion).join(", ")}; ${seconds} s per runtime from seed ${firstSeed}${maxCases < Infinity ? `, at most ${maxCases} cases` : ""}`);
  console.log(`checks after every case: alive, /hello within ${HEALTH_TIMEOUT_MS} ms, RSS within baseline + ${RSS_MARGIN_MIB} MiB (old space ${HEAP_LIMIT_MIB} MiB on node and deno); serve flags ${FUZZ_SERVE_FLAGS.join(" ")}`);
  const started = Date.now();
  const deadline = started + seconds * 1000;
  const reports = await Promise.all(runtimes.map(async (runtime): Promise<[string, FuzzReport]> => {
    const report = await fuzzServer({
      command: (port) => commands[runtime]!(app, port),
      freePort,
      cwd: dir,
      firstSeed,
      maxCases,
      deadline,
      maxFailures: 5,
      log: (line) => console.log(`  ${runtime}: ${line}`),
      onCase: (seed, c, ms, rss) => {
        if (verbose) console.log(`  ${runtime}: seed ${seed} ok in ${ms} ms, RSS ${rss.toFixed(1)} MiB: ${describeServerCase(c)}`);
      },
    });
    return [runtime, report];
  }));
  console.log(`\nfinished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const [runtime, r] of reports) {
    console.log(`${runtime}: seeds ${r.firstSeed}..${r.nextSeed - 1} (${r.cases} cases: ${JSON.stringify(r.kinds)}), ` +
      `RSS baseline ${r.baselineMiB.toFixed(1)} MiB, peak after a case ${r.peakMiB.toFixed(1)} MiB, ${r.failures.length} failure(s)`);
    for (const f of r.failures) {
      failed = true;
      console.log(`  FAILURE at seed ${f.seed}: ${f.what}\n    case: ${f.case}\n    replay: npm run fuzz:server -- --runtime ${runtime} --seed ${f.seed} --cases 1` +
        `\n    (this server ran seeds ${f.serverFirstSeed}..${f.seed}; if one case does not reproduce it: --seed ${f.serverFirstSeed} --cases ${f.seed - f.serverFirstSeed + 1})` +
        `\n    server output, last lines:\n${f.serverOutput.split("\n").slice(-15).map((l) => `      ${l}`).join("\n")}`);
    }
    for (const line of r.suspectLines) console.log(`  suspect log line: ${line}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
