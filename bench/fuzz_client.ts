// Hostile-backend fuzzer for fcgi's Client (#11): seeded cases from test/_support/fuzz_client.ts, the
// Client and a fake backend (test/_support/hostile_backend.ts) in one process per runtime. Every
// request must fail only with a FastCGIError, end within its timeouts plus a margin, and carry no
// other request's marker; after every case a fresh request through the same Client succeeds,
// close() resolves and the RSS stays within RSS_MARGIN_MIB of the baseline.
//
//   npm run fuzz:client -- [--runtimes node,deno,bun] [--seconds 60] [--seed S] [--cases N]
//   npm run fuzz:client -- --runtime bun --seed N --cases 1      (replays one case)
//   --verbose prints every case: its seed, time, RSS and what it was.
//
// The runtimes run one after another (each --seconds long), each in a process of its own with the
// same seeds; Node's and Deno's old space is capped at HEAP_LIMIT_MIB so that garbage does not pass
// for a leak. A failed case prints its seed and the command that replays it; the run goes on (up to
// 5 failed cases per runtime); the exit status is 1 if any case failed.
import process from "node:process";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot, runtimeName } from "../test/_support/env.ts";
import { RSS_MARGIN_MIB, describeClientCase, fuzzClient } from "../test/_support/fuzz_client.ts";
import { fuzzArgs, runtimeBin, runtimeVersion } from "./_fuzz_cli.ts";

/** Old space of the fuzzing process on Node and Deno, in MiB (Bun's JavaScriptCore has no such flag). */
const HEAP_LIMIT_MIB = 256;

const { runtimes, seconds, firstSeed, maxCases, verbose, args } = fuzzArgs();
const worker = args.includes("--worker");

for (const runtime of runtimes) {
  if (!["node", "deno", "bun"].includes(runtime)) {
    console.error(`unknown runtime ${runtime}: node, deno or bun`);
    process.exit(2);
  }
}

/** This script in the runtime asked for (the running file on Node: the dist/ copy on Node < 22.18). */
function command(runtime: string, rest: string[]): [string, string[]] {
  const heap = `--max-old-space-size=${HEAP_LIMIT_MIB}`;
  if (runtime === "node") return [process.execPath, ["--expose-gc", heap, fileURLToPath(import.meta.url), ...rest]];
  const source = join(repoRoot, "bench", "fuzz_client.ts");
  if (runtime === "deno") return [runtimeBin("deno"), ["run", "-A", `--v8-flags=--expose-gc,${heap}`, source, ...rest]];
  return [runtimeBin("bun"), [source, ...rest]];
}

if (worker) {
  // One runtime, in this process.
  const report = await fuzzClient({
    firstSeed,
    maxCases,
    deadline: Date.now() + seconds * 1000,
    maxFailures: 5,
    log: (line) => console.log(`  ${runtimeName}: ${line}`),
    onCase: (seed, c, ms, rss) => {
      if (verbose) console.log(`  ${runtimeName}: seed ${seed} ok in ${ms} ms, RSS ${rss.toFixed(1)} MiB: ${describeClientCase(c)}`);
    },
  });
  const kinds = Object.entries(report.kinds).map(([k, n]) => `${k} ${n}`).join(", ");
  console.log(`${runtimeName}: seeds ${report.firstSeed}..${report.nextSeed - 1} (${report.cases} cases, ${report.requests} requests: ${kinds}), ` +
    `RSS baseline ${report.baselineMiB.toFixed(1)} MiB, peak after a case ${report.peakMiB.toFixed(1)} MiB, ${report.failures.length} failed case(s), ${report.flaky.length} flaky`);
  for (const f of report.flaky) console.log(`  flaky at seed ${f.seed} (failed, then passed when run again):\n    ${f.what.split("\n").join("\n    ")}`);
  for (const f of report.failures) {
    console.log(`  FAILURE at seed ${f.seed}:\n    ${f.what.split("\n").join("\n    ")}\n    case: ${f.case}\n    replay: npm run fuzz:client -- --runtime ${runtimeName} --seed ${f.seed} --cases 1`);
  }
  process.exit(report.failures.length > 0 ? 1 : 0);
}

console.log(`fuzz:client: ${runtimes.map(runtimeVersion).join(", ")}; ${seconds} s per runtime, one after another, from seed ${firstSeed}${maxCases < Infinity ? `, at most ${maxCases} cases` : ""}`);
console.log(`checks: only FastCGIErrors, a watchdog on every request, no other request's marker, a fresh request and close() after each case, RSS within baseline + ${RSS_MARGIN_MIB} MiB`);
let failed = false;
for (const runtime of runtimes) {
  const rest = ["--worker", "--seed", String(firstSeed), "--seconds", String(seconds), ...(maxCases < Infinity ? ["--cases", String(maxCases)] : []), ...(verbose ? ["--verbose"] : [])];
  const [cmd, argv] = command(runtime, rest);
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(cmd, argv, { cwd: repoRoot, stdio: "inherit", env: { ...process.env, NO_COLOR: "1" } });
    child.on("exit", (exitCode, signal) => resolve(signal ? 1 : exitCode));
  });
  console.log(`${runtime}: finished in ${((Date.now() - started) / 1000).toFixed(0)} s, exit ${code}`);
  if (code !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
