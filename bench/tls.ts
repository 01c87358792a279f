/**
 * What TLS costs `fcgi serve` behind HAProxy: wrk → HAProxy (HTTP) → `proto fcgi` → the hello app
 * (bench/_apps.ts) on 127.0.0.1 over TCP, in three ways, on each runtime:
 *
 * - plain: `server app 127.0.0.1:PORT proto fcgi`;
 * - tls: `... ssl verify required ca-file CA`, the app started with `--tls-cert --tls-key`;
 * - mtls: the same, HAProxy also showing a client certificate (`crt`), the app requiring it
 *   (`--tls-client-ca`).
 *
 * HAProxy keeps its FastCGI connections (`option keep-conn`, `http-reuse always`), as a production
 * front does, so a handshake is paid once per connection and the figures are what encryption costs
 * per request. Certificates are made by openssl in a temporary folder (test/_support/tls.ts).
 * Every configuration runs once per round, rounds interleave them; medians of req/s and of CPU
 * time per request of the app and of HAProxy (from /proc).
 *
 * ```sh
 * node scripts/run-ts.mjs bench/tls.ts [--runs 3] [--seconds 5] [--connections 32] [--runtimes node,deno,bun]
 * ```
 * Needs haproxy, wrk and openssl. Linux only (reads /proc).
 * @module
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { FCGI_APP, compileTo, cpuSeconds, runtimeBinaries, serveCommand } from "./_apps.ts";
import { median, option, version, wrk } from "./_wrk.ts";
import { makeTestCerts, type TestCerts } from "../test/_support/tls.ts";
import { canConnect, fetchWithin, findBinary, freePort, makeTempDir, removeDir, type Service, startHaproxy, startProcess } from "../test/interop/_servers.ts";

const RUNS = Number(option("runs", "3"));
const SECONDS = Number(option("seconds", "5"));
const CONNECTIONS = Number(option("connections", "32"));
const RUNTIMES = option("runtimes", "node,deno,bun").split(",").filter(Boolean) as Array<"node" | "deno" | "bun">;
const MODES = ["plain", "tls", "mtls"] as const;
type Mode = (typeof MODES)[number];

/** The app's TLS flags and HAProxy's `server` line options for a mode. */
function tlsSetup(mode: Mode, certs: TestCerts): { app: string[]; haproxy: string } {
  if (mode === "plain") return { app: [], haproxy: "" };
  const app = ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey];
  if (mode === "tls") return { app, haproxy: ` ssl verify required ca-file ${certs.ca}` };
  return { app: [...app, "--tls-client-ca", certs.ca], haproxy: ` ssl verify required ca-file ${certs.ca} crt ${certs.clientBundle}` };
}

function haproxyConfig(port: number, appPort: number, serverOptions: string, root: string): string {
  return `
frontend web
    bind 127.0.0.1:${port}
    default_backend app

backend app
    http-reuse always
    use-fcgi-app app
    server app1 127.0.0.1:${appPort} proto fcgi${serverOptions}

fcgi-app app
    docroot ${root}
    option keep-conn
`;
}

interface Sample {
  rps: number;
  /** CPU time per request, µs: the app, HAProxy. */
  appCpu: number;
  frontCpu: number;
  errors: string[];
}

async function measure(runtime: "node" | "deno" | "bun", mode: Mode, dist: string, appFile: string, certs: TestCerts, dir: string): Promise<Sample> {
  const haproxyBinary = findBinary("haproxy")!;
  const appPort = await freePort();
  const port = await freePort();
  const setup = tlsSetup(mode, certs);
  const [command, args] = serveCommand(runtime, dist, appFile, `127.0.0.1:${appPort}`, setup.app);
  const services: Service[] = [];
  const sample: Sample = { rps: 0, appCpu: 0, frontCpu: 0, errors: [] };
  try {
    const app = await startProcess(`${runtime}-${mode}`, command, args, () => canConnect(`127.0.0.1:${appPort}`));
    services.push(app);
    const haproxy = await startHaproxy(haproxyBinary, dir, haproxyConfig(port, appPort, setup.haproxy, dir), port);
    services.push(haproxy);
    const url = `http://127.0.0.1:${port}/hello`;
    const check = await fetchWithin(url);
    if (check.status !== 200 || check.text !== "Hello, World!") throw new Error(`${runtime} ${mode}: /hello answered ${check.status} ${JSON.stringify(check.text.slice(0, 300))}`);
    await wrk(url, CONNECTIONS, 1, { timeout: "10s" }); // warm-up: JIT, HAProxy's kept connections
    const before = [cpuSeconds(app.pid), cpuSeconds(haproxy.pid)];
    const result = await wrk(url, CONNECTIONS, SECONDS, { timeout: "10s" });
    const requests = Math.max(1, result.requests);
    sample.rps = result.requestsPerSecond;
    sample.appCpu = ((cpuSeconds(app.pid) - before[0]!) * 1e6) / requests;
    sample.frontCpu = ((cpuSeconds(haproxy.pid) - before[1]!) * 1e6) / requests;
    sample.errors.push(...result.errors);
    if (result.requests === 0) sample.errors.push(`${runtime} ${mode}: no request answered in ${SECONDS} s`);
  } catch (error) {
    sample.errors.push(error instanceof Error ? error.message : String(error));
  }
  if (sample.errors.length) sample.errors.push(...services.map((s) => `${s.name} output: ${s.logs().slice(-1500)}`));
  for (const service of services.reverse()) await service.stop();
  return sample;
}

async function main(): Promise<void> {
  for (const binary of ["haproxy", "wrk", "openssl"]) if (!findBinary(binary)) throw new Error(`bench/tls.ts needs ${binary} on PATH`);
  const dir = makeTempDir("fcgi-bench-tls-");
  const certs = makeTestCerts();
  try {
    const dist = join(dir, "dist");
    console.log("building: tsc → temp");
    compileTo(dist);
    const appFile = join(dir, "app.mjs");
    writeFileSync(appFile, FCGI_APP);
    console.log(`load before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const configs = RUNTIMES.flatMap((runtime) => MODES.map((mode) => ({ runtime, mode })));
    const samples = new Map<string, Sample[]>(configs.map((c) => [`${c.runtime} ${c.mode}`, []]));
    for (let round = 1; round <= RUNS; round++) {
      // Rotate the order each round, so drifting load does not always hit the same configuration.
      const order = configs.map((_, i) => configs[(i + round - 1) % configs.length]!);
      for (const { runtime, mode } of order) {
        const sample = await measure(runtime, mode, dist, appFile, certs, dir);
        samples.get(`${runtime} ${mode}`)!.push(sample);
        console.log(
          `round ${round} ${`${runtime} ${mode}`.padEnd(10)} ${sample.rps.toFixed(0)} req/s, app ${sample.appCpu.toFixed(0)} µs CPU/req, haproxy ${sample.frontCpu.toFixed(0)} µs, load ${loadavg()[0]!.toFixed(2)}` +
            (sample.errors.length ? `\n  ERRORS: ${sample.errors.join("\n  ")}` : ""),
        );
      }
    }
    console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(`\nmedians of ${RUNS} rounds, ${SECONDS} s each; wrk -t1 -c${CONNECTIONS} → HAProxy → fcgi serve (hello) over TCP\n`);
    console.log("| app | req/s | vs plain | app CPU µs/req | HAProxy CPU µs/req |");
    console.log("|---|---:|---:|---:|---:|");
    for (const runtime of RUNTIMES) {
      const plain = median(samples.get(`${runtime} plain`)!.map((s) => s.rps));
      for (const mode of MODES) {
        const list = samples.get(`${runtime} ${mode}`)!;
        const rps = median(list.map((s) => s.rps));
        const failed = list.filter((s) => s.errors.length > 0).length;
        console.log(`| ${runtime} ${mode} | ${rps.toFixed(0)} | ${plain ? (rps / plain).toFixed(2) : "–"}× | ${median(list.map((s) => s.appCpu)).toFixed(0)} | ${median(list.map((s) => s.frontCpu)).toFixed(0)} |` +
          (failed ? ` ${failed} of ${RUNS} rounds had errors (above)` : ""));
      }
    }
    console.log(`\nversions: node ${version(runtimeBinaries.node, ["--version"])}, ${version(runtimeBinaries.deno, ["--version"])}, bun ${version(runtimeBinaries.bun, ["--version"])}, ` +
      `${version(findBinary("haproxy")!, ["-v"])}, ${version("openssl", ["version"])}, ${version("wrk", ["-v"])}`);
  } finally {
    certs.remove();
    removeDir(dir);
  }
}

await main();
