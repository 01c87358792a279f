/**
 * The process-manager question: what do `fcgi serve --workers 2` buy on two cores, next to Go's
 * net/http/fcgi (which spreads over both cores by itself), PHP-FPM with two children, and fcgi in
 * one process; and what does a pool lose when a worker is killed, reloaded or recycled under load?
 *
 * Scaling: wrk → nginx (examples/nginx.conf: `fastcgi_keep_conn on`, upstream keepalive) → app
 * over a Unix socket, the 13-byte /hello, apps interleaved in each round, medians.
 * Chaos: `--workers 4` under a steady wrk load through nginx; every non-2xx answer and socket
 * error counts as a failed request:
 * - kill: SIGKILL to one worker every 2 s (failed requests per kill);
 * - reload: one SIGHUP (the time from the signal to the manager's "reload done", and failures);
 * - recycle: `--recycle-after 500` (how many workers were recycled, and failures).
 *
 * ```sh
 * node scripts/run-ts.mjs bench/workers.ts [--runs 3] [--seconds 5] [--only go,fcgi-node-w2] [--no-chaos]
 * ```
 * Needs nginx, wrk, Debian's golang-go and php-fpm (with its opcache). Linux only.
 * @module
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { phpFpmBinary } from "../test/_support/phpfpm.ts";
import { wrk, type WrkResult, median, option, version } from "./_wrk.ts";
import {
  type Service,
  canConnect,
  fetchWithin,
  findBinary,
  freePort,
  isRunning,
  makeTempDir,
  removeDir,
  renderExample,
  sleep,
  startNginx,
  startProcess,
} from "../test/interop/_servers.ts";

const RUNS = Number(option("runs", "3"));
const SECONDS = Number(option("seconds", "5"));
const ONLY = option("only", "").split(",").filter(Boolean);
const CHAOS = !process.argv.includes("--no-chaos");
const CONNECTIONS = 32;
const CHAOS_SECONDS = 10;
const CHAOS_CONNECTIONS = 8;

const FCGI_APP = `export default { fetch: () => new Response("Hello, World!", { headers: { "content-type": "text/plain" } }) };\n`;
const PHP_APP = `<?php header("Content-Type: text/plain"); echo "Hello, World!";\n`;

interface Contestant {
  name: string;
  /** Starts the app on `socket`; resolves once it accepts connections. */
  start(socket: string): Promise<Service>;
}

/** nginx in front of `socket`, as the README configures it; `scriptFilename` for PHP-FPM. */
function startFront(nginxBinary: string, dir: string, socket: string, port: number, scriptFilename?: string): Promise<Service & { urls: string[] }> {
  const http = renderExample("nginx.conf", [
    ["server 127.0.0.1:9000;", `server unix:${socket};`],
    ["keepalive 8;", `keepalive ${CONNECTIONS};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
    ...(scriptFilename ? [["include fastcgi_params;", `include fastcgi_params;\n        fastcgi_param SCRIPT_FILENAME ${scriptFilename};`] as const] : []),
  ]);
  return startNginx(nginxBinary, dir, http, [port]);
}

/** Failed requests of a wrk run: its non-2xx answers plus its socket errors. */
function failures(result: WrkResult): number {
  let failed = 0;
  for (const line of result.errors) {
    const non2xx = /^(\d+) non-2xx/.exec(line);
    if (non2xx) failed += Number(non2xx[1]);
    const socket = /connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(line);
    if (socket) failed += Number(socket[1]) + Number(socket[2]) + Number(socket[3]) + Number(socket[4]);
  }
  return failed;
}

/** The pids of the workers the manager says it started, oldest first. */
function workerPids(log: string): number[] {
  return [...log.matchAll(/started worker \d+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
}

async function scaling(contestants: Contestant[], nginxBinary: string, dir: string): Promise<void> {
  const samples = new Map<string, number[]>(contestants.map((c) => [c.name, []]));
  const failed = new Map<string, number>(contestants.map((c) => [c.name, 0]));
  for (let round = 1; round <= RUNS; round++) {
    console.log(`round ${round}: load ${loadavg()[0]!.toFixed(2)}`);
    for (const contestant of contestants) {
      const socket = join(dir, `${contestant.name}.sock`);
      const services: Service[] = [];
      try {
        services.push(await contestant.start(socket));
        const port = await freePort();
        const nginx = await startFront(nginxBinary, dir, socket, port, contestant.name === "php-fpm" ? join(dir, "hello.php") : undefined);
        services.push(nginx);
        const url = `${nginx.urls[0]}/hello`;
        const check = await fetchWithin(url);
        if (check.status !== 200 || check.text !== "Hello, World!") throw new Error(`${contestant.name}: /hello answered ${check.status} ${check.text}`);
        await wrk(url, CONNECTIONS, 1); // warm-up (JIT, opcache, connection pool)
        const result = await wrk(url, CONNECTIONS, SECONDS);
        samples.get(contestant.name)!.push(result.requestsPerSecond);
        failed.set(contestant.name, failed.get(contestant.name)! + failures(result));
        console.log(`round ${round} ${contestant.name.padEnd(14)} ${result.requestsPerSecond.toFixed(0)} req/s${result.errors.length ? `  ERRORS: ${result.errors.join("; ")}` : ""}`);
      } finally {
        for (const service of services.reverse()) await service.stop();
      }
    }
  }
  const medians = new Map([...samples].map(([name, list]) => [name, median(list)]));
  const go = medians.get("go");
  console.log(`\nhello behind nginx, medians of ${RUNS} runs of ${SECONDS} s; wrk -t1 -c${CONNECTIONS}\n`);
  console.log("| app | hello req/s | vs Go | failed requests |");
  console.log("|---|---:|---:|---:|");
  for (const [name, value] of medians) {
    console.log(`| ${name} | ${value.toFixed(0)} | ${go ? `${(value / go).toFixed(2)}×` : "–"} | ${failed.get(name)} |`);
  }
  for (const runtime of ["node", "deno", "bun"]) {
    const one = medians.get(`fcgi-${runtime}`);
    const two = medians.get(`fcgi-${runtime}-w2`);
    if (one && two) console.log(`scaling on ${runtime}: --workers 2 gives ${(two / one).toFixed(2)}× one process`);
  }
}

type ChaosKind = "kill" | "reload" | "recycle";

async function chaos(runtime: string, kind: ChaosKind, command: (socket: string, extra: string[]) => [string, string[]], nginxBinary: string, dir: string): Promise<string> {
  const socket = join(dir, `chaos-${runtime}-${kind}.sock`);
  const [cmd, args] = command(socket, ["--workers", "4", ...(kind === "recycle" ? ["--recycle-after", "500"] : [])]);
  const services: Service[] = [];
  try {
    const manager = await startProcess(`fcgi-${runtime} --workers 4`, cmd, args, () => canConnect(socket));
    services.push(manager);
    await sleep(500); // every worker up, not only the first that accepts
    const port = await freePort();
    const nginx = await startFront(nginxBinary, dir, socket, port);
    services.push(nginx);
    const url = `${nginx.urls[0]}/hello`;
    await wrk(url, CHAOS_CONNECTIONS, 1);
    const load = wrk(url, CHAOS_CONNECTIONS, CHAOS_SECONDS);
    let detail = "";
    if (kind === "kill") {
      let kills = 0;
      for (let t = 2; t < CHAOS_SECONDS; t += 2) {
        await sleep(2000);
        const victim = workerPids(manager.logs()).filter(isRunning).at(-1);
        if (victim !== undefined) {
          process.kill(victim, "SIGKILL");
          kills++;
        }
      }
      const result = await load;
      const failed = failures(result);
      detail = `${kills} SIGKILLs, ${failed} failed of ${result.requests} (${(failed / Math.max(1, kills)).toFixed(1)} per kill)`;
    } else if (kind === "reload") {
      await sleep(3000);
      const before = manager.logs().length;
      const sent = performance.now();
      process.kill(manager.pid, "SIGHUP");
      let took = NaN;
      while (performance.now() - sent < 20_000) {
        if (/reload done/.test(manager.logs().slice(before))) {
          took = performance.now() - sent;
          break;
        }
        await sleep(10);
      }
      const result = await load;
      detail = `reload done in ${took.toFixed(0)} ms, ${failures(result)} failed of ${result.requests}`;
    } else {
      const result = await load;
      const recycled = (manager.logs().match(/recycling /g) ?? []).length;
      detail = `${recycled} workers recycled, ${failures(result)} failed of ${result.requests}`;
    }
    console.log(`chaos ${runtime} ${kind}: ${detail}`);
    return detail;
  } catch (error) {
    return `error: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

async function main(): Promise<void> {
  const nginxBinary = findBinary("nginx");
  const fpm = phpFpmBinary();
  if (!nginxBinary || !findBinary("wrk") || !findBinary("go") || !fpm) throw new Error("bench/workers.ts needs nginx, wrk, go and php-fpm on PATH");
  const dir = makeTempDir("fcgi-bench-workers-");
  try {
    console.log("building: tsc → temp, go build → temp");
    spawnSync(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(repoRoot, "tsconfig.json"), "--outDir", join(dir, "dist")], { stdio: "ignore" });
    const built = spawnSync("go", ["build", "-o", join(dir, "go-fcgi"), join(repoRoot, "bench", "go", "main.go")], {
      env: { ...process.env, GO111MODULE: "off", GOPROXY: "off", GOFLAGS: "", CGO_ENABLED: "0" },
      encoding: "utf8",
    });
    if (built.status !== 0) throw new Error(`go build failed: ${built.stderr}`);
    const app = join(dir, "app.mjs");
    writeFileSync(app, FCGI_APP);
    writeFileSync(join(dir, "hello.php"), PHP_APP);

    const node = findBinary("node") ?? process.execPath;
    const deno = join(repoRoot, "node_modules", ".bin", "deno");
    const bun = join(repoRoot, "node_modules", ".bin", "bun");
    const fcgi: Record<string, (socket: string, extra: string[]) => [string, string[]]> = {
      node: (s, extra) => [node, [join(dir, "dist", "src", "cli.js"), "serve", app, "--listen", s, ...extra]],
      deno: (s, extra) => [deno, ["run", "-A", join(repoRoot, "src", "cli.ts"), "serve", app, "--listen", s, ...extra]],
      bun: (s, extra) => [bun, [join(repoRoot, "src", "cli.ts"), "serve", app, "--listen", s, ...extra]],
    };
    const started = (name: string, [cmd, args]: [string, string[]], socket: string) => startProcess(name, cmd, args, () => canConnect(socket));
    const all: Contestant[] = [
      { name: "go", start: (s) => started("go", [join(dir, "go-fcgi"), ["-listen", `unix:${s}`]], s) },
      {
        name: "php-fpm",
        start: (s) => {
          const config = join(dir, "fpm.conf");
          writeFileSync(config, [
            "[global]", `error_log = ${join(dir, "fpm.log")}`, "daemonize = no",
            "[bench]", `listen = ${s}`, "listen.backlog = 511", "pm = static", "pm.max_children = 2", "",
          ].join("\n"));
          return started("php-fpm", [fpm, ["-n", "-F", "-R", "-y", config, "-d", "zend_extension=opcache", "-d", "opcache.enable=1"]], s);
        },
      },
      ...["node", "deno", "bun"].flatMap((runtime) => [
        { name: `fcgi-${runtime}`, start: (s: string) => started(`fcgi-${runtime}`, fcgi[runtime]!(s, []), s) },
        { name: `fcgi-${runtime}-w2`, start: (s: string) => started(`fcgi-${runtime}-w2`, fcgi[runtime]!(s, ["--workers", "2"]), s) },
      ]),
    ];
    const contestants = ONLY.length ? all.filter((c) => ONLY.includes(c.name)) : all;
    console.log(`load before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    if (contestants.length) await scaling(contestants, nginxBinary, dir);
    if (CHAOS) {
      console.log(`\nchaos: --workers 4 under wrk -t1 -c${CHAOS_CONNECTIONS} for ${CHAOS_SECONDS} s through nginx\n`);
      const rows: string[] = [];
      for (const runtime of ["node", "deno", "bun"]) {
        const cells: string[] = [];
        for (const kind of ["kill", "reload", "recycle"] as const) cells.push(await chaos(runtime, kind, fcgi[runtime]!, nginxBinary, dir));
        rows.push(`| ${runtime} | ${cells.join(" | ")} |`);
      }
      console.log("| runtime | SIGKILL a worker every 2 s | one SIGHUP (rolling reload) | --recycle-after 500 |");
      console.log("|---|---|---|---|");
      for (const row of rows) console.log(row);
    }
    console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(`\nversions: node ${version(node, ["--version"])}, ${version(deno, ["--version"])}, bun ${version(bun, ["--version"])}, ` +
      `${version("go", ["version"])}, ${version(nginxBinary, ["-v"])}, ${version(fpm, ["-v"])}, ${version("wrk", ["-v"])}`);
  } finally {
    removeDir(dir);
  }
}

await main();
