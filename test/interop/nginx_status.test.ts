// The status page, the ping page, the access log and the slow-request log of `fcgi serve --workers`
// behind a real nginx (examples/nginx.conf with examples/nginx-status.conf): exact counts after a
// known load, one row per worker, every format read by a real parser (JSON.parse, xmllint,
// promtool), busy workers marked, the page only for the allowed address, the ping following the
// pool's health, and an access log with one line per request that reopens on SIGUSR1.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { inCI, repoRoot } from "../_support/env.ts";
import { waitFor } from "../_support/poll.ts";
import { HEARTBEAT_MS } from "../../src/manager/messages.ts";
import { childPids, startManager } from "./_pool.ts";
import { type Service, type WebServer, fetchWithin, waitFor as waitUntil, findBinary, freePort, makeTempDir, mustHave, renderExample, startNginx, stopAll, webServerBinary } from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");
const promtool = findBinary("promtool");
const xmllint = findBinary("xmllint");

/** The app: /slow?ms=N waits N ms; every other path says "app" (so a status page that reached it would show). */
const APP = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/slow") await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get("ms"))));
    return new Response("app " + url.pathname + "\\n");
  },
};
`;

interface StatusPool {
  manager: Service;
  nginx: WebServer;
  url: string;
  port: number;
  accessLog: string;
}

/** nginx.conf with the status locations of examples/nginx-status.conf, in front of `upstream`. */
function nginxSite(port: number, upstream: string): string {
  const locations = readFileSync(join(repoRoot, "examples", "nginx-status.conf"), "utf8").replace(/^/gm, "    ");
  return renderExample("nginx.conf", [
    ["fcgi_app", `status_${port}`],
    ["server 127.0.0.1:9000;", `server ${upstream};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
    ["    location / {", `${locations.replaceAll("fcgi_app", `status_${port}`)}\n    location / {`],
  ]);
}

/** Starts the pool and nginx; each goes into `services` as soon as it runs, so that after() stops it whatever fails next. */
async function startStatusPool(dir: string, workers: number, extra: string[], services: Service[]): Promise<StatusPool> {
  const module = join(dir, `app-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(module, APP);
  const socket = join(dir, `pool-${Math.random().toString(36).slice(2)}.sock`);
  const accessLog = join(dir, `access-${Math.random().toString(36).slice(2)}.log`);
  const manager = await startManager(
    ["serve", module, "--workers", String(workers), "--listen", `unix:${socket}`, "--status-path", "/fcgi-status", "--ping-path", "/fcgi-ping", "--access-log", accessLog, ...extra],
    (logs) => (logs.match(/listening on/g)?.length ?? 0) >= workers,
  );
  services.push(manager);
  const port = await freePort();
  const nginx = await startNginx(mustHave(nginxBinary.path, "nginx"), makeTempDir("fcgi-nginx-"), nginxSite(port, `unix:${socket}`), [port]);
  services.push(nginx);
  return { manager, nginx, url: nginx.urls[0]!, port, accessLog };
}

/** GET from a given local address (nginx then sees it as the client). */
function getFrom(localAddress: string, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, localAddress, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
    req.end();
  });
}

/** `total` GETs of `path` from `clients` loops; resolves to the failures (non-200 or errors). */
async function hello(url: string, total: number, clients = 4): Promise<string[]> {
  const failed: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < total) {
      next++;
      const response = await fetchWithin(`${url}/hello`, {}, 10_000).catch((error) => ({ status: 0, text: String(error) }));
      if (response.status !== 200 || response.text !== "app /hello\n") failed.push(`${response.status} ${response.text}`);
    }
  }));
  return failed;
}

/** The lines of the access log file that are for `uri`, parsed (the file may be absent until the first flush). */
function logLines(path: string, uri: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.uri === uri);
}

function run(binary: string, args: string[], input: string): { status: number | null; output: string } {
  const result = spawnSync(binary, args, { input, encoding: "utf8", timeout: 20_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const PHP_FPM_POOL_FIELDS = ["pool", "process manager", "start time", "start since", "accepted conn", "listen queue", "max listen queue", "listen queue len", "idle processes", "active processes", "total processes", "max active processes", "max children reached", "slow requests"];
const PHP_FPM_PROCESS_FIELDS = ["pid", "state", "start time", "start since", "requests", "request duration", "request method", "request uri", "content length", "user", "script", "last request cpu", "last request memory"];

describe("fcgi serve --workers --status-path --ping-path --access-log behind nginx", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  const ready = setup(() => {
    dir = makeTempDir("fcgi-status-");
  });
  after(async () => {
    await stopAll(services, dir);
  });

  it("4 workers after 400 requests: PHP-FPM's fields, 4 rows, exact counts; JSON, XML, HTML and OpenMetrics read by real parsers; the page never reaches the app and only the allowed address reads it; the access log has 400 lines and reopens on SIGUSR1", { timeout: 120_000 }, async () => {
    ready();
    const pool = await startStatusPool(dir, 4, ["--slow-request", "300ms"], services);
    const failed = await hello(pool.url, 400);
    assert.deepEqual(failed, [], "the load is served");

    // The first status request is the 401st accepted. A worker's count reaches the manager with its
    // next beat, asked for fresh by each status request; one that could not answer in time shows
    // its last one, which can only be lower: retry then, never accept a higher count.
    let page: Record<string, unknown> | undefined;
    for (let statusRequests = 1; statusRequests <= 3 && page === undefined; statusRequests++) {
      const response = await fetchWithin(`${pool.url}/fcgi-status?json&full`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(response.headers.get("cache-control"), "no-cache, no-store, must-revalidate, max-age=0");
      const json = JSON.parse(response.text) as Record<string, unknown>;
      const accepted = json["accepted conn"] as number;
      assert.ok(accepted <= 400 + statusRequests, `accepted conn ${accepted} after 400 requests and ${statusRequests} status requests`);
      if (accepted === 400 + statusRequests) page = json;
    }
    assert.ok(page, "accepted conn is exact (400 + the status requests) within 3 status requests");
    for (const field of PHP_FPM_POOL_FIELDS) assert.ok(field in page, `the pool field "${field}"`);
    assert.equal(page["process manager"], "static");
    assert.equal(page["total processes"], 4);
    assert.equal(page["idle processes"], 4, "the status request itself does not make its worker busy");
    assert.equal(page["slow requests"], 0);
    const processes = page.processes as Array<Record<string, unknown>>;
    assert.equal(processes.length, 4, "one row per worker");
    for (const row of processes) for (const field of PHP_FPM_PROCESS_FIELDS) assert.ok(field in row, `the process field "${field}"`);
    assert.deepEqual(processes.map((row) => row.pid as number).sort(), childPids(pool.manager.pid).sort(), "the rows are the manager's workers");
    assert.equal(processes.reduce((sum, row) => sum + (row.requests as number), 0), page["accepted conn"], "the rows' requests add up to accepted conn");

    // The text page, as PHP-FPM writes it.
    const text = await fetchWithin(`${pool.url}/fcgi-status`);
    assert.match(text.text, /^pool: +fcgi\nprocess manager: +static\n/);
    assert.match(text.text, /\naccepted conn: +40\d\n/);

    // XML: well-formed, and read back with XPath.
    const xml = await fetchWithin(`${pool.url}/fcgi-status?xml&full`);
    const xmlPath = join(dir, "status.xml");
    writeFileSync(xmlPath, xml.body);
    if (xmllint) {
      assert.equal(run(xmllint, ["--noout", xmlPath], "").status, 0, "xmllint reads the XML");
      assert.equal(run(xmllint, ["--xpath", "count(/status/processes/process)", xmlPath], "").output.trim(), "4");
    } else assert.ok(!inCI, "xmllint (Debian libxml2-utils) is installed in CI");

    // OpenMetrics: promtool reads the Prometheus text without a complaint; a scraper that asks for
    // OpenMetrics gets it, ending in # EOF.
    const metrics = await fetchWithin(`${pool.url}/fcgi-status?openmetrics&full`);
    if (promtool) {
      const checked = run(promtool, ["check", "metrics"], metrics.text);
      assert.deepEqual(checked, { status: 0, output: "" }, `promtool check metrics:\n${metrics.text}`);
    } else assert.ok(!inCI, "promtool (Debian prometheus) is installed in CI");
    assert.match(metrics.text, /^fcgi_accepted_connections_total 40\d$/m);
    const openmetrics = await fetchWithin(`${pool.url}/fcgi-status?openmetrics`, { headers: { accept: "application/openmetrics-text; version=1.0.0" } });
    assert.match(openmetrics.headers.get("content-type") ?? "", /^application\/openmetrics-text; version=1\.0\.0/);
    assert.match(openmetrics.text, /\n# EOF\n$/);

    // HTML while one request runs: its worker's row is marked busy, with the request's URI.
    const slow = fetchWithin(`${pool.url}/slow?ms=1500`, {}, 10_000);
    await waitUntil("the slow request to run", async () => JSON.parse((await fetchWithin(`${pool.url}/fcgi-status?json`)).text)["active processes"] === 1, 1000);
    const html = (await fetchWithin(`${pool.url}/fcgi-status?html&full`)).text;
    assert.match(html, /<meta http-equiv="refresh" content="\d+"/);
    assert.equal(html.match(/<tr class="busy">/g)?.length, 1, `one busy worker:\n${html}`);
    assert.match(html, /<tr class="busy">.*\/slow\?ms=1500/s);
    if (xmllint) assert.equal(run(xmllint, ["--html", "--noout", "-"], html).status, 0, "the HTML parses");
    assert.equal((await slow).status, 200);
    await waitFor(() => /slow request: GET \/slow\?ms=1500 .*past slowRequest \(300 ms\); the event loop runs: the handler is waiting/.test(pool.manager.logs()), 5000, "the slow-request line");

    // The page is fcgi's: the app never sees it (it would answer "app /fcgi-status").
    assert.doesNotMatch(text.text, /^app /);
    assert.equal((await fetchWithin(`${pool.url}/fcgi-ping`)).text, "pong");
    // nginx lets only 127.0.0.1 read it (examples/nginx-status.conf).
    assert.equal(await getFrom("127.0.0.2", pool.port, "/fcgi-status"), 403);
    assert.equal(await getFrom("127.0.0.1", pool.port, "/fcgi-status"), 200);

    // The access log: exactly one line per request, from the workers, with status, bytes and REMOTE_ADDR.
    await waitFor(() => logLines(pool.accessLog, "/hello").length >= 400, 5000, "400 access log lines");
    const lines = logLines(pool.accessLog, "/hello");
    assert.equal(lines.length, 400);
    const pids = new Set(childPids(pool.manager.pid));
    for (const line of lines) {
      assert.equal(line.status, 200);
      assert.equal(line.bytes, "app /hello\n".length);
      assert.equal(line.remote_addr, "127.0.0.1");
      assert.ok(pids.has(line.pid as number), `pid ${line.pid} is a worker`);
    }
    // logrotate: move the file, SIGUSR1 to the manager; the next lines go to a new file.
    const rotated = `${pool.accessLog}.1`;
    renameSync(pool.accessLog, rotated);
    process.kill(pool.manager.pid, "SIGUSR1");
    await waitFor(() => /SIGUSR1: the workers reopen their logs/.test(pool.manager.logs()), 5000, "the manager to pass SIGUSR1 on");
    // Each worker reopens when its signal handler runs: requests go on until lines land in the new file.
    let sent = 400;
    for (let round = 0; round < 20 && logLines(pool.accessLog, "/hello").length === 0; round++) {
      assert.deepEqual(await hello(pool.url, 20), []);
      sent += 20;
      await waitFor(() => logLines(pool.accessLog, "/hello").length + logLines(rotated, "/hello").length === sent, 5000, `${sent} lines in the two files`);
    }
    assert.ok(logLines(pool.accessLog, "/hello").length > 0, "the new file gets lines after SIGUSR1");
    assert.equal(logLines(rotated, "/hello").length + logLines(pool.accessLog, "/hello").length, sent, "no line lost or doubled");
  });

  it("the ping page follows the pool's health; restarts are counted by cause (hang, reload)", { timeout: 90_000 }, async () => {
    ready();
    const pool = await startStatusPool(dir, 1, ["--request-timeout", "2s"], services);
    assert.equal((await fetchWithin(`${pool.url}/fcgi-ping`)).status, 200);
    assert.deepEqual(await hello(pool.url, 30), [], "the load is served");
    // Those 31 requests reach the manager with the next beats; the worker that served them is then
    // stopped, killed and its replacement reloaded, but the pool's count keeps them.
    await new Promise((resolve) => setTimeout(resolve, 3 * HEARTBEAT_MS));
    const [worker] = childPids(pool.manager.pid);
    // A stopped worker answers nothing: the ping fails (no answer in 1 s), until the manager
    // replaces it for its missing heartbeat.
    process.kill(worker!, "SIGSTOP");
    await assert.rejects(fetchWithin(`${pool.url}/fcgi-ping`, {}, 1000));
    await waitFor(() => childPids(pool.manager.pid).some((pid) => pid !== worker), 10_000, "the replacement worker");
    await waitFor(() => /listening on/g.test(pool.manager.logs().split("killing worker")[1] ?? ""), 10_000, "the replacement to listen");
    const ping = await fetchWithin(`${pool.url}/fcgi-ping`, {}, 10_000);
    assert.equal(ping.status, 200);
    assert.equal(ping.text, "pong");
    process.kill(pool.manager.pid, "SIGHUP");
    await waitFor(() => /reload done/.test(pool.manager.logs()), 20_000, "the reload");
    const page = JSON.parse((await fetchWithin(`${pool.url}/fcgi-status?json`)).text) as Record<string, unknown>;
    assert.deepEqual(page.restarts, { crash: 0, hang: 1, recycle: 0, reload: 1 });
    const accepted = page["accepted conn"] as number;
    assert.ok(accepted >= 31 + 2, `accepted conn ${accepted} keeps the 31 requests of the exited workers (and counts the pings and this page)`);
  });
});
