/**
 * The node:http apps question: what does an Express app gain or lose served through fcgi/node
 * behind nginx, next to node-fastcgi 2.0.0 (the package such users find first, with its own
 * `createServer`) and next to the same app on plain node:http?
 *
 * One Express 5 app (bench/_express_app.ts: `/hello` answers "Hello, World!" as text/plain,
 * `/json` a small JSON object); only its server line differs:
 * - fcgi-node, fcgi-deno, fcgi-bun: fcgi/node's `createServer(app)` on a Unix socket, behind nginx
 *   with the README snippet (examples/nginx.conf: `fastcgi_keep_conn on`, upstream `keepalive`);
 * - node-fastcgi: node-fastcgi's `createServer(app)` on Node, behind the same nginx;
 * - http-node, http-deno, http-bun: `http.createServer(app)`, hit by wrk directly: no front.
 *
 * Rounds alternate the contenders; the table has medians and the median of each round's ratio to
 * fcgi on Node and to node:http on the same runtime (rounds differ on a shared machine, the runs
 * within a round much less), plus the app's CPU time per request.
 *
 * ```sh
 * node scripts/run-ts.mjs bench/express.ts [--runs 5] [--seconds 10] [--only fcgi-node,http-node] [--loads hello,json]
 * ```
 * Needs nginx and wrk. Linux only (reads /proc).
 * @module
 */
import { symlinkSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { type Service, canConnect, fetchWithin, findBinary, freePort, makeTempDir, removeDir, startProcess } from "../test/interop/_servers.ts";
import { compileTo, cpuSeconds, runtimeBinaries, scriptCommand, startAppAndNginx } from "./_apps.ts";
import { median, option, version, wrk } from "./_wrk.ts";

const RUNS = Number(option("runs", "5"));
const SECONDS = Number(option("seconds", "10"));
const ONLY = option("only", "").split(",").filter(Boolean);
const LOADS = option("loads", "hello").split(",").filter(Boolean) as ("hello" | "json")[];
const CONNECTIONS = 32;
const APP = "bench/_express_app.ts";

/** What each route must answer before a contender's numbers count. */
const EXPECTED = {
  hello: { type: /^text\/plain/, body: "Hello, World!" },
  json: { type: /^application\/json/, body: JSON.stringify({ message: "Hello, World!" }) },
};

type Runtime = "node" | "deno" | "bun";

interface Contender {
  name: string;
  runtime: Runtime;
  /** nginx over a Unix socket, or wrk straight at the app's HTTP port. */
  front: "nginx" | "none";
  /** The command that starts the app on `address` (a socket path, or a port for node:http). */
  start(address: string): [string, string[]];
}

interface Sample {
  /** Per load: req/s, and the app's CPU time (user + system) per request in µs. */
  rps: Record<string, number>;
  cpuUs: Record<string, number>;
  errors: string[];
}

async function measure(contender: Contender, dir: string, nginxBinary: string): Promise<Sample> {
  const services: Service[] = [];
  const sample: Sample = { rps: {}, cpuUs: {}, errors: [] };
  try {
    let app: Service;
    let base: string;
    if (contender.front === "nginx") {
      const socket = join(dir, `${contender.name}.sock`);
      const started = await startAppAndNginx(contender.name, contender.start(socket), socket, dir, nginxBinary, CONNECTIONS, services);
      app = started.app;
      base = started.nginx.urls[0]!;
    } else {
      const port = await freePort();
      const [command, args] = contender.start(String(port));
      app = await startProcess(contender.name, command, args, () => canConnect(`127.0.0.1:${port}`));
      services.push(app);
      base = `http://127.0.0.1:${port}`;
    }
    try {
      for (const load of LOADS) {
        const url = `${base}/${load}`;
        const check = await fetchWithin(url);
        if (check.status !== 200 || check.text !== EXPECTED[load].body || !EXPECTED[load].type.test(check.headers.get("content-type") ?? "")) {
          throw new Error(`${url} answered ${check.status} ${check.headers.get("content-type")} ${check.text.slice(0, 200)}`);
        }
        await wrk(url, CONNECTIONS, 1); // warm-up (JIT, nginx's kept connections)
        const cpuBefore = cpuSeconds(app.pid);
        const result = await wrk(url, CONNECTIONS, SECONDS);
        sample.rps[load] = result.requestsPerSecond;
        sample.cpuUs[load] = ((cpuSeconds(app.pid) - cpuBefore) * 1e6) / result.requests;
        sample.errors.push(...result.errors);
      }
    } catch (error) {
      sample.errors.push(error instanceof Error ? error.message : String(error));
    }
    if (sample.errors.length) sample.errors.push(`logs: ${services.map((s) => `${s.name}: ${s.logs().slice(-1500)}`).join("\n")}`);
    return sample;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

/** The median over rounds of `sample / reference` in the same round, as "1.23×", or "–". */
function pairedRatio(list: Sample[], reference: Sample[] | undefined, load: string): string {
  if (!reference) return "–";
  const ratios = list.map((s, i) => s.rps[load]! / reference[i]!.rps[load]!).filter(Number.isFinite);
  return ratios.length ? `${median(ratios).toFixed(2)}×` : "–";
}

async function main(): Promise<void> {
  const nginxBinary = findBinary("nginx");
  if (!nginxBinary || !findBinary("wrk")) throw new Error("bench/express.ts needs nginx and wrk on PATH");
  const dir = makeTempDir("fcgi-bench-express-");
  try {
    console.log("building: tsc → temp");
    compileTo(join(dir, "dist"));
    // The compiled app imports express from outside the checkout: let Node find it from there.
    symlinkSync(join(repoRoot, "node_modules"), join(dir, "node_modules"));
    const dist = join(dir, "dist");
    const runtimes: Runtime[] = ["node", "deno", "bun"];
    const all: Contender[] = [
      ...runtimes.map((runtime): Contender => ({ name: `fcgi-${runtime}`, runtime, front: "nginx", start: (s) => scriptCommand(runtime, dist, APP, ["fcgi", s]) })),
      { name: "node-fastcgi", runtime: "node", front: "nginx", start: (s) => scriptCommand("node", dist, APP, ["node-fastcgi", s]) },
      ...runtimes.map((runtime): Contender => ({ name: `http-${runtime}`, runtime, front: "none", start: (p) => scriptCommand(runtime, dist, APP, ["http", p]) })),
    ];
    const contenders = ONLY.length ? all.filter((c) => ONLY.includes(c.name)) : all;

    console.log(`load before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const samples = new Map<string, Sample[]>(contenders.map((c) => [c.name, []]));
    for (let round = 1; round <= RUNS; round++) {
      console.log(`round ${round}: load ${loadavg()[0]!.toFixed(2)}`);
      for (const contender of contenders) {
        const sample = await measure(contender, dir, nginxBinary);
        samples.get(contender.name)!.push(sample);
        console.log(
          `round ${round} ${contender.name.padEnd(13)} ` +
            LOADS.map((load) => `${load} ${(sample.rps[load] ?? NaN).toFixed(0)} req/s (${(sample.cpuUs[load] ?? NaN).toFixed(1)} µs CPU each)`).join(", ") +
            (sample.errors.length ? `\n  ERRORS: ${sample.errors.join("\n  ")}` : ""),
        );
      }
    }
    console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

    console.log(`\nmedians of ${RUNS} rounds, ${SECONDS} s each; wrk -t1 -c${CONNECTIONS}\n`);
    const columns = LOADS.flatMap((load) => [`${load} req/s`, "vs fcgi on Node", "vs node:http, same runtime", `app CPU µs/req`]);
    console.log(`| app | front | ${columns.join(" | ")} |`);
    console.log(`|---|---|${columns.map(() => "---:").join("|")}|`);
    for (const contender of contenders) {
      const list = samples.get(contender.name)!;
      const cells = LOADS.flatMap((load) => [
        median(list.map((s) => s.rps[load] ?? NaN)).toFixed(0),
        pairedRatio(list, samples.get("fcgi-node"), load),
        pairedRatio(list, samples.get(`http-${contender.runtime}`), load),
        median(list.map((s) => s.cpuUs[load] ?? NaN)).toFixed(1),
      ]);
      const failed = list.filter((s) => s.errors.length > 0).length;
      const front = contender.front === "nginx" ? "nginx, Unix socket" : "none (wrk → app)";
      console.log(`| ${contender.name} | ${front} | ${cells.join(" | ")} |${failed ? ` ${failed} of ${RUNS} rounds had errors (above) |` : ""}`);
    }
    const { node, deno, bun } = runtimeBinaries;
    console.log(`\nversions: node ${version(node, ["--version"])}, ${version(deno, ["--version"])}, bun ${version(bun, ["--version"])}, ` +
      `express ${version(node, ["-p", `require(${JSON.stringify(join(repoRoot, "node_modules", "express", "package.json"))}).version`])}, ` +
      `node-fastcgi ${version(node, ["-p", `require(${JSON.stringify(join(repoRoot, "node_modules", "node-fastcgi", "package.json"))}).version`])}, ` +
      `${version(nginxBinary, ["-v"])}, ${version("wrk", ["-v"])}`);
  } finally {
    removeDir(dir);
  }
}

await main();
