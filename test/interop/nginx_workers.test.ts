// `fcgi serve --workers` behind a real nginx (examples/nginx.conf: kept connections, upstream
// keepalive pool), under bounded load: a killed worker is replaced within 1 s and only its
// in-flight requests fail; SIGHUP reloads the code with 0 failures; SIGTERM to one worker and
// recycling fail nothing; a blocked event loop is killed and nginx answers 502 in time; scaling
// signals; a module that cannot load does not make the manager spin; nothing outlives the manager.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../_support/poll.ts";
import { childPids, load, servedAfter, startManager } from "./_pool.ts";
import { type Service, type WebServer, fetchWithin, freePort, makeTempDir, mustHave, removeDir, renderExample, sleep, startNginx, webServerBinary, isRunning, stopAll } from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");

/** The app, as plain JavaScript so every runtime (Node 20 too) loads it from a temporary folder. */
function appSource(version: string): string {
  return `import process from "node:process";
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/spin") for (;;) {}
    if (url.pathname === "/slow") await new Promise((resolve) => setTimeout(resolve, 50));
    // Memory the worker keeps, written so that it is resident: what --max-rss is for.
    if (url.pathname === "/grow") globalThis.kept = new Uint8Array(Number(url.searchParams.get("mib")) * 1048576).fill(1);
    return new Response("${version} " + process.pid + "\\n");
  },
};
`;
}

interface Pool {
  manager: Service;
  url: string;
  module: string;
  nginx: WebServer;
  workers: number;
}

async function startPool(dir: string, listen: string, upstream: string, workers: number, extra: string[] = []): Promise<Pool> {
  const binary = mustHave(nginxBinary.path, "nginx");
  const module = join(dir, `app-${workers}-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(module, appSource("v1"));
  const manager = await startManager(["serve", module, "--workers", String(workers), "--listen", listen, "--close-timeout", "5s", ...extra], (logs) => (logs.match(/listening on/g)?.length ?? 0) >= workers);
  const port = await freePort();
  const site = renderExample("nginx.conf", [
    ["fcgi_app", `pool_${port}`],
    ["server 127.0.0.1:9000;", `server ${upstream};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
  ]);
  const nginxDir = makeTempDir("fcgi-nginx-");
  const nginx = await startNginx(binary, nginxDir, site, [port]);
  return { manager, url: nginx.urls[0]!, module, nginx, workers };
}

describe("fcgi serve --workers behind nginx", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  const ready = setup(() => {
    dir = makeTempDir("fcgi-workers-");
  });
  after(async () => {
    await stopAll(services, dir);
  });

  async function pool(listen: "unix" | "tcp", workers: number, extra: string[] = []): Promise<Pool> {
    ready();
    let address: string;
    let upstream: string;
    if (listen === "unix") {
      const path = join(dir, `pool-${Math.random().toString(36).slice(2)}.sock`);
      address = `unix:${path}`;
      upstream = `unix:${path}`;
    } else {
      address = `127.0.0.1:${await freePort()}`;
      upstream = address;
    }
    const started = await startPool(dir, address, upstream, workers, extra);
    services.push(started.manager, started.nginx);
    return started;
  }

  async function killAndReplace(p: Pool): Promise<void> {
    const before = childPids(p.manager.pid);
    assert.equal(before.length, p.workers, `the pool has ${p.workers} workers: ${before}`);
    const traffic = load(p.url);
    await sleep(500);
    const victim = before[0]!;
    const killedAt = Date.now();
    process.kill(victim, "SIGKILL");
    await waitFor(() => {
      const now = childPids(p.manager.pid);
      return now.length === p.workers && !now.includes(victim);
    }, 5000, "a replacement worker");
    const replacedIn = Date.now() - killedAt;
    await servedAfter(traffic);
    const result = await traffic.stop();
    assert.ok(replacedIn < 1000, `replaced in ${replacedIn} ms`);
    assert.ok(result.ok >= 20, `requests were served: ${result.ok}`);
    // Only the requests the killed worker was running can fail: one per client at most.
    assert.ok(result.failed.length <= 4, `failed: ${result.failed.join("; ")}`);
    assert.match(p.manager.logs(), new RegExp(`\\(pid ${victim}\\) was killed by SIGKILL`));
  }

  async function reloadUnderLoad(p: Pool): Promise<void> {
    const before = childPids(p.manager.pid);
    const traffic = load(p.url);
    await sleep(400);
    writeFileSync(p.module, appSource("v2"));
    process.kill(p.manager.pid, "SIGHUP");
    await waitFor(() => /reload done/.test(p.manager.logs()), 20_000, "the reload");
    await waitFor(() => before.every((pid) => !isRunning(pid)), 10_000, "the old workers to exit");
    await servedAfter(traffic);
    const result = await traffic.stop();
    const afterPids = childPids(p.manager.pid);
    assert.equal(afterPids.length, p.workers);
    assert.ok(afterPids.every((pid) => !before.includes(pid)), `every worker replaced: ${before} → ${afterPids}`);
    assert.deepEqual(result.failed, [], `no request failed during the reload\n${p.manager.logs().slice(-3000)}\n${p.nginx.logs().slice(-3000)}`);
    assert.ok(result.bodies.has("v1") && result.bodies.has("v2"), `old then new code served: ${[...result.bodies]}`);
    const fresh = await fetchWithin(p.url);
    assert.match(fresh.text, /^v2 /);
  }

  async function terminateOne(p: Pool): Promise<void> {
    const before = childPids(p.manager.pid);
    const traffic = load(p.url);
    await sleep(400);
    process.kill(before[0]!, "SIGTERM");
    await waitFor(() => !isRunning(before[0]!) && childPids(p.manager.pid).length === p.workers, 10_000, "the drained worker's replacement");
    await servedAfter(traffic);
    const result = await traffic.stop();
    assert.deepEqual(result.failed, [], `no request failed\n${p.manager.logs()}\n${p.nginx.logs().slice(-3000)}`);
    assert.ok(result.ok >= 20, `requests were served: ${result.ok}`);
  }

  it("4 workers on a Unix socket: SIGKILL is replaced in < 1 s, SIGHUP reloads with 0 failed, SIGTERM to one fails 0; the manager's stop leaves nothing", { timeout: 90_000 }, async () => {
    const p = await pool("unix", 4);
    await killAndReplace(p);
    await reloadUnderLoad(p);
    await terminateOne(p);
    const workers = childPids(p.manager.pid);
    await p.manager.stop();
    assert.match(p.manager.logs(), /fcgi manager: stopped/);
    assert.deepEqual(workers.filter(isRunning), [], "no worker outlives the manager");
  });

  it("2 workers over TCP: SIGKILL, SIGHUP and SIGTERM to one behave the same", { timeout: 60_000 }, async () => {
    const p = await pool("tcp", 2);
    await killAndReplace(p);
    await reloadUnderLoad(p);
    await terminateOne(p);
  });

  it("--recycle-after 500 under load: workers are replaced and 0 requests fail", { timeout: 60_000 }, async () => {
    const p = await pool("unix", 2, ["--recycle-after", "500"]);
    const before = childPids(p.manager.pid);
    const traffic = load(p.url, 4, 40_000);
    await waitFor(() => (p.manager.logs().match(/exited with status 0 after draining/g)?.length ?? 0) >= 2, 40_000, "two recycled workers");
    const result = await traffic.stop();
    assert.deepEqual(result.failed, [], "no request failed while recycling");
    // Each worker's limit is 500 ± 10 %, so that workers do not recycle together.
    assert.match(p.manager.logs(), /recycling worker \d \(pid \d+\): served \d+ requests \(limit (4[5-9]\d|5[0-4]\d|550)\)/);
    assert.ok(childPids(p.manager.pid).some((pid) => !before.includes(pid)), "new workers serve");
    assert.equal(childPids(p.manager.pid).length, 2);
  });

  it("--max-rss: a worker whose resident memory passes the limit is replaced after draining; one under it is left alone", { timeout: 60_000 }, async () => {
    const p = await pool("unix", 1, ["--max-rss", "300M"]);
    const [first] = childPids(p.manager.pid);
    // Several heartbeats (250 ms each) under the limit: no recycling.
    for (let i = 0; i < 4; i++) assert.equal((await fetchWithin(`${p.url}/x`)).status, 200);
    await sleep(1000);
    assert.doesNotMatch(p.manager.logs(), /recycling/);
    assert.deepEqual(childPids(p.manager.pid), [first]);
    const grown = await fetchWithin(`${p.url}/grow?mib=320`, {}, 10_000);
    assert.equal(grown.status, 200);
    const drained = new RegExp(`\\(pid ${first}\\) exited with status 0 after draining`);
    await waitFor(() => drained.test(p.manager.logs()), 10_000, "the grown worker to be replaced");
    assert.ok(!isRunning(first!));
    assert.match(p.manager.logs(), new RegExp(`recycling worker \\d \\(pid ${first}\\): resident memory [0-9.]+ MiB is over 300\\.0 MiB`));
    const after = await fetchWithin(`${p.url}/x`);
    assert.equal(after.status, 200);
    assert.notEqual(after.text.split(" ")[1]!.trim(), String(first), "a new worker answers");
    assert.equal(childPids(p.manager.pid).length, 1);
  });

  it("--request-timeout 2s: a handler that spins forever gets a 502 within 3 s, the log names it, the pool gets its worker back", { timeout: 60_000 }, async () => {
    const p = await pool("unix", 2, ["--request-timeout", "2s"]);
    const before = childPids(p.manager.pid);
    const traffic = load(p.url, 2, 8000);
    const started = Date.now();
    const spin = await fetchWithin(`${p.url}/spin?x=1`, {}, 10_000);
    const took = Date.now() - started;
    assert.ok(spin.status >= 500, `status ${spin.status}`);
    assert.ok(took < 3000, `answered in ${took} ms`);
    await waitFor(() => childPids(p.manager.pid).length === 2 && !before.every((pid) => childPids(p.manager.pid).includes(pid)), 5000, "the replacement");
    await sleep(1000);
    const result = await traffic.stop();
    await waitFor(() => /killing worker/.test(p.manager.logs()), 5000, "the log line");
    // The worker wrote the request to its "now" file synchronously before the handler blocked: named on every runtime.
    assert.match(p.manager.logs(), /killing worker \d \(pid \d+\): no heartbeat for 2\.\d s \(its event loop is blocked\); request GET \/spin\?x=1 has run \d\.\d s/);
    // Requests the blocked worker had accepted besides the spinning one may fail with it; the others do not.
    assert.ok(result.failed.length <= 2, `failed: ${result.failed.join("; ")}`);
    assert.ok(result.ok > 10, `served: ${result.ok}`);
  });

  it("SIGTTIN adds a worker, SIGTTOU drains one", { timeout: 60_000 }, async () => {
    const p = await pool("tcp", 2);
    process.kill(p.manager.pid, "SIGTTIN");
    await waitFor(() => childPids(p.manager.pid).length === 3 && (p.manager.logs().match(/listening on/g)?.length ?? 0) === 3, 10_000, "a third worker");
    process.kill(p.manager.pid, "SIGTTOU");
    await waitFor(() => childPids(p.manager.pid).length === 2, 10_000, "back to two workers");
    await waitFor(() => /draining worker 3/.test(p.manager.logs()), 5000, "the log line");
    assert.match(p.manager.logs(), /draining worker 3 \(pid \d+\): the pool shrinks to 2/);
    assert.equal((await fetchWithin(p.url)).status, 200);
  });
});

describe("fcgi serve --workers without nginx", () => {
  it("a module that throws at import: the manager backs off (no spin), says why, and stops cleanly", { timeout: 30_000 }, async () => {
    const dir = makeTempDir("fcgi-workers-");
    try {
      const module = join(dir, "broken.mjs");
      writeFileSync(module, `throw new Error("the database URL is missing");\n`);
      const manager = await startManager(["serve", module, "--workers", "2", "--listen", `unix:${join(dir, "s.sock")}`], (logs) => /restarting in 400 ms/.test(logs));
      await sleep(1500);
      const logs = manager.logs();
      const starts = logs.match(/started worker/g)?.length ?? 0;
      // Two workers, backing off 100, 200, 400, 800 ms…: a handful of starts in ~3 s, not hundreds.
      assert.ok(starts >= 6 && starts <= 14, `${starts} starts`);
      assert.match(logs, /crash loop \(\d in a row\): restarting in \d+ ms; its last output:\n.*the database URL is missing/);
      const pids = childPids(manager.pid);
      await manager.stop();
      assert.deepEqual(pids.filter(isRunning), []);
    } finally {
      removeDir(dir);
    }
  });
});
