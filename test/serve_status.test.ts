// serve()'s status page, ping page, slow-request log and access log, for one process, over raw
// FastCGI records: exact counts, the page never reaching the handler (by SCRIPT_NAME or DOCUMENT_URI),
// refusals counted by limit, a slow request logged once with whether the loop was blocked, the ping
// answering 503 while the server drains, and one access entry per request with its status and bytes.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { serve } from "../src/app/serve.ts";
import type { AccessEntry } from "../src/app/access_log.ts";
import type { Handler } from "../src/app/types.ts";
import { captureLogger, fcgiRequest, httpParams, parseCgi } from "./_support/records.ts";
import { slowClosingRuntime, withServer } from "./_support/serve.ts";
import { waitFor, within } from "./_support/poll.ts";

/** Counts the handler's calls; /wait/N waits N ms, /spin/N blocks the event loop N ms. */
function countingApp(): { fetch: Handler; calls: string[] } {
  const calls: string[] = [];
  const fetch: Handler = async (request) => {
    const path = new URL(request.url).pathname;
    calls.push(path);
    const [, kind, ms] = path.split("/");
    if (kind === "wait") await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    if (kind === "spin") {
      const end = performance.now() + Number(ms);
      while (performance.now() < end) { /* blocks the event loop */ }
    }
    return new Response(`app ${path}`);
  };
  return { fetch, calls };
}

async function statusJson(port: number, query = "json&full", extra: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const result = await fcgiRequest(port, { params: httpParams(`/fcgi-status?${query}`, extra) });
  const response = parseCgi(result.stdout);
  assert.equal(response.status, 200);
  return JSON.parse(response.text) as Record<string, unknown>;
}

test("after 25 requests the page counts exactly 25 plus the status requests, shows this process, and the status path never reaches the handler", async () => {
  const app = countingApp();
  await withServer({ fetch: app.fetch, statusPath: "/fcgi-status" }, async (port) => {
    for (let i = 0; i < 25; i++) assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams(`/n${i}`) })).stdout).text, `app /n${i}`);
    const first = await statusJson(port);
    assert.equal(first["accepted conn"], 26);
    assert.equal((await statusJson(port))["accepted conn"], 27);
    // nginx sends the page's path as DOCUMENT_URI too; a SCRIPT_NAME of index.php does not hide it.
    const byUri = await statusJson(port, "json", { SCRIPT_NAME: "/index.php", DOCUMENT_URI: "/fcgi-status" });
    assert.equal(byUri["accepted conn"], 28);
    assert.equal(app.calls.length, 25, "no status request reached the handler");
    const [row] = first.processes as Array<Record<string, unknown>>;
    assert.equal(row!.pid, process.pid);
    assert.equal(row!.state, "Idle", "the status request itself is not the process's work");
    assert.equal(row!["request uri"], "/n24", "the last request the app served");
    assert.equal(first["total processes"], 1);
    assert.equal(first["pool"], "fcgi");
  });
});

test("a running request shows as the process's current one, with its duration, and the status page stays fcgi's own", async () => {
  const app = countingApp();
  await withServer({ fetch: app.fetch, statusPath: "/fcgi-status", poolName: "www" }, async (port) => {
    const running = fcgiRequest(port, { params: httpParams("/wait/600") });
    await waitFor(() => app.calls.length === 1, 5000, "the request to start");
    const page = await statusJson(port);
    assert.equal(page.pool, "www");
    assert.equal(page["active processes"], 1);
    assert.equal(page["requests in flight"], 1);
    const [row] = page.processes as Array<Record<string, unknown>>;
    assert.equal(row!.state, "Running");
    assert.equal(row!["request uri"], "/wait/600");
    assert.ok((row!["request duration"] as number) > 0, "the duration in µs");
    await running;
  });
});

test("refusals are counted by the limit that made them", async () => {
  const app = countingApp();
  await withServer({ fetch: app.fetch, statusPath: "/fcgi-status", maxBodyBytes: 10, maxParamsBytes: 4096 }, async (port) => {
    const big = await fcgiRequest(port, { params: httpParams("/upload", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "11" }), stdin: "x".repeat(11) });
    assert.equal(parseCgi(big.stdout).status, 413);
    const huge = await fcgiRequest(port, { params: httpParams("/", { HTTP_X_BIG: "y".repeat(8000) }) });
    assert.equal(huge.appStatus, 1);
    const page = await statusJson(port, "json");
    assert.deepEqual(page.refused, { maxBodyBytes: 1, maxParamsBytes: 1 });
  });
});

test("a slow request is logged once, saying the handler waits; one that blocks the event loop says so", async () => {
  const { lines, logger } = captureLogger();
  const app = countingApp();
  await withServer({ fetch: app.fetch, statusPath: "/fcgi-status", slowRequest: 150, logger }, async (port) => {
    await fcgiRequest(port, { params: httpParams("/wait/500") });
    await fcgiRequest(port, { params: httpParams("/spin/600") });
    await waitFor(() => lines.filter((l) => l.includes("slow request")).length >= 2, 3000, "two slow-request lines");
    const slow = lines.filter((l) => l.includes("slow request"));
    assert.equal(slow.length, 2, slow.join("\n"));
    assert.match(slow[0]!, /slow request: GET \/wait\/500 \(pid \d+, request 1 from 127\.0\.0\.1\) has run \d+ ms, past slowRequest \(150 ms\); the event loop runs: the handler is waiting/);
    assert.match(slow[1]!, /slow request: GET \/spin\/600 .*the event loop was blocked for \d+ ms before this check/);
    assert.equal((await statusJson(port, "json"))["slow requests"], 2);
  });
});

test("the ping page answers pong (or the configured text) and never reaches the handler", async () => {
  const app = countingApp();
  const server = await serve({ listen: "127.0.0.1:0", fetch: app.fetch, pingPath: "/ping", pingResponse: "alive", logger: null });
  const port = (server.addresses[0] as { port: number }).port;
  const ping = parseCgi((await fcgiRequest(port, { params: httpParams("/ping") })).stdout);
  assert.deepEqual([ping.status, ping.text], [200, "alive"]);
  assert.equal(app.calls.length, 0);
  await within(server.close(), 10_000, "close()");
});

test("a draining server answers its ping with 503 'closing' (a connection it accepts while closing is served, so the health check learns why)", { timeout: 20_000 }, async () => {
  const app = countingApp();
  const slowClose = await slowClosingRuntime(500);
  const server = await serve({ listen: "127.0.0.1:0", fetch: app.fetch, pingPath: "/ping", logger: null, runtime: slowClose });
  assert.ok(slowClose.listened(), "the server listened through the runtime");
  const port = (server.addresses[0] as { port: number }).port;
  assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ping") })).stdout).status, 200);
  const closing = server.close();
  const ping = parseCgi((await fcgiRequest(port, { params: httpParams("/ping") }, 5000)).stdout);
  assert.deepEqual([ping.status, ping.text], [503, "closing\n"]);
  assert.equal(app.calls.length, 0, "the ping never reaches the handler");
  await within(closing, 10_000, "close()");
});

test("a server with only a status path answers the page, and 404 for any other path", async () => {
  await withServer({ statusPath: "/s" }, async (port) => {
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/s") })).stdout).status, 200);
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/other") })).stdout).status, 404);
  });
  await assert.rejects(serve({ statusPath: "fcgi-status", fetch: () => new Response("") }), TypeError);
});

test("the access log sink gets one entry per request, with method, URI, status, bytes, duration and REMOTE_ADDR", async () => {
  const entries: AccessEntry[] = [];
  const app = countingApp();
  const fetch: Handler = (request, context) => new URL(request.url).pathname === "/missing" ? new Response("no", { status: 404 }) : app.fetch(request, context);
  await withServer({ fetch, statusPath: "/fcgi-status", accessLog: { write: (entry) => entries.push(entry) } }, async (port) => {
    await fcgiRequest(port, { params: httpParams("/a?x=1", { REMOTE_ADDR: "203.0.113.9", REMOTE_USER: "ann" }) });
    await fcgiRequest(port, { params: httpParams("/missing") });
    await fcgiRequest(port, { params: httpParams("/upload", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" }), stdin: "abc" });
    await statusJson(port);
  });
  assert.equal(entries.length, 4);
  const [a, missing, upload, status] = entries;
  assert.deepEqual({ ...a!, time: 0, durationMs: 0 }, { time: 0, pid: process.pid, requestId: 1, method: "GET", uri: "/a?x=1", status: 200, bytes: "app /a".length, durationMs: 0, remoteAddr: "203.0.113.9", user: "ann", protocol: "HTTP/1.1" });
  assert.ok(a!.durationMs >= 0 && Math.abs(a!.time - Date.now()) < 10_000);
  assert.deepEqual([missing!.status, missing!.bytes], [404, 2]);
  assert.deepEqual([upload!.method, upload!.uri, upload!.status], ["POST", "/upload", 200]);
  assert.equal(status!.uri, "/fcgi-status?json&full");
});
