/**
 * The soak (issue #13): does `fcgi serve` stay correct and flat in memory over a million requests
 * of mixed, partly hostile traffic? Per runtime, `--requests` requests (default 1 M) at
 * `--concurrency` (default 256) through real nginx (examples/nginx.conf, `keepalive 256`), plus a
 * multiplexed fcgi `Client` talking FastCGI straight to the app's socket, sharing one count:
 *
 * - every 100 requests: 1 download of 1 MiB (content compared), 1 upload of 64 KiB to 1 MiB
 *   (answered with its length), 1 download aborted by us after its first chunk (AbortController;
 *   on the Client that is an ABORT_REQUEST), 1 HTTP connection cut by us (half an upload sent, or
 *   a request sent, then the socket destroyed), the rest hello;
 * - every completed response is checked (status, length, content): a mismatch counts as wrong;
 * - errors are counted by kind; those we caused (aborted, cut) separately, as expected;
 * - the app's VmRSS is read from /proc about once a second.
 *
 * The run fails (exit 1) when any response is wrong, any error was not caused by us, the app
 * exits, or RSS is not flat: the requests after the first `--settle` (default 100 k, or a tenth of
 * a shorter run) are cut into 9 slices, and neither the slices' floors (smallest RSS sample of
 * each) nor their ceilings (largest) may differ by more than 10 % (largest over smallest ≤ 1.10).
 * A collector's sawtooth within a slice is not a trend; the plain spread of all samples after the
 * settle mark is printed beside, for comparison. The chart of RSS
 * over requests, one line per runtime, goes to `--chart` (default bench/charts/soak-rss.svg).
 *
 * ```sh
 * npm run soak                                    # node, deno, bun; 1 M requests each
 * npm run soak -- --requests 50000 --runtimes bun --chart /tmp/soak.svg
 * ```
 * Also `--concurrency N` (through nginx), `--direct N` (on the Client, default 32), `--settle N`,
 * and `--max-minutes N` (per runtime, default 12: a run that has not finished by then fails).
 * Needs nginx. Linux only (reads /proc). Loopback only.
 * @module
 */
import { request as httpRequest, Agent, type ClientRequest, type IncomingMessage } from "node:http";
import { loadavg } from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Client } from "../src/client/client.ts";
import { repoRoot } from "../test/_support/env.ts";
import { findBinary, isRunning, makeTempDir, removeDir, type Service } from "../test/interop/_servers.ts";
import { FCGI_APP, compileTo, procStatus, runtimeBinaries, serveCommand, startAppAndNginx } from "./_apps.ts";
import { lineChart, type Series } from "./_svg.ts";
import { median, option, version } from "./_wrk.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const RUNTIMES = option("runtimes", "node,deno,bun").split(",").filter(Boolean) as ("node" | "deno" | "bun")[];
const REQUESTS = Number(option("requests", "1000000"));
const CONCURRENCY = Number(option("concurrency", "256"));
const SETTLE = Number(option("settle", String(Math.min(100_000, Math.floor(REQUESTS / 10)))));
const CHART = option("chart", join(repoRoot, "bench", "charts", "soak-rss.svg"));
/** Requests the direct Client keeps in flight, over DIRECT_CONNECTIONS connections: several per connection. */
const DIRECT_CONCURRENCY = Number(option("direct", "32"));
const DIRECT_CONNECTIONS = 4;
const FLAT_LIMIT = 1.1;
/** A request not settled within this long is destroyed and counted as a timeout. */
const REQUEST_TIMEOUT_MS = 60_000;
/** The whole run of one runtime may take at most this long (a hung run fails instead of hanging). */
const RUN_TIMEOUT_MS = Number(option("max-minutes", "12")) * 60_000;

for (const r of RUNTIMES) if (!["node", "deno", "bun"].includes(r)) throw new Error(`unknown runtime ${r} (node, deno, bun)`);
if (!(REQUESTS > 0 && CONCURRENCY > 0 && SETTLE >= 0 && SETTLE < REQUESTS)) throw new Error("--requests, --concurrency must be positive and --settle below --requests");

// What /download sends: byte i is i & 255 (FCGI_APP).
const DOWNLOAD = new Uint8Array(MiB).map((_, i) => i & 255);
const UPLOAD = Buffer.alloc(MiB, "u");
const HELLO = "Hello, World!";

type Kind = "hello" | "download" | "upload" | "abort" | "cut";

/** What request number `i` is: 1 in 100 each of download, upload, abort and cut, the rest hello. */
function kindOf(i: number): Kind {
  switch (i % 100) {
    case 0: return "download";
    case 25: return "abort";
    case 50: return "upload";
    case 75: return "cut";
    default: return "hello";
  }
}

/** Upload sizes spread over 64 KiB … 1 MiB, a different one for each upload. */
function uploadSize(i: number): number {
  return 64 * KiB + ((i * 7919) % (MiB - 64 * KiB + 1));
}

/** Counts of one runtime's run. */
interface Tally {
  completed: number;
  viaNginx: number;
  direct: number;
  wrong: number;
  wrongExamples: string[];
  /** Errors we did not cause, by kind ("nginx ECONNRESET", "direct timeout", …). */
  errors: Map<string, number>;
  abortedByUs: number;
  cutByUs: number;
  /** Abort or cut requests that had completed before we could abort or cut them (checked as usual). */
  tooLateToAbort: number;
  /** The most requests the direct Client had on its connections at once, and the connections then. */
  directPeak: { active: number; connections: number };
}

/** One RSS reading: seconds since the start, requests settled by then, MiB. */
interface RssSample {
  t: number;
  done: number;
  mib: number;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Why a completed response is wrong, or undefined when it is right. */
function check(kind: Kind, size: number, status: number, body: Uint8Array): string | undefined {
  if (status !== 200) return `${kind}: status ${status}, ${body.byteLength} bytes: ${Buffer.from(body.subarray(0, 120)).toString("latin1")}`;
  if (kind === "download" || kind === "abort" || (kind === "cut" && size === 0)) {
    return sameBytes(body, DOWNLOAD) ? undefined : `${kind}: ${body.byteLength} bytes, not the 1 MiB pattern`;
  }
  const text = Buffer.from(body).toString("latin1");
  if (kind === "upload" || kind === "cut") return text === String(size) ? undefined : `${kind} of ${size} bytes answered ${JSON.stringify(text.slice(0, 80))}`;
  return text === HELLO ? undefined : `hello answered ${JSON.stringify(text.slice(0, 80))}`;
}

/** The outcome of one request: a response (checked by the caller), or an error and whether we caused it. */
type Outcome = { status: number; body: Uint8Array } | { error: string; ours: boolean };

/**
 * One request through nginx with node:http. An abort is an AbortController fired at the first
 * body chunk; a cut destroys the socket, half-way through an upload's body (odd i) or once a
 * download request is sent (even i).
 */
function viaNginx(agent: Agent, base: URL, i: number, kind: Kind): Promise<Outcome> {
  const cutUpload = kind === "cut" && i % 2 === 1;
  const size = kind === "upload" ? uploadSize(i) : cutUpload ? 256 * KiB : 0;
  const path = kind === "hello" ? "/hello" : size ? "/upload" : "/download";
  const controller = kind === "abort" ? new AbortController() : undefined;
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let ours = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const req: ClientRequest = httpRequest({
      agent,
      hostname: base.hostname,
      port: base.port,
      path,
      method: size ? "POST" : "GET",
      headers: size ? { "content-type": "application/octet-stream", "content-length": String(size) } : {},
      signal: controller?.signal,
    }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        if (controller && !controller.signal.aborted) {
          ours = true;
          controller.abort();
        }
      });
      res.on("end", () => finish({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
      res.on("error", (error: NodeJS.ErrnoException) => finish({ error: error.code ?? error.name, ours }));
      res.on("aborted", () => finish({ error: "response aborted", ours }));
    });
    const timer = setTimeout(() => {
      finish({ error: "timeout", ours: false });
      req.destroy();
    }, REQUEST_TIMEOUT_MS);
    req.on("error", (error: NodeJS.ErrnoException) => finish({ error: error.code ?? error.name, ours }));
    if (cutUpload) {
      req.write(UPLOAD.subarray(0, size / 2), () => {
        ours = true;
        req.destroy();
      });
    } else if (kind === "cut") {
      req.end(() => {
        ours = true;
        req.destroy();
      });
    } else {
      req.end(size ? UPLOAD.subarray(0, size) : undefined);
    }
  });
}

/** One request with fcgi's Client, straight to the app. A cut becomes a hello here: the Client's connections are shared. */
async function direct(client: Client, i: number, kind: Kind): Promise<Outcome> {
  const size = kind === "upload" ? uploadSize(i) : 0;
  const path = kind === "hello" || kind === "cut" ? "/hello" : size ? "/upload" : "/download";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("timeout")), REQUEST_TIMEOUT_MS);
  let ours = false;
  try {
    const request = new Request(`http://localhost${path}`, size
      ? { method: "POST", body: UPLOAD.subarray(0, size), signal: controller.signal }
      : { signal: controller.signal });
    const response = await client.fetch(request, size ? { params: { CONTENT_LENGTH: String(size) } } : {});
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [];
    for (let n = 0; n < 100_000; n++) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      if (kind === "abort" && !controller.signal.aborted) {
        ours = true;
        controller.abort();
      }
    }
    return { status: response.status, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
  } catch (error) {
    const e = error as { code?: string; name?: string; message?: string };
    return { error: controller.signal.aborted && !ours ? "timeout" : (e.code ?? e.name ?? String(error)), ours };
  } finally {
    clearTimeout(timer);
  }
}

interface RunResult {
  runtime: string;
  tally: Tally;
  samples: RssSample[];
  seconds: number;
  appExited: string | undefined;
  appLog: string;
  nginxLog: string;
}

async function soak(runtime: "node" | "deno" | "bun", dir: string, nginxBinary: string): Promise<RunResult> {
  const socket = join(dir, `${runtime}.sock`);
  const services: Service[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, maxFreeSockets: CONCURRENCY });
  let client: Client | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    // nginx needs room for every client connection, as many to the app, and cut ones it has yet to notice.
    const { app, nginx } = await startAppAndNginx(`fcgi-${runtime}`, serveCommand(runtime, join(dir, "dist"), join(dir, "app.mjs"), `unix:${socket}`), socket, dir, nginxBinary, CONCURRENCY, services, 4 * CONCURRENCY + 64);
    const base = new URL(nginx.urls[0]!);
    client = new Client({ address: `unix:${socket}`, maxConnections: DIRECT_CONNECTIONS, multiplex: true, onStderr: () => {} });

    const tally: Tally = {
      completed: 0, viaNginx: 0, direct: 0, wrong: 0, wrongExamples: [], errors: new Map(),
      abortedByUs: 0, cutByUs: 0, tooLateToAbort: 0, directPeak: { active: 0, connections: 0 },
    };
    const samples: RssSample[] = [];
    const started = performance.now();
    let next = 0;
    let done = 0;
    const sample = () => {
      try {
        samples.push({ t: (performance.now() - started) / 1000, done, mib: procStatus(app.pid, "VmRSS") / 1024 });
      } catch {
        // the app is gone: the run ends with its exit reported
      }
    };
    sample();
    sampler = setInterval(sample, 1000);
    let lastReport = 0;
    const record = (channel: "nginx" | "direct", i: number, kind: Kind, outcome: Outcome) => {
      done++;
      if ("error" in outcome) {
        if (outcome.ours && kind === "abort") tally.abortedByUs++;
        else if (outcome.ours && kind === "cut") tally.cutByUs++;
        else count(tally.errors, `${channel} ${kind} ${outcome.error}`);
        return;
      }
      tally.completed++;
      if (channel === "nginx") tally.viaNginx++;
      else tally.direct++;
      if (kind === "abort" || kind === "cut") tally.tooLateToAbort++;
      const size = kind === "upload" ? uploadSize(i) : kind === "cut" && channel === "nginx" && i % 2 === 1 ? 256 * KiB : 0;
      const why = check(channel === "direct" && kind === "cut" ? "hello" : kind, size, outcome.status, outcome.body);
      if (why) {
        tally.wrong++;
        if (tally.wrongExamples.length < 10) tally.wrongExamples.push(`${channel} #${i}: ${why}`);
      }
      if (done - lastReport >= 100_000) {
        lastReport = done;
        const rss = samples.at(-1)?.mib ?? NaN;
        console.log(`  ${runtime}: ${done} requests, ${((performance.now() - started) / 1000).toFixed(0)} s, RSS ${rss.toFixed(1)} MiB, wrong ${tally.wrong}, errors ${[...tally.errors.values()].reduce((a, b) => a + b, 0)}`);
      }
    };
    const deadline = Date.now() + RUN_TIMEOUT_MS;
    const nginxWorker = async () => {
      while (next < REQUESTS && Date.now() < deadline) {
        const i = next++;
        const kind = kindOf(i);
        record("nginx", i, kind, await viaNginx(agent, base, i, kind));
      }
    };
    const directWorker = async () => {
      while (next < REQUESTS && Date.now() < deadline) {
        const i = next++;
        const kind = kindOf(i);
        record("direct", i, kind, await direct(client!, i, kind));
        const stats = client!.stats();
        if (stats.active > tally.directPeak.active) tally.directPeak = { active: stats.active, connections: stats.connections };
      }
    };
    await Promise.all([
      ...Array.from({ length: CONCURRENCY }, nginxWorker),
      ...Array.from({ length: DIRECT_CONCURRENCY }, directWorker),
    ]);
    const seconds = (performance.now() - started) / 1000;
    sample();
    if (done < REQUESTS) count(tally.errors, `run stopped at ${done} requests after --max-minutes`);
    return {
      runtime,
      tally,
      samples,
      seconds,
      appExited: isRunning(app.pid) ? undefined : "the app exited during the run",
      appLog: app.logs(),
      nginxLog: nginx.logs(),
    };
  } finally {
    clearInterval(sampler);
    await client?.close();
    agent.destroy();
    for (const service of services.reverse()) await service.stop();
  }
}

/** Largest over smallest RSS sample taken once SETTLE requests were done; NaN with fewer than 2 samples. */
function spreadRatio(samples: readonly RssSample[]): number {
  const after = samples.filter((s) => s.done >= SETTLE).map((s) => s.mib);
  return after.length < 2 ? NaN : Math.max(...after) / Math.min(...after);
}

/** How many equal slices of the requests after SETTLE the flatness check compares. */
const SLICES = 9;

/**
 * RSS flatness as a trend: the requests after SETTLE cut into {@link SLICES} slices, each slice's
 * floor (smallest sample: what survives a collection) and ceiling (largest sample) taken, and the
 * largest floor over the smallest floor, and the same for ceilings. A leak raises the floors, a
 * growing peak the ceilings; a collector's sawtooth inside each slice moves neither, where it
 * would widen the plain spread (spreadRatio, printed beside). NaN when a slice has no sample.
 */
function flatRatios(samples: readonly RssSample[]): { floor: number; ceiling: number } {
  const span = (REQUESTS - SETTLE) / SLICES;
  const floors: number[] = [];
  const ceilings: number[] = [];
  for (let k = 0; k < SLICES; k++) {
    const from = SETTLE + k * span;
    const slice = samples.filter((s) => s.done >= from && (k === SLICES - 1 || s.done < from + span)).map((s) => s.mib);
    if (slice.length === 0) return { floor: NaN, ceiling: NaN };
    floors.push(Math.min(...slice));
    ceilings.push(Math.max(...slice));
  }
  return { floor: Math.max(...floors) / Math.min(...floors), ceiling: Math.max(...ceilings) / Math.min(...ceilings) };
}

/** The first sample at or after SETTLE requests. */
function rssAtSettle(samples: readonly RssSample[]): number {
  return samples.find((s) => s.done >= SETTLE)?.mib ?? NaN;
}

/** The distinct lines of a log with their counts, the most frequent first (for the report). */
function summarizeLog(log: string, limit: number): string[] {
  const lines = new Map<string, number>();
  for (const line of log.split("\n")) {
    const key = line.replace(/\d+/g, "N").trim();
    if (key) count(lines, key);
  }
  return [...lines].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([line, n]) => `${n} × ${line.slice(0, 200)}`);
}

async function main(): Promise<number> {
  const nginxBinary = findBinary("nginx");
  if (!nginxBinary) throw new Error("bench/soak.ts needs nginx on PATH");
  const results: RunResult[] = [];
  const dir = makeTempDir("fcgi-soak-");
  try {
    compileTo(join(dir, "dist"));
    writeFileSync(join(dir, "app.mjs"), FCGI_APP);
    console.log(`soak: ${REQUESTS} requests per runtime at concurrency ${CONCURRENCY} through nginx + ${DIRECT_CONCURRENCY} on fcgi's Client ` +
      `(${DIRECT_CONNECTIONS} connections); RSS flat after ${SETTLE}; load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    for (const runtime of RUNTIMES) {
      console.log(`${runtime}: starting`);
      results.push(await soak(runtime, dir, nginxBinary));
    }
  } finally {
    removeDir(dir);
  }

  let failed = false;
  console.log(`\n| runtime | requests | via nginx / direct | wrong | errors not ours | aborted by us | cut by us | RSS at ${SETTLE / 1000}k | RSS end | RSS max | floors (max/min) | ceilings (max/min) | spread (max/min sample) | duration | req/s |`);
  console.log("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    const t = r.tally;
    const errors = [...t.errors].map(([kind, n]) => `${n} ${kind}`).join(", ") || "0";
    const flat = flatRatios(r.samples);
    const spread = spreadRatio(r.samples);
    const ratio = (v: number) => (Number.isNaN(v) ? "n/a" : v.toFixed(3));
    const done = t.completed + t.abortedByUs + t.cutByUs + [...t.errors.values()].reduce((a, b) => a + b, 0);
    const mib = (v: number) => `${v.toFixed(1)} MiB`;
    console.log(`| ${r.runtime} | ${done.toLocaleString("en-US")} | ${t.viaNginx.toLocaleString("en-US")} / ${t.direct.toLocaleString("en-US")} | ${t.wrong} | ${errors} | ${t.abortedByUs} | ${t.cutByUs} | ` +
      `${mib(rssAtSettle(r.samples))} | ${mib(r.samples.at(-1)?.mib ?? NaN)} | ${mib(Math.max(...r.samples.map((s) => s.mib)))} | ${ratio(flat.floor)} | ${ratio(flat.ceiling)} | ${ratio(spread)} | ` +
      `${r.seconds.toFixed(0)} s | ${(done / r.seconds).toFixed(0)} |`);
  }
  console.log("");
  for (const r of results) {
    const t = r.tally;
    const flat = flatRatios(r.samples);
    const unjudged = Number.isNaN(flat.floor);
    const problems = [
      ...(t.wrong ? [`${t.wrong} wrong responses, e.g.\n      ${t.wrongExamples.join("\n      ")}`] : []),
      ...(t.errors.size ? ["errors we did not cause (above)"] : []),
      ...(flat.floor > FLAT_LIMIT ? [`RSS not flat: the largest slice floor over the smallest is ${flat.floor.toFixed(3)} > ${FLAT_LIMIT}`] : []),
      ...(flat.ceiling > FLAT_LIMIT ? [`RSS not flat: the largest slice ceiling over the smallest is ${flat.ceiling.toFixed(3)} > ${FLAT_LIMIT}`] : []),
      ...(r.appExited ? [r.appExited] : []),
    ];
    console.log(`${r.runtime}: ${problems.length ? `FAIL\n  ${problems.join("\n  ")}` : "ok"}` +
      ` (direct Client peak: ${t.directPeak.active} requests on ${t.directPeak.connections} connections; ${t.tooLateToAbort} aborts/cuts came after the response)` +
      `${unjudged ? `; too few RSS samples after the settle mark to judge flatness (a slice of the ${SLICES} has none)` : ""}`);
    // A trend beside max/min: GC swings widen max/min while the middle stays put; growth moves both.
    const after = r.samples.filter((x) => x.done >= SETTLE).map((x) => x.mib);
    const quarter = Math.max(1, Math.floor(after.length / 4));
    const trend = median(after.slice(-quarter)) / median(after.slice(0, quarter));
    const every = Math.max(1, Math.round(r.samples.length / 24));
    console.log(`  RSS MiB, every ${every} s: ${r.samples.filter((_, k) => k % every === 0).map((x) => x.mib.toFixed(0)).join(" ")}` +
      `; median of the last quarter of samples after ${SETTLE / 1000}k over the first: ${trend.toFixed(3)}`);
    const appLog = summarizeLog(r.appLog, 8);
    if (appLog.length) console.log(`  app log (most frequent lines, digits as N):\n    ${appLog.join("\n    ")}`);
    // Notices, and upload bodies kept in temp files (nginx does so past client_body_buffer_size), are routine.
    const nginxLog = summarizeLog(r.nginxLog.replace(/^.*(?:\[(?:notice|info)\]|is buffered to a temporary file).*$/gm, ""), 8);
    if (nginxLog.length) console.log(`  nginx log:\n    ${nginxLog.join("\n    ")}`);
    if (problems.length) failed = true;
  }

  const series: Series[] = results.map((r) => ({ label: r.runtime, points: r.samples.map((s) => [s.done / 1000, s.mib] as const) }));
  mkdirSync(dirname(CHART), { recursive: true });
  writeFileSync(CHART, lineChart(`fcgi serve behind nginx: RSS over a ${REQUESTS / 1000}k-request soak`, "requests (thousands)", "RSS (MiB)", series, { x: SETTLE / 1000, label: `${SETTLE / 1000}k` }));
  console.log(`\nchart: ${CHART}`);
  const { node, deno, bun } = runtimeBinaries;
  console.log(`versions: node ${version(node, ["--version"])}, ${version(deno, ["--version"])}, bun ${version(bun, ["--version"])}, ${version(nginxBinary, ["-v"])}; driver: node ${process.versions.node}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
