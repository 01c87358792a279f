/**
 * The app-server question: how fast is `fcgi serve` behind nginx, next to Go's net/http/fcgi and
 * npm node-fastcgi? wrk → nginx → app over a Unix socket, nginx configured with the README snippet
 * (examples/nginx.conf: `fastcgi_keep_conn on` and an upstream `keepalive` block).
 *
 * Three loads per app: "hello" (a 13-byte answer), a 1 MiB download, and a 64 MiB upload, during
 * which the app's peak RSS growth is read from /proc (VmHWM reset through clear_refs first).
 * fcgi runs under Node, Deno and Bun through its CLI, exactly as users start it. Several rounds,
 * apps interleaved within each round; medians are printed with ratios to Go.
 *
 * ```sh
 * node scripts/run-ts.mjs bench/nginx.ts [--runs 3] [--seconds 5] [--only fcgi-node,go] [--baseline DIR] [--access-log] [--malloc-trim] [--loads hello]
 * ```
 * `--access-log` adds fcgi-node-log, fcgi-deno-log and fcgi-bun-log: the same app with
 * `--access-log FILE` (JSON lines), so the log's cost is read against the same runtime in the same
 * rounds. `--loads` picks among hello, download and upload (default: all three).
 * `--malloc-trim` adds fcgi-node-trim, fcgi-deno-trim and fcgi-bun-trim: the same app with README
 * "Memory on Linux"'s upload settings in its environment (MALLOC_TRIM_THRESHOLD_ at 128 MiB for
 * glibc under Node and Deno, MIMALLOC_PURGE_DELAY=-1 for Bun's mimalloc), which keep the memory a
 * collection frees instead of returning it to the kernel and faulting it back in for the next reads.
 * `--baseline DIR` adds base-node, base-deno and base-bun: fcgi from another checkout (say, `git
 * worktree add DIR <commit>` before a change), measured in the same rounds, so a change is judged
 * against its own past on the same load rather than against a figure from another day.
 * Needs nginx, wrk and Debian's golang-go (the Go program is stdlib only; it is built offline).
 * Linux only (reads /proc).
 * @module
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { wrk, median, option, version } from "./_wrk.ts";
import { FCGI_APP, compileTo, cpuSeconds, procStatus, runtimeBinaries, serveCommand, startAppAndNginx } from "./_apps.ts";
import {
  type Service,
  fetchWithin,
  findBinary,
  makeTempDir,
  removeDir,
} from "../test/interop/_servers.ts";

const MiB = 1024 * 1024;

const RUNS = Number(option("runs", "3"));
const SECONDS = Number(option("seconds", "5"));
const ONLY = option("only", "").split(",").filter(Boolean);
const BASELINE = option("baseline", "");
const ACCESS_LOG = process.argv.includes("--access-log");
const MALLOC_TRIM = process.argv.includes("--malloc-trim");
/** What README "Memory on Linux" suggests for upload-heavy apps, per runtime's allocator. */
const TRIM_ENV = {
  node: { MALLOC_TRIM_THRESHOLD_: String(128 * MiB) },
  deno: { MALLOC_TRIM_THRESHOLD_: String(128 * MiB) },
  bun: { MIMALLOC_PURGE_DELAY: "-1" },
};
const LOADS = new Set(option("loads", "hello,download,upload").split(","));
const HELLO_CONNECTIONS = 32;
const DOWNLOAD_CONNECTIONS = 16;
const UPLOAD_CONNECTIONS = 2;
const UPLOAD_BYTES = 64 * MiB;

// The same app on node-fastcgi (its http-like API).
const NODE_FASTCGI_APP = (socket: string) => `
const fcgi = require(${JSON.stringify(join(repoRoot, "node_modules", "node-fastcgi"))});
const download = Buffer.alloc(${MiB});
for (let i = 0; i < download.length; i++) download[i] = i & 255;
try { require("fs").unlinkSync(${JSON.stringify(socket)}); } catch {}
fcgi.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/hello") { res.writeHead(200, { "content-type": "text/plain" }); res.end("Hello, World!"); return; }
  if (path === "/download") { res.writeHead(200, { "content-type": "application/octet-stream" }); res.end(download); return; }
  if (path === "/upload") {
    let n = 0;
    req.on("data", (c) => { n += c.length; });
    req.on("end", () => { res.writeHead(200, { "content-type": "text/plain" }); res.end(String(n)); });
    return;
  }
  res.writeHead(404); res.end("not found");
}).listen(${JSON.stringify(socket)});
`;

interface Contestant {
  name: string;
  /** The command that starts the app on `socket`. */
  start(socket: string): [string, string[]];
  /** Added to the app's environment. */
  env?: Record<string, string>;
}

interface Sample {
  hello: number;
  /** The app process's CPU time (user + system) per hello request, µs: steadier than req/s on a shared machine. */
  helloCpuUs: number;
  download: number;
  /** The app's CPU time per 1 MiB download, µs (as helloCpuUs). */
  downloadCpuUs: number;
  /** Upload throughput in MiB/s. */
  upload: number;
  /** The app's CPU time per MiB uploaded, µs. */
  uploadCpuUs: number;
  /** Peak RSS growth during the upload load, MiB. */
  uploadRss: number;
  errors: string[];
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(command, args, { encoding: "utf8", cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

// Every app must answer the three routes alike before its numbers count.
async function checkRoutes(base: string): Promise<void> {
  const hello = await fetchWithin(`${base}/hello`);
  if (hello.status !== 200 || hello.text !== "Hello, World!") throw new Error(`/hello answered ${hello.status} ${hello.text}`);
  const download = await fetchWithin(`${base}/download`);
  if (download.status !== 200 || download.body.length !== MiB) throw new Error(`/download answered ${download.status}, ${download.body.length} bytes`);
  const upload = await fetchWithin(`${base}/upload`, { method: "POST", body: new Uint8Array(100_003) });
  if (upload.status !== 200 || upload.text !== "100003") throw new Error(`/upload answered ${upload.status} ${upload.text}`);
}

async function measure(contestant: Contestant, dir: string, nginxBinary: string, uploadScript: string): Promise<Sample> {
  const socket = join(dir, `${contestant.name}.sock`);
  const services: Service[] = [];
  try {
    const { app, nginx } = await startAppAndNginx(contestant.name, contestant.start(socket), socket, dir, nginxBinary, HELLO_CONNECTIONS, services, undefined, contestant.env);
    const base = nginx.urls[0];

    const errors: string[] = [];
    const sample: Sample = { hello: 0, helloCpuUs: NaN, download: 0, downloadCpuUs: NaN, upload: 0, uploadCpuUs: NaN, uploadRss: NaN, errors };
    try {
      await checkRoutes(base);
      await wrk(`${base}/hello`, HELLO_CONNECTIONS, 1); // warm-up (JIT, connection pool)
      const cpuBefore = cpuSeconds(app.pid);
      const hello = await wrk(`${base}/hello`, HELLO_CONNECTIONS, SECONDS);
      sample.hello = hello.requestsPerSecond;
      sample.helloCpuUs = ((cpuSeconds(app.pid) - cpuBefore) * 1e6) / hello.requests;
      errors.push(...hello.errors);
      if (LOADS.has("download")) {
        await wrk(`${base}/download`, DOWNLOAD_CONNECTIONS, 1);
        const downloadCpuBefore = cpuSeconds(app.pid);
        const download = await wrk(`${base}/download`, DOWNLOAD_CONNECTIONS, SECONDS);
        sample.download = download.requestsPerSecond;
        sample.downloadCpuUs = ((cpuSeconds(app.pid) - downloadCpuBefore) * 1e6) / download.requests;
        errors.push(...download.errors);
      }
      if (!LOADS.has("upload")) return sample;
      const rssBefore = procStatus(app.pid, "VmRSS");
      writeFileSync(`/proc/${app.pid}/clear_refs`, "5"); // resets VmHWM to the current RSS
      const uploadCpuBefore = cpuSeconds(app.pid);
      const upload = await wrk(`${base}/upload`, UPLOAD_CONNECTIONS, SECONDS, { script: uploadScript });
      sample.upload = (upload.requestsPerSecond * UPLOAD_BYTES) / MiB;
      sample.uploadCpuUs = ((cpuSeconds(app.pid) - uploadCpuBefore) * 1e6) / ((upload.requests * UPLOAD_BYTES) / MiB);
      sample.uploadRss = Math.max(0, procStatus(app.pid, "VmHWM") - rssBefore) / 1024;
      errors.push(...upload.errors);
    } catch (error) {
      errors.push(error instanceof Error ? error.message : String(error));
    }
    if (errors.length) errors.push(`app output: ${app.logs().slice(-1500)}`, `nginx: ${nginx.logs().slice(-1500)}`);
    return sample;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

async function main(): Promise<void> {
  const nginxBinary = findBinary("nginx");
  const needsGo = ONLY.length === 0 || ONLY.includes("go");
  if (!nginxBinary || !findBinary("wrk") || (needsGo && !findBinary("go"))) throw new Error("bench/nginx.ts needs nginx, wrk and (for the go contender) go on PATH");
  const dir = makeTempDir("fcgi-bench-nginx-");
  try {
    // Everything the apps run from is built into the temp folder (see compileTo).
    console.log("building: tsc → temp, go build → temp");
    compileTo(join(dir, "dist"));
    if (BASELINE) compileTo(join(dir, "base-dist"), BASELINE);
    if (needsGo) run("go", ["build", "-o", join(dir, "go-fcgi"), join(repoRoot, "bench", "go", "main.go")], {
      env: { ...process.env, GO111MODULE: "off", GOPROXY: "off", GOFLAGS: "", CGO_ENABLED: "0" },
    });
    writeFileSync(join(dir, "app.mjs"), FCGI_APP);
    const uploadScript = join(dir, "upload.lua");
    writeFileSync(uploadScript, `wrk.method = "POST"\nwrk.body = string.rep("u", ${UPLOAD_BYTES})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);

    const { node, deno, bun } = runtimeBinaries;
    const app = join(dir, "app.mjs");
    const all: Contestant[] = [
      { name: "go", start: (s) => [join(dir, "go-fcgi"), ["-listen", `unix:${s}`]] },
      ...(["node", "deno", "bun"] as const).map((r) => ({ name: `fcgi-${r}`, start: (s: string) => serveCommand(r, join(dir, "dist"), app, s) })),
      // Deno on its node:net sockets instead of Deno.listen (bench/idle.ts: they hold less per idle connection); only when --only names it.
      ...(ONLY.includes("fcgi-deno-node-net") ? [{ name: "fcgi-deno-node-net", start: (s: string) => serveCommand("deno", join(dir, "dist"), app, s, ["--runtime", "node"]) }] : []),
      ...(ACCESS_LOG
        ? [
        ...(["node", "deno", "bun"] as const).map((r) => ({ name: `fcgi-${r}-log`, start: (s: string) => serveCommand(r, join(dir, "dist"), app, s, ["--access-log", `${s}.log`]) })),
        ] satisfies Contestant[]
        : []),
      ...(MALLOC_TRIM
        ? [
        ...(["node", "deno", "bun"] as const).map((r) => ({ name: `fcgi-${r}-trim`, start: (s: string) => serveCommand(r, join(dir, "dist"), app, s), env: TRIM_ENV[r] })),
        ] satisfies Contestant[]
        : []),
      ...(BASELINE
        ? [
        ...(["node", "deno", "bun"] as const).map((r) => ({ name: `base-${r}`, start: (s: string) => serveCommand(r, join(dir, "base-dist"), app, s, [], BASELINE) })),
        ] satisfies Contestant[]
        : []),
      {
        name: "node-fastcgi",
        start: (s) => {
          const file = join(dir, "node-fastcgi-app.cjs");
          writeFileSync(file, NODE_FASTCGI_APP(s));
          return [node, [file]];
        },
      },
    ];
    const contestants = ONLY.length ? all.filter((c) => ONLY.includes(c.name)) : all;

    console.log(`load before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const samples = new Map<string, Sample[]>(contestants.map((c) => [c.name, []]));
    for (let round = 1; round <= RUNS; round++) {
      console.log(`round ${round}: load ${loadavg()[0].toFixed(2)}`);
      for (const contestant of contestants) {
        const sample = await measure(contestant, dir, nginxBinary, uploadScript);
        samples.get(contestant.name)!.push(sample);
        console.log(
          `round ${round} ${contestant.name.padEnd(13)} hello ${sample.hello.toFixed(0)} req/s (${sample.helloCpuUs.toFixed(1)} µs CPU each)` +
            (LOADS.has("download") ? `, download ${sample.download.toFixed(0)} req/s (${sample.downloadCpuUs.toFixed(0)} µs CPU each)` : "") +
            (LOADS.has("upload") ? `, upload ${sample.upload.toFixed(0)} MiB/s (${sample.uploadCpuUs.toFixed(0)} µs CPU per MiB), upload RSS +${sample.uploadRss.toFixed(1)} MiB` : "") +
            (sample.errors.length ? `\n  ERRORS: ${sample.errors.join("\n  ")}` : ""),
        );
      }
    }
    console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

    const medians = new Map([...samples].map(([name, list]) => [name, {
      hello: median(list.map((s) => s.hello)),
      helloCpuUs: median(list.map((s) => s.helloCpuUs)),
      download: median(list.map((s) => s.download)),
      downloadCpuUs: median(list.map((s) => s.downloadCpuUs)),
      upload: median(list.map((s) => s.upload)),
      uploadCpuUs: median(list.map((s) => s.uploadCpuUs)),
      uploadRss: median(list.map((s) => s.uploadRss)),
      uploadRssMax: Math.max(...list.map((s) => s.uploadRss)),
      failedRuns: list.filter((s) => s.errors.length > 0).length,
    }]));
    const go = medians.get("go");
    const ratio = (value: number, base: number | undefined) => (base ? `${(value / base).toFixed(2)}×` : "–");
    console.log(`\nmedians of ${RUNS} runs, ${SECONDS} s each; wrk -t1, hello -c${HELLO_CONNECTIONS}, download -c${DOWNLOAD_CONNECTIONS}, upload -c${UPLOAD_CONNECTIONS}\n`);
    type Median = typeof medians extends Map<string, infer M> ? M : never;
    // Only the loads measured (--loads) get columns.
    const columns: [string, (m: Median) => string][] = [
      ["hello req/s", (m) => m.hello.toFixed(0)],
      ["vs Go", (m) => ratio(m.hello, go?.hello)],
      ["hello CPU µs/req", (m) => m.helloCpuUs.toFixed(1)],
      ...(LOADS.has("download")
        ? [
          ["1 MiB download req/s", (m: Median) => m.download.toFixed(0)],
          ["vs Go", (m: Median) => ratio(m.download, go?.download)],
          ["download CPU µs/req", (m: Median) => m.downloadCpuUs.toFixed(0)],
        ] as [string, (m: Median) => string][]
        : []),
      ...(LOADS.has("upload")
        ? [
          ["64 MiB upload MiB/s", (m: Median) => m.upload.toFixed(0)],
          ["vs Go", (m: Median) => ratio(m.upload, go?.upload)],
          ["upload CPU µs/MiB", (m: Median) => m.uploadCpuUs.toFixed(0)],
          ["upload peak RSS growth (median / worst)", (m: Median) => `${m.uploadRss.toFixed(1)} / ${m.uploadRssMax.toFixed(1)} MiB`],
        ] as [string, (m: Median) => string][]
        : []),
    ];
    console.log(`| app | ${columns.map(([title]) => title).join(" | ")} |`);
    console.log(`|---|${columns.map(() => "---:").join("|")}|`);
    for (const [name, m] of medians) {
      console.log(`| ${name} | ${columns.map(([, cell]) => cell(m)).join(" | ")} |${m.failedRuns ? ` ${m.failedRuns} of ${RUNS} runs had errors (above) |` : ""}`);
    }
    // The log's cost as the median of each round's ratio to the same runtime without it: rounds
    // differ (the machine is shared), the two runs within a round much less.
    for (const [name, list] of samples) {
      const plain = samples.get(name.replace(/-log$/, ""));
      if (!name.endsWith("-log") || !plain) continue;
      const throughput = median(list.map((s, i) => s.hello / plain[i].hello));
      const cpu = median(list.map((s, i) => s.helloCpuUs / plain[i].helloCpuUs));
      console.log(`access log on ${name.slice(5, -4)}: hello ${throughput.toFixed(2)}× the req/s and ${cpu.toFixed(2)}× the CPU per request of the same runtime without it (median of ${RUNS} rounds' ratios)`);
    }
    console.log(`\nversions: node ${version(node, ["--version"])}, ${version(deno, ["--version"])}, bun ${version(bun, ["--version"])}, ` +
      `${needsGo ? version("go", ["version"]) : "no go"}, ${version(nginxBinary, ["-v"])}, ${version("wrk", ["-v"])}`);
  } finally {
    removeDir(dir);
  }
}

await main();
