// `fcgi proxy` with three backends (repeated --upstream), on the runtime running the tests: three
// `fcgi serve` hosts on 127.0.0.2-4, then three PHP-FPM pools (with --health-check). Under a bounded load one backend is
// killed with SIGKILL: the requests it had in flight go on to the others (a GET nothing was
// answered for yet), so no request fails. Then every backend is killed: each request gets a 502
// at once. One is started again: it is used again.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, repoRoot, sourcePath } from "../_support/env.ts";
import { phpFpmSkip, startPhpFpm, type PhpFpm } from "../_support/phpfpm.ts";
import { canConnect, fetchWithin, freePort, logsOf, makeTempDir, removeDir, sleep, startApp, startProcess, stopAll, waitFor, type Service } from "./_servers.ts";

const APP = sourcePath("test/interop/app.ts");
/** Requests in flight through the proxy at any time, each held this long by its backend. */
const CLIENTS = 6;
const HOLD_MS = 100;
/** How long the requests that the killed backend surely has in flight at the kill are held. */
const LONG_MS = 1500;
/** What a step may wait (a backend reached, a revived backend used again). */
const STEP_MS = 15_000;
/** A 502 when every backend is down must come at once: far sooner than any connect or response timeout. */
const PROMPT_MS = 3000;

/** One backend the scenario kills and starts again. */
interface Backend {
  readonly id: string;
  start(): Promise<void>;
  /** SIGKILL; resolves once it is gone. */
  kill(): Promise<void>;
  /** The request numbers (?n=) it began and has not ended, when it tells (fcgi serve's test app logs them). */
  unfinished?(): Set<string>;
}

/**
 * The README's `fcgi proxy` command over three hosts, with `upstreams` for its 10.0.0.2-4:9000 (the
 * weights kept), and a failed host tried again sooner (--backoff) so that the test is short.
 */
async function startProxy(upstreams: readonly string[], root: string, extra: readonly string[] = []): Promise<Service & { url: string }> {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const line = /^fcgi proxy --listen :8080 --root \.\/public( --upstream 10\.0\.0\.\d:9000\S*)+$/m.exec(readme);
  assert.ok(line, "the README shows the fcgi proxy command over several hosts");
  const port = await freePort();
  const words = line[0].split(" ").slice(1).map((word) =>
    word === ":8080" ? `127.0.0.1:${port}` : word === "./public" ? root : word.replace(/^10\.0\.0\.(\d):9000/, (_, n: string) => upstreams[Number(n) - 2]!));
  assert.equal(words.filter((w) => w === "--upstream").length, upstreams.length);
  const [command, args] = cliCommand([...words, "--backoff", "100", "--max-backoff", "500", ...extra]);
  const service = await startProcess("fcgi proxy", command, args, () => canConnect(`127.0.0.1:${port}`));
  return Object.assign(service, { url: `http://127.0.0.1:${port}` });
}

/** One request of the load: when it was sent, its status and which backend answered. */
interface Outcome {
  n: number;
  sent: number;
  done: boolean;
  status: number;
  host?: string;
  error?: string;
}

/** CLIENTS loops of GET `path` through the proxy until stop() (or 3000 requests, or 60 s: bounded). */
function startLoad(url: (n: number) => string) {
  const results: Outcome[] = [];
  const deadline = Date.now() + 60_000;
  let stopped = false;
  const loops = Array.from({ length: CLIENTS }, async () => {
    while (!stopped && results.length < 3000 && Date.now() < deadline) {
      const outcome: Outcome = { n: results.length, sent: Date.now(), done: false, status: 0 };
      results.push(outcome);
      try {
        const r = await fetchWithin(url(outcome.n), {}, 10_000);
        outcome.status = r.status;
        if (r.status === 200) outcome.host = (JSON.parse(r.text) as { host: string }).host;
        else outcome.error = r.text.slice(0, 200);
      } catch (error) {
        outcome.error = String(error);
      }
      outcome.done = true;
    }
  });
  return {
    results,
    reached: (host: string, since: number) => results.some((o) => o.host === host && o.sent > since),
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/**
 * Kill one backend under load (no request may fail), then all (each request a prompt 502), then
 * start the first again (requests reach it).
 */
async function killAllRevive(proxy: Service & { url: string }, path: string, backends: readonly Backend[], why: () => string): Promise<void> {
  const load = startLoad((n) => `${proxy.url}${path}?ms=${HOLD_MS}&n=${n}`);
  const [killed, ...rest] = backends;
  try {
    const start = Date.now();
    await waitFor("every backend to answer through the proxy", () => backends.every((b) => load.reached(b.id, start)), STEP_MS);
    // Long requests on every backend, so that the one killed surely has some in flight.
    const long = Array.from({ length: 2 * backends.length }, (_, i) => fetchWithin(`${proxy.url}${path}?ms=${LONG_MS}&n=long${i}`, {}, 10_000));
    if (killed!.unfinished) await waitFor(`${killed!.id} to run a long request`, () => [...killed!.unfinished!()].some((n) => n.startsWith("long")), STEP_MS);
    else await sleep(LONG_MS / 3);
    await killed!.kill();
    const cut = [...killed!.unfinished?.() ?? []].filter((n) => n.startsWith("long"));
    const killedAt = Date.now();
    await waitFor("requests after the kill", () => load.results.filter((o) => o.done && o.sent > killedAt).length >= 2 * CLIENTS, STEP_MS);
    await load.stop();
    const failed = load.results.filter((o) => o.status !== 200);
    // The killed backend's requests in flight were GETs not answered yet: each went on to another.
    assert.deepEqual(failed, [], `${failed.length} of ${load.results.length} failed (killed at ${killedAt})\n${why()}`);
    assert.ok(!load.reached(killed!.id, killedAt + 1000), `${killed!.id} answered after it was killed`);
    // The long requests it had begun were answered by another backend: sent again, as GETs not answered yet.
    const answers = await Promise.all(long);
    assert.deepEqual(answers.map((r) => r.status), answers.map(() => 200), why());
    const hosts = answers.map((r) => (JSON.parse(r.text) as { host: string }).host);
    assert.ok(!hosts.includes(killed!.id), `${hosts.join(" ")}: ${killed!.id} answered a long request`);
    if (killed!.unfinished) assert.ok(cut.length > 0, `${killed!.id} was running none of the long requests`);
  } finally {
    await load.stop();
  }

  for (const backend of rest) await backend.kill();
  // Every backend down: 502 each time, at once (never a hang, never a wait for a timeout).
  for (let i = 0; i < 5; i++) {
    const r = await fetchWithin(`${proxy.url}${path}?n=down${i}`, {}, PROMPT_MS);
    assert.equal(r.status, 502, `${r.status} ${r.text}\n${why()}`);
  }

  await killed!.start();
  const revivedAt = Date.now();
  let answered = "";
  await waitFor(`${killed!.id} to be used again`, async () => {
    const r = await fetchWithin(`${proxy.url}${path}?n=revived`, {}, PROMPT_MS);
    if (r.status === 200) answered = (JSON.parse(r.text) as { host: string }).host;
    return r.status === 200;
  }, STEP_MS);
  assert.equal(answered, killed!.id, why());
  assert.ok(Date.now() - revivedAt < STEP_MS);
  await stopAll([proxy]);
  assert.match(proxy.logs(), /fcgi: listening on http:\/\/127\.0\.0\.1:\d+\/ \(FastCGI upstreams [^,]+, [^,]+, [^,]+, root/);
}

describe("fcgi proxy over three fcgi serve hosts (127.0.0.2-4)", () => {
  const dir = makeTempDir("fcgi-failover-");
  const services: Service[] = [];
  let backends: Backend[] = [];
  let proxy: Service & { url: string };

  const ready = setup(async () => {
    writeFileSync(join(dir, "index.php"), ""); // the gateway's front controller; the app ignores it
    const port = await freePort();
    backends = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map((ip, i) => {
      const id = `host${i + 1}`;
      let service: Service | undefined;
      return {
        id,
        async start() {
          service = await startApp(APP, `${ip}:${port}`, [], { env: { HOST_ID: id }, name: id });
          services.push(service);
        },
        async kill() {
          process.kill(service!.pid, "SIGKILL");
          await service!.stop(); // reaps it
        },
        unfinished() {
          const open = new Set<string>();
          for (const [, what, n] of (service?.logs() ?? "").matchAll(new RegExp(`^host ${id} (begin|end) (\\S+)$`, "gm"))) {
            if (what === "begin") open.add(n!);
            else open.delete(n!);
          }
          return open;
        },
      };
    });
    for (const b of backends) await b.start();
    proxy = await startProxy(["127.0.0.2", "127.0.0.3", "127.0.0.4"].map((ip) => `${ip}:${port}`), dir);
    services.push(proxy);
  });

  after(() => stopAll(services, dir));

  it("one killed under load fails no request; all killed: a prompt 502; one started again: used again", { timeout: 90_000 }, async () => {
    ready();
    await killAllRevive(proxy, "/host", backends, () => logsOf(services));
  });
});

describe("fcgi proxy over three PHP-FPM pools", { skip: phpFpmSkip() }, () => {
  const dir = makeTempDir("fcgi-failover-fpm-");
  const pools: PhpFpm[] = [];
  let backends: Backend[] = [];
  let proxy: (Service & { url: string }) | undefined;

  const ready = setup(async () => {
    writeFileSync(join(dir, "host.php"), `<?php usleep(min((int) ($_GET["ms"] ?? 0), 5000) * 1000);
header("Content-Type: application/json");
echo json_encode(["host" => getenv("HOST_ID")]);
`);
    const ports = [await freePort(), await freePort(), await freePort()];
    backends = ports.map((port, i) => {
      const id = `fpm${i + 1}`;
      let fpm: PhpFpm | undefined;
      return {
        id,
        async start() {
          fpm = await startPhpFpm({ listen: "tcp", port, root: dir, maxChildren: 4, pool: { [`env[HOST_ID]`]: id } });
          pools.push(fpm);
        },
        kill: () => fpm!.kill(),
      };
    });
    for (const b of backends) await b.start();
    // With GET_VALUES health checks too, which PHP-FPM answers from a worker.
    proxy = await startProxy(ports.map((port) => `127.0.0.1:${port}`), dir, ["--health-check", "200"]);
  });

  after(async () => {
    if (proxy) await stopAll([proxy]);
    for (const fpm of pools) await fpm.stop();
    removeDir(dir);
  });

  it("one killed under load fails no request; all killed: a prompt 502; one started again: used again", { timeout: 90_000 }, async () => {
    ready();
    await killAllRevive(proxy!, "/host.php", backends, () => `${proxy!.logs()}\n${pools.map((p) => p.log()).join("\n")}`);
  });
});
