/**
 * The gateway question: is `fcgi proxy` an HTTP front for PHP-FPM as fast as nginx?
 * wrk → front → PHP-FPM over a Unix socket, one PHP-FPM pool (pm = static, 8 workers) shared by
 * every front in the same run. The fronts:
 *
 * - nginx with the usual PHP site config (try_files to index.php, fastcgi_split_path_info), as
 *   Debian ships it: a new FastCGI connection per request;
 * - the same with `fastcgi_keep_conn on` and an upstream `keepalive 8` block;
 * - Caddy 2 with `php_fastcgi` (its PHP front: try_files to index.php, split at .php, a new
 *   FastCGI connection per request), and HAProxy with an `fcgi-app` as its manual's PHP-FPM
 *   example writes it (keep-conn, index, path-info), plus the front controller as a
 *   `set-param SCRIPT_NAME /index.php` for paths that do not end in .php (HAProxy cannot look for
 *   a file), each when installed;
 * - `fcgi proxy --upstream unix:… --root …` on Node, Deno and Bun, started through the CLI as users
 *   start it (kept connections, the Client's defaults).
 *
 * With `--backends N` (N > 1) there are N PHP-FPM pools instead of one, the workers shared out
 * among them, and every front balances over the N: nginx's upstream block lists them, Caddy's
 * `php_fastcgi` and HAProxy's backend too, and `fcgi proxy` takes `--upstream` N times.
 *
 * Two loads: `/hello.php` (a script named in the URL) and `/route/7?x=1` (no such file: the front
 * controller, index.php, answers after try_files). Every front runs one at a time (kept FastCGI
 * connections hold PHP-FPM workers) and must answer both correctly before its numbers count.
 * Several rounds, fronts interleaved in each; medians, with the ratio to the faster nginx and the
 * front's CPU time per request (from /proc, the front's processes only).
 *
 * ```sh
 * node scripts/run-ts.mjs bench/proxy.ts [--runs 5] [--seconds 5] [--warmup 1] [--connections 32] [--backends 1] [--only nginx,caddy,haproxy,fcgi-node]
 *   [--loads hello] [--baseline /tmp/base] [--profile DIR] [--perf DIR]
 * ```
 * Needs nginx, wrk and php-fpm; caddy and haproxy join when installed. Linux only (reads /proc).
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { wrk, median, option, version } from "./_wrk.ts";
import { phpFpmBinary, startPhpFpm } from "../test/_support/phpfpm.ts";
import {
  canConnect,
  fetchWithin,
  findBinary,
  freePort,
  makeTempDir,
  removeDir,
  type Service,
  startCaddy,
  startHaproxy,
  startNginx,
  startProcess,
} from "../test/interop/_servers.ts";

const RUNS = Number(option("runs", "5"));
const SECONDS = Number(option("seconds", "5"));
/** Seconds of wrk before each measured run (JIT, connection pools); a busy machine needs more. */
const WARMUP = Number(option("warmup", "1"));
const CONNECTIONS = Number(option("connections", "32"));
const ONLY = option("only", "").split(",").filter(Boolean);
const BACKENDS = Number(option("backends", "1"));
const WORKERS = 8;
/** PHP-FPM workers per pool: the 8 shared out (all 8 in one pool), at least 2 each. */
const POOL_WORKERS = Math.max(2, Math.ceil(WORKERS / BACKENDS));
/**
 * A folder for profiles of the measured runs: fcgi-node and fcgi-deno run with --inspect and
 * bench/_cdp_profile.ts (run by Deno) takes a V8 CPU profile over each measured wrk run; fcgi-bun
 * runs with --cpu-prof (its whole life: start-up and warm-up too, a small share).
 */
const PROFILE = option("profile", "");
/**
 * A checkout of another commit (`git worktree add /tmp/base HEAD~1`): its fcgi proxy runs too, as
 * fcgi-node-base, fcgi-deno-base and fcgi-bun-base, for a before/after in the same run.
 */
const BASELINE = option("baseline", "");
/**
 * `--workers N`: nginx with `worker_processes N`, fcgi proxy with `--workers N` (N processes on
 * the port with SO_REUSEPORT; Node 22.12 or later, see --node). Default 1: one process each.
 */
const FRONT_WORKERS = Number(option("workers", "1"));
/**
 * Kept FastCGI connections per front worker: each holds a PHP-FPM worker while open, so N front
 * workers keeping 8 each would leave all but one waiting in PHP-FPM's backlog (nginx answered
 * nothing in 5 s so). The 8 are shared out: nginx's `keepalive`, fcgi proxy's --max-connections.
 */
const KEPT_PER_FRONT_WORKER = Math.ceil(WORKERS / FRONT_WORKERS);
/** The node binary fcgi-node runs on (default: node on PATH). */
const NODE = option("node", "");
/** A folder for `perf record -g` of each fcgi front over each measured wrk run (native code, kernel and JIT). */
const PERF = option("perf", "");

const ALL_LOADS = [
  { name: "hello", path: "/hello.php", expect: "Hello, World!" },
  { name: "front controller", path: "/route/7?x=1", expect: "Hello from index.php: /route/7?x=1" },
] as const;
/** `--loads hello`: only the loads named (comma-separated; default both). */
const WANTED_LOADS = option("loads", "").split(",").filter(Boolean);
const LOADS = WANTED_LOADS.length ? ALL_LOADS.filter((l) => WANTED_LOADS.includes(l.name)) : ALL_LOADS;

/** A front under test: starts on `port`, talking to the PHP-FPM pools at `sockets` with `root` as the document root. */
interface Front {
  name: string;
  start(port: number, sockets: string[], root: string, dir: string): Promise<Service>;
  /** With --profile: the inspector's HOST:PORT, when the front runs with --inspect. */
  inspector?: string;
}

interface Sample {
  /** Requests per second, per load. */
  rps: number[];
  /** The front's CPU time per request in microseconds, per load. */
  cpu: number[];
  errors: string[];
}

/** The pids whose parent is `pid` (nginx's workers, fcgi proxy's). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((entry) => {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
    } catch {
      return false;
    }
  }).map(Number);
}

/** CPU time (user + system, clock ticks) of `pid` and its children: nginx's master and worker, Deno's or Bun's whole process. */
function cpuTicks(pid: number): number {
  const read = (p: string): [number, number] | null => {
    try {
      // Fields after the parenthesised command name: state ppid ... utime(14) stime(15).
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return [Number(fields[1]), Number(fields[11]) + Number(fields[12])];
    } catch {
      return null;
    }
  };
  let ticks = read(String(pid))?.[1] ?? 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = read(entry);
    if (stat && stat[0] === pid) ticks += stat[1];
  }
  return ticks;
}
const TICKS_PER_SECOND = 100;

/** nginx's PHP site, as Debian's default site and most guides write it. */
function nginxSite(port: number, sockets: string[], root: string, keepalive: boolean): string {
  return `
  upstream php {
    ${sockets.map((socket) => `server unix:${socket};`).join("\n    ")}
    ${keepalive ? `keepalive ${KEPT_PER_FRONT_WORKER};` : ""}
  }
  server {
    listen 127.0.0.1:${port};
    root ${root};
    index index.php;
    location / {
      try_files $uri $uri/ /index.php?$query_string;
    }
    location ~ [^/]\\.php(/|$) {
      fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
      if (!-f $document_root$fastcgi_script_name) { return 404; }
      include fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_pass php;
      ${keepalive ? "fastcgi_keep_conn on;" : ""}
    }
  }`;
}

/** Caddy's PHP site: `php_fastcgi` is its whole PHP front (try_files, split_path .php, index.php). */
function caddySite(port: number, sockets: string[], root: string): string {
  return `:${port} {
    root * ${root}
    php_fastcgi ${sockets.map((socket) => `unix/${socket}`).join(" ")}
}`;
}

/**
 * HAProxy's PHP site: an fcgi-app as the manual's PHP-FPM example has it (keep-conn, index,
 * path-info); HAProxy cannot check for a file, so a path not ending in .php goes to index.php.
 * `http-reuse always` is needed with kept connections: under the default (safe), the first
 * request of each client connection gets a FastCGI connection of its own, each kept one holds a
 * PHP-FPM worker, and with 32 wrk connections to 8 workers the rest wait in PHP-FPM's backlog
 * (0 req/s here in a 2 s run).
 */
function haproxySite(port: number, sockets: string[], root: string): string {
  return `
frontend php_web
    bind 127.0.0.1:${port}
    default_backend php

backend php
    http-reuse always
    use-fcgi-app php
    ${sockets.map((socket, i) => `server fpm${i} ${socket} proto fcgi`).join("\n    ")}

fcgi-app php
    docroot ${root}
    index index.php
    path-info ^(/.+\\.php)(/.*)?$
    option keep-conn
    set-param SCRIPT_NAME /index.php unless { path_end .php }
`;
}

/** The syscalls `--perf` counts one by one (their sum beside all of them). */
const SYSCALLS = ["read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg", "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "futex", "getpeername", "madvise", "readlink", "newfstatat", "statx", "accept4", "close"];
let profiles = 0;
/** Starts the profilers asked for on `pid` for the next SECONDS; settles when they have written their files. */
async function profile(front: Front, pid: number, load: string): Promise<void> {
  const name = `${front.name}-${load.replace(/ /g, "-")}-${++profiles}`;
  const waits: Promise<unknown>[] = [];
  const run = (command: string, args: string[]) =>
    new Promise<void>((resolve) => spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] }).once("close", () => resolve()));
  const pids = [pid, ...childrenOf(pid)].join(",");
  if (PERF) {
    waits.push(run("perf", ["record", "-g", "-F", "999", "-p", pids, "-o", join(PERF, `${name}.perf.data`), "--", "sleep", String(SECONDS)]));
    // Syscalls by kind, to divide by the requests wrk counted (printed after the run).
    const events = ["raw_syscalls:sys_enter", ...SYSCALLS.map((call) => `syscalls:sys_enter_${call}`), "context-switches"];
    waits.push(run("perf", ["stat", "-x", ",", "-e", events.join(","), "-p", pids, "-o", join(PERF, `${name}.stat`), "--", "sleep", String(SECONDS)]));
  }
  if (PROFILE && front.inspector) waits.push(run(join(repoRoot, "node_modules", ".bin", "deno"), ["run", "-A", join(repoRoot, "bench", "_cdp_profile.ts"), front.inspector, String(SECONDS * 1000), join(PROFILE, `${name}.cpuprofile`)]));
  await Promise.all(waits);
}

async function measure(front: Front, sockets: string[], root: string, dir: string): Promise<Sample> {
  const port = await freePort();
  const sample: Sample = { rps: [], cpu: [], errors: [] };
  const service = await front.start(port, sockets, root, dir);
  try {
    const base = `http://127.0.0.1:${port}`;
    for (const load of LOADS) {
      const check = await fetchWithin(base + load.path);
      if (check.status !== 200 || check.text !== load.expect) throw new Error(`${front.name} ${load.path} answered ${check.status} ${JSON.stringify(check.text.slice(0, 300))}`);
    }
    for (const load of LOADS) {
      await wrk(base + load.path, CONNECTIONS, WARMUP, { timeout: "10s" }); // warm-up: JIT, connection pools
      const profiled = PERF || (PROFILE && front.name.startsWith("fcgi-")) ? profile(front, service.pid, load.name) : undefined;
      const before = cpuTicks(service.pid);
      const result = await wrk(base + load.path, CONNECTIONS, SECONDS, { timeout: "10s" });
      const ticks = cpuTicks(service.pid) - before;
      await profiled;
      if (PERF) console.log(`${front.name} ${load.name}: ${result.requests} requests measured (perf stat files: ${PERF})`);
      sample.rps.push(result.requestsPerSecond);
      sample.cpu.push(((ticks / TICKS_PER_SECOND) * 1e6) / Math.max(1, result.requests));
      sample.errors.push(...result.errors);
      if (result.requests === 0) sample.errors.push(`${front.name} ${load.path}: no request answered in ${SECONDS} s`);
    }
  } catch (error) {
    sample.errors.push(error instanceof Error ? error.message : String(error));
  }
  if (sample.errors.length) sample.errors.push(`${front.name} output: ${service.logs().slice(-1500)}`);
  await service.stop();
  return sample;
}

async function main(): Promise<void> {
  const nginxBinary = findBinary("nginx");
  if (!nginxBinary || !findBinary("wrk")) throw new Error("bench/proxy.ts needs nginx and wrk on PATH (and php-fpm)");
  const dir = makeTempDir("fcgi-bench-proxy-");
  const root = join(dir, "www");
  mkdirSync(root);
  writeFileSync(join(root, "hello.php"), `<?php echo "Hello, World!";`);
  writeFileSync(join(root, "index.php"), `<?php echo "Hello from index.php: ", $_SERVER["REQUEST_URI"];`);
  const pools = await Promise.all(Array.from({ length: BACKENDS }, () => startPhpFpm({ listen: "unix", root, maxChildren: POOL_WORKERS })));
  const sockets = pools.map((fpm) => (fpm.address as { path: string }).path);
  try {
    // The Node proxy runs from a private build, so a concurrent `npm test` rebuilding dist/
    // cannot pull files from under it. tsc emits even with type errors elsewhere.
    console.log("building: tsc → temp");
    spawnSync(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(repoRoot, "tsconfig.json"), "--outDir", join(dir, "dist")], { stdio: "ignore" });
    if (!existsSync(join(dir, "dist", "src", "cli.js"))) throw new Error("tsc did not emit src/cli.js");
    if (BASELINE) {
      spawnSync(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(BASELINE, "tsconfig.json"), "--outDir", join(dir, "dist-base")], { stdio: "ignore" });
      if (!existsSync(join(dir, "dist-base", "src", "cli.js"))) throw new Error("tsc did not emit the baseline's src/cli.js");
    }
    const node = NODE || (findBinary("node") ?? process.execPath);
    const deno = join(repoRoot, "node_modules", ".bin", "deno");
    const bun = join(repoRoot, "node_modules", ".bin", "bun");
    const inspectPort = PROFILE ? await freePort() : 0;
    const workersArgs = FRONT_WORKERS > 1 ? ["--workers", String(FRONT_WORKERS), "--max-connections", String(Math.ceil(POOL_WORKERS / FRONT_WORKERS))] : [];
    const proxy = (name: string, command: string, prefix: string[], inspect = false): Front => ({
      name,
      ...(inspect && PROFILE ? { inspector: `127.0.0.1:${inspectPort}` } : {}),
      start: (port, sockets, root, dir) =>
        startProcess(name, command, [...prefix, "proxy", "--listen", `127.0.0.1:${port}`, ...sockets.flatMap((socket) => ["--upstream", `unix:${socket}`]), "--root", root, ...workersArgs],
          // Ready once every worker listens (a lone connect could reach the first one only).
          async (output) => FRONT_WORKERS === 1 ? canConnect(`127.0.0.1:${port}`) : / workers listening/.test(output),
          { cwd: dir }), // V8's perf and profile files land there, not in the checkout
    });
    // Each web server front runs in a folder of its own (nginx's temp files, Caddy's HOME and storage).
    const own = (dir: string, name: string): string => {
      const folder = join(dir, name);
      mkdirSync(folder, { recursive: true });
      return folder;
    };
    const nginx = (name: string, keepalive: boolean): Front => ({
      name,
      start: (port, sockets, root, dir) => startNginx(nginxBinary, own(dir, name), nginxSite(port, sockets, root, keepalive), [port], 512, FRONT_WORKERS),
    });
    // The other web servers' PHP fronts, when installed.
    const caddyBinary = findBinary("caddy");
    const haproxyBinary = findBinary("haproxy");
    const caddy: Front = { name: "caddy", start: (port, sockets, root, dir) => startCaddy(caddyBinary!, own(dir, "caddy"), caddySite(port, sockets, root), port) };
    const haproxy: Front = { name: "haproxy", start: (port, sockets, root, dir) => startHaproxy(haproxyBinary!, own(dir, "haproxy"), haproxySite(port, sockets, root), port) };
    const missing = [caddyBinary ? "" : "caddy", haproxyBinary ? "" : "haproxy"].filter(Boolean);
    if (missing.length) console.log(`not installed, left out: ${missing.join(", ")}`);
    // JIT frames named in perf's report: V8's and JSC's perf maps (/tmp/perf-PID.map).
    const inspect = PROFILE ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
    const nodeFlags = [...inspect, ...(PERF ? ["--perf-basic-prof"] : [])];
    const denoFlags = [...inspect, ...(PERF ? ["--v8-flags=--perf-basic-prof"] : [])];
    const bunFlags = PROFILE ? ["--cpu-prof", "--cpu-prof-dir", PROFILE] : [];
    const all: Front[] = [
      nginx("nginx", false),
      nginx("nginx-keepalive", true),
      ...[caddy, haproxy].filter((f) => !missing.includes(f.name)),
      proxy("fcgi-node", node, [...nodeFlags, join(dir, "dist", "src", "cli.js")], true),
      proxy("fcgi-deno", deno, ["run", "-A", ...denoFlags, join(repoRoot, "src", "cli.ts")], true),
      proxy("fcgi-bun", bun, [...bunFlags, join(repoRoot, "src", "cli.ts")]),
      ...(BASELINE ? [
        proxy("fcgi-node-base", node, [join(dir, "dist-base", "src", "cli.js")]),
        proxy("fcgi-deno-base", deno, ["run", "-A", join(BASELINE, "src", "cli.ts")]),
        proxy("fcgi-bun-base", bun, [join(BASELINE, "src", "cli.ts")]),
      ] : []),
    ];
    const fronts = ONLY.length ? all.filter((f) => ONLY.includes(f.name)) : all;

    console.log(`load before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const samples = new Map<string, Sample[]>(fronts.map((f) => [f.name, []]));
    for (let round = 1; round <= RUNS; round++) {
      // Rotate the order each round, so drifting load does not always hit the same front.
      const order = fronts.map((_, i) => fronts[(i + round - 1) % fronts.length]!);
      for (const front of order) {
        const sample = await measure(front, sockets, root, dir);
        samples.get(front.name)!.push(sample);
        console.log(
          `round ${round} ${front.name.padEnd(16)} ` +
            LOADS.map((l, i) => `${l.name} ${(sample.rps[i] ?? 0).toFixed(0)} req/s (${(sample.cpu[i] ?? 0).toFixed(0)} µs CPU/req)`).join(", ") +
            `, load ${loadavg()[0]!.toFixed(2)}` +
            (sample.errors.length ? `\n  ERRORS: ${sample.errors.join("\n  ")}` : ""),
        );
      }
    }
    console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

    const medians = new Map([...samples].map(([name, list]) => [name, {
      rps: LOADS.map((_, i) => median(list.map((s) => s.rps[i] ?? 0))),
      cpu: LOADS.map((_, i) => median(list.map((s) => s.cpu[i] ?? 0))),
      failed: list.filter((s) => s.errors.length > 0).length,
    }]));
    // The ratio is to the faster nginx configuration, load by load.
    const best = LOADS.map((_, i) => Math.max(...["nginx", "nginx-keepalive"].map((n) => medians.get(n)?.rps[i] ?? 0)));
    const ratio = (value: number, i: number) => (best[i] ? `${(value / best[i]!).toFixed(2)}×` : "–");
    const fpmSetup = BACKENDS > 1 ? `${BACKENDS} PHP-FPM pools, pm = static, ${POOL_WORKERS} workers each, Unix sockets` : `PHP-FPM pm = static, ${WORKERS} workers, Unix socket`;
    const fronts1 = FRONT_WORKERS > 1 ? `; every front ${FRONT_WORKERS} worker processes (nginx worker_processes, fcgi proxy --workers)` : "";
    console.log(`\nmedians of ${RUNS} rounds, ${SECONDS} s each; wrk -t1 -c${CONNECTIONS}; ${fpmSetup}${fronts1}\n`);
    console.log(`| front | ${LOADS.map((l) => `${l.name} req/s | vs nginx | front CPU µs/req`).join(" | ")} |`);
    console.log(`|---|${LOADS.map(() => "---:|---:|---:").join("|")}|`);
    for (const [name, m] of medians) {
      console.log(`| ${name} | ${LOADS.map((_, i) => `${m.rps[i]!.toFixed(0)} | ${ratio(m.rps[i]!, i)} | ${m.cpu[i]!.toFixed(0)}`).join(" | ")} |` +
        (m.failed ? ` ${m.failed} of ${RUNS} rounds had errors (above)` : ""));
    }
    console.log(`\nversions: node ${version(node, ["--version"])}, ${version(deno, ["--version"])}, bun ${version(bun, ["--version"])}, ` +
      `${version(nginxBinary, ["-v"])}, ${caddyBinary ? `caddy ${version(caddyBinary, ["version"])}, ` : ""}` +
      `${haproxyBinary ? `${version(haproxyBinary, ["-v"])}, ` : ""}${version(phpFpmBinary() ?? "php-fpm", ["-v"])}, ${version("wrk", ["-v"])}`);
  } finally {
    await Promise.all(pools.map((fpm) => fpm.stop()));
    removeDir(dir);
  }
}

await main();
