// The Client over several scripted backends: least outstanding and weighted round-robin, a
// backend left out after it refuses, resets or times out (with a growing, capped backoff),
// failover by nginx's fastcgi_next_upstream rules, health checks, per-backend stats, and a
// prompt error (502 from the gateway) when every backend is down.
import { afterEach, describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { gateway } from "../src/client/gateway.ts";
import { FastCGIError } from "../src/errors.ts";
import type { SocketAddress } from "../src/socket.ts";
import { startFakeApp, type FakeApp, type FakeAppHooks, type FakeRequest } from "./_support/fake_fcgi_app.ts";
import { freePort } from "./_support/phpfpm.ts";
import { waitFor, within } from "./_support/poll.ts";

const OK = "Content-Type: text/plain\r\n\r\n";
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A fake app named `name` that answers each complete request with `name` (and records it). */
async function named(name: string, hooks: FakeAppHooks = {}, port = 0): Promise<FakeApp & { seen: FakeRequest[] }> {
  const seen: FakeRequest[] = [];
  const app = await startFakeApp({
    onParams: (r) => seen.push(r),
    onStdinEnd: (r) => r.connection.respond(r.requestId, OK + name),
    ...hooks,
  }, false, port);
  cleanups.push(() => app.close());
  return Object.assign(app, { seen });
}

/** A fake app that holds every request until release() answers them all with its name. */
async function holding(name: string): Promise<FakeApp & { held: FakeRequest[]; release(): void }> {
  const held: FakeRequest[] = [];
  const app = await named(name, { onStdinEnd: (r) => held.push(r) });
  return Object.assign(app, {
    held,
    release() {
      for (const r of held.splice(0)) r.connection.respond(r.requestId, OK + name);
    },
  });
}

/** An address nothing listens on: connections to it are refused. */
async function deadAddress(): Promise<SocketAddress> {
  return { transport: "tcp", hostname: "127.0.0.1", port: await freePort() };
}

function client(address: ClientOptions["address"], options: Partial<ClientOptions> = {}): Client {
  const c = new Client({ address, onStderr: () => {}, ...options });
  cleanups.push(() => within(c.close(), 5000, "client.close()").catch(() => {}));
  return c;
}

function isError(code: string, pattern?: RegExp) {
  return (e: unknown) => e instanceof FastCGIError && e.code === code && (pattern === undefined || pattern.test(e.message));
}

/** A request whose body is streamed from the caller (Content-Length given): never sent twice. */
function streamed(method: string, text: string): Request {
  const bytes = new TextEncoder().encode(text);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  return new Request("http://h/streamed", { method, body, headers: { "content-length": String(bytes.length) }, duplex: "half" } as RequestInit);
}

describe("Client: balancing", () => {
  it("least outstanding: requests in flight spread evenly, and by weight", async () => {
    const apps = [await holding("a"), await holding("b"), await holding("c")];
    const even = client(apps.map((a) => a.address));
    const first = Array.from({ length: 9 }, (_, i) => even.fetch(`http://h/${i}`));
    await waitFor(() => apps.reduce((n, a) => n + a.held.length, 0) === 9, 10_000, "9 requests held");
    assert.deepEqual(apps.map((a) => a.held.length), [3, 3, 3]);
    assert.deepEqual(even.stats().backends.map((b) => b.outstanding), [3, 3, 3]);
    for (const a of apps) a.release();
    const texts = await Promise.all(first.map(async (p) => (await p).text()));
    assert.deepEqual(texts.sort(), ["a", "a", "a", "b", "b", "b", "c", "c", "c"]);
    assert.deepEqual(even.stats().backends.map((b) => [b.outstanding, b.requests]), [[0, 3], [0, 3], [0, 3]]);

    const weighted = client([{ address: apps[0]!.address, weight: 2 }, apps[1]!.address, apps[2]!.address]);
    const second = Array.from({ length: 8 }, (_, i) => weighted.fetch(`http://h/${i}`));
    await waitFor(() => apps.reduce((n, a) => n + a.held.length, 0) === 8, 10_000, "8 requests held");
    assert.deepEqual(apps.map((a) => a.held.length), [4, 2, 2]);
    for (const a of apps) a.release();
    await Promise.all(second.map(async (p) => (await p).text()));
  });

  it("least outstanding sends a request to the backend with fewer in flight, not in turn", async () => {
    const [a, b] = [await holding("a"), await named("b")];
    const c = client([a.address, b.address]);
    const held = c.fetch("http://h/held"); // goes to a and stays there
    await waitFor(() => a.held.length === 1, 10_000, "a holds one");
    for (let i = 0; i < 4; i++) assert.equal(await (await c.fetch(`http://h/${i}`)).text(), "b");
    a.release();
    assert.equal(await (await held).text(), "a");
  });

  it("round-robin: each backend in turn, weighted smoothly (3:1 is a a b a, never b b)", async () => {
    const apps = [await named("a"), await named("b"), await named("c")];
    const rr = client(apps.map((a) => a.address), { balance: "round-robin" });
    const order: string[] = [];
    for (let i = 0; i < 6; i++) order.push(await (await rr.fetch(`http://h/${i}`)).text());
    assert.deepEqual(order, ["a", "b", "c", "a", "b", "c"]);

    const weighted = client([{ address: apps[0]!.address, weight: 3 }, apps[1]!.address], { balance: "round-robin" });
    const turns: string[] = [];
    for (let i = 0; i < 8; i++) turns.push(await (await weighted.fetch(`http://h/${i}`)).text());
    assert.deepEqual(turns, ["a", "a", "b", "a", "a", "a", "b", "a"]);
  });

  it("bad options are refused with a message", async () => {
    const app = await named("a");
    assert.throws(() => new Client({ address: [] }), /empty list/);
    assert.throws(() => new Client({ address: [app.address], balance: "random" as never }), /balance must be "least" or "round-robin"/);
    assert.throws(() => new Client({ address: [{ address: app.address, weight: 0 }] }), /weight of 127\.0\.0\.1:\d+ must be a finite number ≥ 1/);
    assert.throws(() => new Client({ address: [{ address: "nowhere", weight: 1 }] }), /address/);
    assert.throws(() => new Client({ address: [app.address], backoff: -1 }), /backoff must be/);
  });
});

describe("Client: failover and passive health", () => {
  it("a refused connect goes on to the next backend, whatever the method and body, and the refusing one is left out", async () => {
    const dead = await deadAddress();
    const b = await named("b", {
      onStdinEnd: (r) => r.connection.respond(r.requestId, OK + `b ${r.params.REQUEST_METHOD} ${new TextDecoder().decode(Buffer.concat(r.stdin))}`),
    });
    const c = client([dead, b.address], { balance: "round-robin", backoff: 60_000 });
    // Never reached the dead backend: a POST with a streamed body may go on, nothing was sent.
    assert.equal(await (await c.fetch(streamed("POST", "body"))).text(), "b POST body");
    const [down, up] = c.stats().backends;
    assert.equal(down!.state, "down");
    assert.equal(down!.failures, 1);
    assert.equal(down!.retries, 1);
    assert.equal(down!.outstanding, 0);
    assert.equal(down!.backoff, 60_000);
    assert.match(down!.lastError!, /ECONNREFUSED|refused/i);
    assert.ok(down!.retryIn > 50_000 && down!.retryIn <= 60_000, `retryIn ${down!.retryIn}`);
    assert.deepEqual([up!.state, up!.requests, up!.failures], ["up", 1, 0]);
    // Left out: round-robin no longer takes turns with it.
    for (let i = 0; i < 4; i++) assert.equal(await (await c.fetch(`http://h/${i}`)).text(), "b GET ");
    assert.equal(c.stats().backends[0]!.failures, 1);
    assert.equal(c.stats().backends[0]!.requests, 1);
  });

  it("a backend that keeps refusing is tried again after a backoff that doubles, up to maxBackoff", async () => {
    const dead = await deadAddress();
    const b = await named("b");
    const c = client([dead, b.address], { backoff: 40, maxBackoff: 100 });
    const backoffs: number[] = [];
    for (let round = 0; round < 4; round++) {
      if (round > 0) await waitFor(() => c.stats().backends[0]!.retryIn === 0, 5000, "the backoff to pass");
      // A down backend past its backoff gets the next request first; it fails over to b.
      assert.equal(await (await c.fetch("http://h/")).text(), "b");
      const stats = c.stats().backends[0]!;
      assert.equal(stats.failures, round + 1);
      backoffs.push(stats.backoff);
    }
    assert.deepEqual(backoffs, [40, 80, 100, 100]);
  });

  it("a backend that comes back is used again: tried with a request after its backoff", async () => {
    const port = await freePort();
    const b = await named("b");
    const c = client([{ transport: "tcp", hostname: "127.0.0.1", port }, b.address], { backoff: 50, balance: "round-robin" });
    assert.equal(await (await c.fetch("http://h/")).text(), "b");
    assert.equal(c.stats().backends[0]!.state, "down");
    const a = await named("a", {}, port);
    await waitFor(() => c.stats().backends[0]!.retryIn === 0, 5000, "the backoff to pass");
    assert.equal(await (await c.fetch("http://h/")).text(), "a");
    assert.equal(c.stats().backends[0]!.state, "up");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await (await c.fetch(`http://h/${i}`)).text());
    assert.deepEqual([...seen].sort(), ["a", "b"]);
    assert.ok(a.seen.length >= 2, `a served ${a.seen.length}`);
  });

  it("healthCheck: GET_VALUES probes mark a backend down, and up again once it answers, without a request", async () => {
    const port = await freePort();
    const b = await named("b");
    const c = client([{ transport: "tcp", hostname: "127.0.0.1", port }, b.address], { healthCheck: 30, backoff: 60_000 });
    await waitFor(() => c.stats().backends[0]!.state === "down", 5000, "the probe to mark it down");
    assert.equal(c.stats().backends[0]!.requests, 0);
    assert.equal(c.stats().backends[1]!.state, "up");
    const a = await named("a", {}, port);
    await waitFor(() => c.stats().backends[0]!.state === "up", 5000, "the probe to mark it up");
    assert.equal(a.seen.length, 0, "no request was needed");
    assert.ok(a.connections.length > 0);
  });

  it("a connection reset after BEGIN_REQUEST: a GET, a PUT with a buffered body go on; a POST, a streamed PUT do not", async () => {
    const cases: Array<[string, () => Request | string, string | null]> = [
      ["GET", () => "http://h/get", "b GET "],
      ["PUT buffered", () => new Request("http://h/put", { method: "PUT", body: new Blob(["put body"]).stream(), duplex: "half" } as RequestInit), "b PUT put body"],
      ["DELETE", () => new Request("http://h/x", { method: "DELETE" }), "b DELETE "],
      ["POST", () => new Request("http://h/post", { method: "POST", body: "form" }), null],
      ["PUT streamed", () => streamed("PUT", "streamed"), null],
    ];
    for (const [name, make, expected] of cases) {
      const a = await named("a", { onParams: (r) => r.connection.destroy() });
      const b = await named("b", {
        onStdinEnd: (r) => r.connection.respond(r.requestId, OK + `b ${r.params.REQUEST_METHOD} ${new TextDecoder().decode(Buffer.concat(r.stdin))}`),
      });
      const c = client([a.address, b.address], { balance: "round-robin" });
      const attempt = c.fetch(make());
      if (expected === null) {
        await assert.rejects(attempt, isError("CONNECTION_CLOSED"), name);
        assert.equal(b.connections.filter((x) => x.begun > 0).length, 0, `${name} reached b`);
        assert.equal(c.stats().backends[0]!.retries, 0);
      } else {
        assert.equal(await (await attempt).text(), expected, name);
        assert.equal(c.stats().backends[0]!.retries, 1);
      }
      // Either way the reset marks it down.
      assert.equal(c.stats().backends[0]!.state, "down", name);
      assert.equal(c.stats().backends[0]!.failures, 1, name);
    }
  });

  it("a GET whose response head was handed out is not sent again when the backend dies mid-body", async () => {
    const a = await named("a", {
      onStdinEnd: (r) => {
        r.connection.stdout(r.requestId, OK + "partial");
        setTimeout(() => r.connection.destroy(), 50);
      },
    });
    const b = await named("b");
    const c = client([a.address, b.address], { balance: "round-robin" });
    const response = await c.fetch("http://h/");
    assert.equal(response.status, 200);
    await assert.rejects(response.text(), isError("CONNECTION_CLOSED"));
    assert.equal(b.seen.length, 0);
    assert.equal(c.stats().backends[0]!.state, "down");
  });

  it("responseTimeout: a silent backend is left out and the GET goes on to the next", async () => {
    const a = await named("a", { onStdinEnd: () => {} });
    const b = await named("b");
    const c = client([a.address, b.address], { balance: "round-robin", responseTimeout: 200 });
    assert.equal(await (await c.fetch("http://h/")).text(), "b");
    const down = c.stats().backends[0]!;
    assert.equal(down.state, "down");
    assert.match(down.lastError!, /responseTimeout/);
    // The request was abandoned on a: ABORT_REQUEST went out.
    await waitFor(() => a.seen[0]!.aborted || a.seen[0]!.connection.closed, 5000, "the abandoned request to be aborted");
  });

  it("each backend is tried once: when all reset the request, it fails with the last error", async () => {
    const reset = { onParams: (r: FakeRequest) => r.connection.destroy() };
    const apps = [await named("a", reset), await named("b", reset), await named("c", reset)];
    const c = client(apps.map((a) => a.address));
    await assert.rejects(c.fetch("http://h/"), isError("CONNECTION_CLOSED"));
    assert.deepEqual(apps.map((a) => a.connections.filter((x) => x.begun > 0).length), [1, 1, 1]);
    assert.deepEqual(c.stats().backends.map((b) => [b.state, b.failures, b.outstanding]), [["down", 1, 0], ["down", 1, 0], ["down", 1, 0]]);
  });

  it("every backend down: UNAVAILABLE at once, and a 502 from the gateway", async () => {
    const dead = [await deadAddress(), await deadAddress()];
    const c = client(dead, { backoff: 60_000 });
    await assert.rejects(c.fetch("http://h/"), (e: unknown) => (e as { code?: string }).code === "ECONNREFUSED" || isError("CONNECTION_CLOSED")(e));
    // Both are down now: no connect is tried at all.
    await assert.rejects(within(c.fetch("http://h/"), 1000, "the fetch"), isError("UNAVAILABLE", /no FastCGI backend is up: 127\.0\.0\.1:\d+ \(.*\), 127\.0\.0\.1/));
    assert.deepEqual(c.stats().backends.map((b) => [b.state, b.failures, b.requests]), [["down", 1, 1], ["down", 1, 1]]);

    const root = mkdtempSync(join(tmpdir(), "fcgi-balance-"));
    writeFileSync(join(root, "index.php"), "");
    const errors: unknown[] = [];
    const front = gateway({ upstream: dead, documentRoot: root, client: { backoff: 60_000 }, onError: (e) => errors.push(e) });
    try {
      for (let i = 0; i < 3; i++) {
        const response = await within(front(new Request("http://h/")), 5000, "the gateway");
        assert.equal(response.status, 502);
      }
      assert.ok(isError("UNAVAILABLE")(errors[2]), String(errors[2]));
    } finally {
      await front.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("a single backend is never left out (as nginx with one server): each request tries it", async () => {
    const dead = await deadAddress();
    const c = client([dead]);
    for (let i = 0; i < 3; i++) await assert.rejects(c.fetch("http://h/"), (e: unknown) => (e as { code?: string }).code === "ECONNREFUSED");
    const [only] = c.stats().backends;
    assert.deepEqual([only!.state, only!.failures, only!.requests, only!.retries], ["up", 3, 3, 0]);
  });

  it("requests queued for a backend that goes down move to another", async () => {
    // a takes one connection and holds its request; the next ones queue for it (maxConnections 1)
    // until a goes away, which marks it down.
    let first: FakeRequest | undefined;
    const a = await named("a", { onStdinEnd: (r) => (first ??= r) });
    const b = await named("b");
    const c = client([{ address: a.address, weight: 100 }, b.address], { maxConnections: 1, balance: "round-robin" });
    const posts = Array.from({ length: 3 }, (_, i) => c.fetch(new Request(`http://h/${i}`, { method: "POST", body: `p${i}` })));
    const lost = assert.rejects(posts[0]!, isError("CONNECTION_CLOSED")); // a POST it may have started: not sent again
    await waitFor(() => first !== undefined, 5000, "a to hold the first request");
    assert.equal(c.stats().backends[0]!.queued, 2);
    await a.close();
    await lost;
    assert.deepEqual(await Promise.all(posts.slice(1).map(async (p) => (await p).text())), ["b", "b"]);
    assert.equal(c.stats().backends[0]!.retries, 2);
    assert.equal(c.stats().backends[1]!.requests, 2);
  });
});
