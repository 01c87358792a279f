// The Client against a scripted FastCGI application: connection reuse, GET_VALUES, limits and
// the queue, refusals, lost connections, bad output, aborts, timeouts, and backpressure both ways.
import { afterEach, describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { RequestRefusedError } from "../src/errors.ts";
import { FastCGIError } from "../src/errors.ts";
import { ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import type { Runtime } from "../src/runtime/types.ts";
import type { Connection, ConnectionHandlers } from "../src/socket.ts";
import { detectRuntime } from "../src/runtime/index.ts";
import { startFakeApp, type FakeApp, type FakeAppHooks, type FakeRequest } from "./_support/fake_fcgi_app.ts";
import { countingRuntime, KERNEL_BUFFERS, MAX_READ, MAX_RECORD, settle, type ConnectionTally, waitFor, within } from "./_support/poll.ts";

const OK = "Content-Type: text/plain\r\n\r\n";
/** A response body's queue size before a lone connection pauses its socket (src/client/response_body.ts BODY_HIGH_WATER_MARK). */
const BODY_HIGH_WATER_MARK = 128 * 1024;
/** What a socket adapter queues before write() returns false: Node's net.Socket 16 KiB, Deno's adapter 64 KiB; Bun's queue, one write. */
const ADAPTER_QUEUE = 64 * 1024;

/** The counted connection that carried the most bytes in (the GET_VALUES probe carries a few). */
function busiestIn(connections: ConnectionTally[]): ConnectionTally {
  assert.ok(connections.length > 0, "no connection was counted");
  return connections.reduce((a, b) => (b.delivered > a.delivered ? b : a));
}

/** The counted connection that carried the most bytes out. */
function busiestOut(connections: ConnectionTally[]): ConnectionTally {
  assert.ok(connections.length > 0, "no connection was counted");
  return connections.reduce((a, b) => (b.written > a.written ? b : a));
}
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(hooks: FakeAppHooks, options: Partial<ClientOptions> = {}, multiplex = false): Promise<{ app: FakeApp; client: Client }> {
  const app = await startFakeApp(hooks, multiplex);
  const client = new Client({ address: app.address, onStderr: () => {}, ...options });
  cleanups.push(async () => {
    await within(client.close(), 5000, "client.close()").catch(() => {});
    await app.close();
  });
  return { app, client };
}

/** Answers every request with `OK` + its REQUEST_URI once its input is complete. */
const echoUri: FakeAppHooks = {
  onStdinEnd: (r) => r.connection.respond(r.requestId, OK + r.params.REQUEST_URI),
};

function isError(code: string, pattern?: RegExp) {
  return (e: unknown) => e instanceof FastCGIError && e.code === code && (pattern === undefined || pattern.test(e.message));
}

function isAbort(e: unknown): boolean {
  return (e as { name?: string })?.name === "AbortError";
}

/** Connections that carried requests (the GET_VALUES probe connection carries none). */
function requestConnections(app: FakeApp): number {
  return app.connections.filter((c) => c.begun > 0).length;
}

describe("Client: connections and GET_VALUES", () => {
  it("a kept connection is reused for request after request, and GET_VALUES is asked once, on its own connection", async () => {
    const { app, client } = await setup(echoUri);
    for (let i = 0; i < 5; i++) {
      const response = await client.fetch(`http://h/n${i}`);
      assert.equal(await response.text(), `/n${i}`);
    }
    assert.equal(requestConnections(app), 1);
    const probes = app.connections.filter((c) => c.received.some(([type]) => type === RecordType.GET_VALUES));
    assert.equal(probes.length, 1);
    assert.equal(probes[0]!.begun, 0, "the probe connection carries no request");
    assert.equal(app.connections[1]!.begun, 5);
  });

  it("without keepConn every request has its own connection and BEGIN_REQUEST lacks FCGI_KEEP_CONN", async () => {
    const seen: boolean[] = [];
    const { app, client } = await setup({ onBegin: (r) => seen.push(r.keepConn), ...echoUri }, { keepConn: false });
    for (let i = 0; i < 3; i++) assert.equal(await (await client.fetch(`http://h/${i}`)).text(), `/${i}`);
    assert.deepEqual(seen, [false, false, false]);
    assert.equal(requestConnections(app), 3);
    await waitFor(() => app.open() === 0, 5000, "every connection closed");
  });

  it("a backend that never answers GET_VALUES is still used, after the probe gives up", async () => {
    const { client } = await setup({ ...echoUri, onGetValues: () => null }, { responseTimeout: 300 });
    const started = Date.now();
    assert.equal(await (await client.fetch("http://h/x")).text(), "/x");
    assert.ok(Date.now() - started >= 250, "the first request waited for the probe");
    const limits = await client.limits();
    assert.equal(limits.values, null);
    assert.equal(limits.multiplex, false);
    await assert.rejects(client.values(), isError("TIMEOUT", /did not answer GET_VALUES/));
  });

  it("client.values() returns what the backend answers, names it does not know missing", async () => {
    const { client } = await setup({ onGetValues: () => [["FCGI_MAX_CONNS", "3"], ["FCGI_MPXS_CONNS", "0"]] });
    assert.deepEqual({ ...(await client.values()) }, { FCGI_MAX_CONNS: "3", FCGI_MPXS_CONNS: "0" });
  });

  it("FCGI_MAX_CONNS caps the connections below maxConnections; extra requests wait in the queue", async () => {
    const held: FakeRequest[] = [];
    let busiest = 0;
    const { app, client } = await setup(
      {
        onGetValues: () => [["FCGI_MAX_CONNS", "2"], ["FCGI_MPXS_CONNS", "0"]],
        onStdinEnd: (r) => {
          held.push(r);
          busiest = Math.max(busiest, app.connections.filter((c) => c.begun > 0 && !c.closed).length);
        },
      },
      { maxConnections: 8 },
    );
    const responses = Array.from({ length: 6 }, (_, i) => client.fetch(`http://h/${i}`).then((r) => r.text()));
    await waitFor(() => held.length >= 2, 5000, "two requests at the backend");
    // Wait until the pool has done all it will do while both are held, then look.
    const [atBackend, connections, queued] = await settle(() => [held.length, app.connections.length, client.stats().queued], "the pool's state");
    assert.equal(atBackend, 2, "no third request before one finished");
    assert.equal(queued, 4, "the other four wait in the queue");
    assert.equal(connections, 3, "the probe's connection and two for requests");
    for (let i = 0; i < 6; i++) {
      await waitFor(() => held.length > 0, 5000, "a request at the backend");
      const r = held.shift()!;
      r.connection.respond(r.requestId, OK + r.params.REQUEST_URI);
    }
    assert.deepEqual((await Promise.all(responses)).sort(), ["/0", "/1", "/2", "/3", "/4", "/5"]);
    assert.equal(busiest, 2, "never more than FCGI_MAX_CONNS connections at once");
  });

  it("a request waiting longer than queueTimeout is rejected with TIMEOUT", async () => {
    const held: FakeRequest[] = [];
    const { client } = await setup({ onStdinEnd: (r) => held.push(r) }, { maxConnections: 1, queueTimeout: 150 });
    const first = client.fetch("http://h/first");
    await waitFor(() => held.length === 1, 5000, "the first request");
    const started = Date.now();
    await assert.rejects(client.fetch("http://h/second"), (e: unknown) => e instanceof FastCGIError && e.code === "TIMEOUT" && e.limit === "queueTimeout");
    assert.ok(Date.now() - started < 2000);
    held[0]!.connection.respond(held[0]!.requestId, OK + "done");
    assert.equal(await (await first).text(), "done");
  });

  it("a refused connection rejects with the runtime's error, naming the address", async () => {
    const app = await startFakeApp({});
    const address = app.address;
    await app.close();
    const client = new Client({ address });
    cleanups.push(() => client.close());
    await assert.rejects(client.fetch("http://h/"), (e: unknown) => (e as { code?: string }).code === "ECONNREFUSED" && /127\.0\.0\.1/.test((e as Error).message));
  });

  it("close() rejects queued requests, closes idle connections, and later requests are rejected", async () => {
    const held: FakeRequest[] = [];
    const { app, client } = await setup({ onStdinEnd: (r) => held.push(r) }, { maxConnections: 1 });
    const first = client.fetch("http://h/1");
    await waitFor(() => held.length === 1, 5000, "the first request");
    const queued = client.fetch("http://h/2");
    const closed = client.close();
    await assert.rejects(queued, isError("CONNECTION_CLOSED", /client is closed/));
    held[0]!.connection.respond(held[0]!.requestId, OK + "in flight finishes");
    assert.equal(await (await first).text(), "in flight finishes");
    await within(closed, 5000, "close() after the last request");
    await waitFor(() => app.open() === 0, 5000, "connections closed");
    await assert.rejects(client.fetch("http://h/3"), isError("CONNECTION_CLOSED"));
  });

  it("a kept connection the backend closed while idle is replaced, and a GET is sent again once", async () => {
    let count = 0;
    const { app, client } = await setup({
      onStdinEnd: (r) => {
        count++;
        // The second request finds its kept connection closing: the backend drops it unanswered.
        if (count === 2) return r.connection.destroy();
        r.connection.respond(r.requestId, OK + r.params.REQUEST_URI);
      },
    });
    assert.equal(await (await client.fetch("http://h/a")).text(), "/a");
    assert.equal(await (await client.fetch("http://h/b")).text(), "/b");
    assert.equal(count, 3);
    assert.equal(requestConnections(app), 2);
    // A POST is not repeated: the backend may have acted on it.
    count = 1;
    await assert.rejects(client.fetch(new Request("http://h/c", { method: "POST", body: "x" })), isError("CONNECTION_CLOSED"));
  });
});

describe("Client: limits and runtimes", () => {
  it("a connection that takes longer than connectTimeout fails with TIMEOUT, and is destroyed when it comes", async () => {
    const destroyed: string[] = [];
    const late: Connection = {
      write: () => true, bufferedAmount: 0, pause() {}, resume() {}, end() {},
      destroy: () => void destroyed.push("late"),
      remoteAddress: "127.0.0.1", remotePort: 9, localAddress: "127.0.0.1", localPort: 1,
    };
    const slow: Runtime = {
      name: "node",
      listen: () => Promise.reject(new Error("not used")),
      connect: (_address, _handlers: ConnectionHandlers) => new Promise((resolve) => setTimeout(() => resolve(late), 400)),
    };
    const client = new Client({ address: "127.0.0.1:9", runtime: slow, connectTimeout: 100 });
    cleanups.push(() => client.close());
    const started = Date.now();
    await assert.rejects(client.fetch("http://h/"), (e: unknown) => e instanceof FastCGIError && e.code === "TIMEOUT" && e.limit === "connectTimeout" && /127\.0\.0\.1:9/.test(e.message));
    assert.ok(Date.now() - started < 350, "rejected at the timeout, not when the connection came");
    await waitFor(() => destroyed.length === 1, 5000, "the late connection destroyed");
  });

  it("the socket adapter may be chosen by name: \"node\" works on every runtime", async () => {
    const { client } = await setup(echoUri, { runtime: "node" });
    assert.equal(await (await client.fetch("http://h/by-name")).text(), "/by-name");
  });

  it("on a multiplexing backend FCGI_MAX_REQS caps the requests in flight", async () => {
    const held: FakeRequest[] = [];
    let most = 0;
    const { app, client } = await setup(
      {
        onGetValues: () => [["FCGI_MPXS_CONNS", "1"], ["FCGI_MAX_REQS", "3"]],
        onStdinEnd: (r) => {
          held.push(r);
          most = Math.max(most, held.length);
          setTimeout(() => {
            held.splice(held.indexOf(r), 1);
            r.connection.respond(r.requestId, OK + r.params.REQUEST_URI);
          }, 20);
        },
      },
      { maxConnections: 2 },
      true,
    );
    const texts = await within(Promise.all(Array.from({ length: 12 }, (_, i) => client.fetch(`http://h/${i}`).then((r) => r.text()))), 10_000, "12 requests");
    assert.deepEqual(texts, Array.from({ length: 12 }, (_, i) => `/${i}`));
    assert.equal(most, 3);
    assert.ok(requestConnections(app) <= 2);
    const limits = await client.limits();
    assert.equal(limits.multiplex, true);
    assert.equal(limits.maxRequests, 3);
  });

  it("a HEAD response has no body, whatever the backend sent", async () => {
    const { client } = await setup({ onStdinEnd: (r) => r.connection.respond(r.requestId, OK + "ignored body") });
    const response = await client.fetch(new Request("http://h/", { method: "HEAD" }));
    assert.equal(response.status, 200);
    assert.equal(response.body, null);
    assert.equal(await (await client.fetch("http://h/after")).text(), "ignored body", "the connection is still in step");
  });
});

describe("Client: how requests end", () => {
  it("END_REQUEST OVERLOADED rejects with a RequestRefusedError naming it", async () => {
    const { client } = await setup({ onBegin: (r) => r.connection.end(r.requestId, 0, ProtocolStatus.OVERLOADED) });
    await assert.rejects(client.fetch("http://h/"), (e: unknown) =>
      e instanceof RequestRefusedError && e.code === "REQUEST_REFUSED" && e.protocolStatus === ProtocolStatus.OVERLOADED && /OVERLOADED/.test(e.message));
  });

  it("END_REQUEST UNKNOWN_ROLE for an authorizer rejects clearly, and no STDIN was sent", async () => {
    const types: number[] = [];
    const { app, client } = await setup({
      onParams: (r) => {
        if (r.role === Role.AUTHORIZER) setTimeout(() => r.connection.end(r.requestId, 0, ProtocolStatus.UNKNOWN_ROLE), 20);
      },
    });
    await assert.rejects(client.fetch("http://h/", { role: "authorizer" }), (e: unknown) => e instanceof RequestRefusedError && /UNKNOWN_ROLE/.test(e.message));
    for (const c of app.connections) for (const [type] of c.received) types.push(type);
    assert.ok(!types.includes(RecordType.STDIN), "an authorizer gets no STDIN");
  });

  it("an authorizer's 200 with Variable- headers comes back as the Response", async () => {
    const { client } = await setup({
      onParams: (r) => {
        if (r.role === Role.AUTHORIZER) r.connection.respond(r.requestId, `Status: 200\r\nVariable-USER: ${r.params.HTTP_AUTHORIZATION}\r\n\r\n`);
      },
    });
    const response = await client.fetch(new Request("http://h/", { headers: { Authorization: "Bearer t" } }), { role: "authorizer" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("variable-user"), "Bearer t");
  });

  it("a filter gets STDIN then DATA, with FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD", async () => {
    const { client } = await setup({
      onDataEnd: (r) => {
        const data = new TextDecoder().decode(Buffer.concat(r.data));
        r.connection.respond(r.requestId, OK + `${r.params.FCGI_DATA_LENGTH} ${r.params.FCGI_DATA_LAST_MOD} ${data.toUpperCase()} ${r.stdinBytes}`);
      },
    });
    const response = await client.fetch(new Request("http://h/f", { method: "POST", body: "in", headers: { "content-length": "2" } }), {
      role: "filter",
      data: "the file",
      dataLastModified: new Date(1_700_000_000_000),
    });
    assert.equal(await response.text(), "8 1700000000 THE FILE 2");
  });

  it("the backend closing the connection mid-body makes the body fail with CONNECTION_CLOSED, never a short body", async () => {
    const { client } = await setup({
      onStdinEnd: (r) => {
        r.connection.stdout(r.requestId, OK + "partial body");
        setTimeout(() => r.connection.destroy(), 30);
      },
    });
    const response = await client.fetch("http://h/");
    assert.equal(response.status, 200);
    await assert.rejects(response.text(), isError("CONNECTION_CLOSED", /before END_REQUEST/));
  });

  it("the backend closing before the headers rejects the fetch with CONNECTION_CLOSED", async () => {
    const { client } = await setup({ onStdinEnd: (r) => r.connection.destroy() });
    await assert.rejects(client.fetch(new Request("http://h/", { method: "POST", body: "no retry" })), isError("CONNECTION_CLOSED"));
  });

  it("a version byte other than 1 fails the response with BAD_VERSION", async () => {
    const { client } = await setup({
      onStdinEnd: (r) => {
        r.connection.stdout(r.requestId, OK + "ok so far");
        const bad = new Uint8Array([2, RecordType.STDOUT, 0, r.requestId, 0, 1, 7, 0, 65, 0, 0, 0, 0, 0, 0, 0]);
        setTimeout(() => r.connection.write(bad), 20);
      },
    });
    const response = await client.fetch("http://h/");
    await assert.rejects(response.text(), isError("BAD_VERSION"));
  });

  it("output ending before the blank line rejects with BAD_RESPONSE", async () => {
    const { client } = await setup({ onStdinEnd: (r) => r.connection.respond(r.requestId, "Content-Type: text/plain\r\n") });
    await assert.rejects(client.fetch("http://h/"), isError("BAD_RESPONSE", /before its CGI header block did/));
  });

  it("a malformed header line rejects with BAD_RESPONSE, and ABORT_REQUEST goes to the backend", async () => {
    const aborted: number[] = [];
    const { client } = await setup({
      onStdinEnd: (r) => r.connection.stdout(r.requestId, "X-Bad: a\0b\r\n\r\n"),
      onAbort: (r) => aborted.push(r.requestId),
    });
    await assert.rejects(client.fetch("http://h/"), isError("BAD_RESPONSE", /NUL/));
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
  });

  it("STDERR goes to onStderr with its requestId, a UTF-8 character straddling two records intact", async () => {
    const logs: string[] = [];
    const app = await startFakeApp({
      onStdinEnd: (r) => {
        const bytes = new TextEncoder().encode("PHP message: zoë");
        r.connection.write(rawStderr(r.requestId, bytes.subarray(0, bytes.length - 1)));
        r.connection.write(rawStderr(r.requestId, bytes.subarray(bytes.length - 1)));
        r.connection.respond(r.requestId, OK + "body");
      },
    });
    const client = new Client({ address: app.address, onStderr: (message, info) => logs.push(`${info.requestId}:${message}:${new URL(info.request.url).pathname}`) });
    cleanups.push(async () => {
      await client.close();
      await app.close();
    });
    assert.equal(await (await client.fetch("http://h/log")).text(), "body");
    assert.equal(logs.join(""), "1:PHP message: zo" + ":/log" + "1:ë:/log");
  });
});

function rawStderr(requestId: number, bytes: Uint8Array): Uint8Array {
  const pad = -bytes.length & 7;
  const out = new Uint8Array(8 + bytes.length + pad);
  out.set([1, RecordType.STDERR, requestId >> 8, requestId & 0xff, bytes.length >> 8, bytes.length & 0xff, pad, 0]);
  out.set(bytes, 8);
  return out;
}

describe("Client: abort and timeouts", () => {
  it("aborting before the headers sends ABORT_REQUEST, rejects at once with an AbortError, and the pool stays usable", async () => {
    const aborted: number[] = [];
    let first = true;
    const { client } = await setup(
      {
        onStdinEnd: (r) => {
          if (first) first = false; // never answered
          else r.connection.respond(r.requestId, OK + "after");
        },
        onAbort: (r) => aborted.push(r.requestId),
      },
      { maxConnections: 1 },
    );
    const controller = new AbortController();
    const pending = client.fetch(new Request("http://h/slow", { signal: controller.signal }));
    await waitFor(() => !first, 5000, "the request at the backend");
    const started = Date.now();
    controller.abort();
    await assert.rejects(pending, isAbort);
    assert.ok(Date.now() - started < 500, "rejected promptly");
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
    assert.equal(await (await within(client.fetch("http://h/next"), 5000, "the next request")).text(), "after");
  });

  it("aborting while the body streams fails the body with the AbortError", async () => {
    const aborted: number[] = [];
    const { client } = await setup({ onStdinEnd: (r) => r.connection.stdout(r.requestId, OK + "some"), onAbort: (r) => aborted.push(r.requestId) });
    const controller = new AbortController();
    const response = await client.fetch(new Request("http://h/", { signal: controller.signal }));
    const reader = response.body!.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), "some");
    controller.abort();
    await assert.rejects(reader.read(), isAbort);
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
  });

  it("aborting a request still waiting in the queue rejects it, and it never reaches the backend", async () => {
    const held: FakeRequest[] = [];
    const { client } = await setup({ onStdinEnd: (r) => held.push(r) }, { maxConnections: 1 });
    const first = client.fetch("http://h/first");
    await waitFor(() => held.length === 1, 5000, "the first request");
    const controller = new AbortController();
    const queued = client.fetch(new Request("http://h/queued", { signal: controller.signal }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(client.stats().queued, 1);
    controller.abort();
    await assert.rejects(queued, isAbort);
    held[0]!.connection.respond(held[0]!.requestId, OK + "first");
    assert.equal(await (await first).text(), "first");
    const third = client.fetch("http://h/third");
    await waitFor(() => held.length === 2, 5000, "the next request at the backend");
    assert.equal(held[1]!.params.REQUEST_URI, "/third", "the aborted request was never sent");
    held[1]!.connection.respond(held[1]!.requestId, OK + "third");
    assert.equal(await (await third).text(), "third");
  });

  it("an already aborted signal rejects without touching the backend", async () => {
    const { app, client } = await setup(echoUri);
    await assert.rejects(client.fetch(new Request("http://h/", { signal: AbortSignal.abort() })), isAbort);
    assert.equal(requestConnections(app), 0);
  });

  it("cancelling the response body aborts the request quietly", async () => {
    const aborted: number[] = [];
    const { client } = await setup({ onStdinEnd: (r) => r.connection.stdout(r.requestId, OK + "x"), onAbort: (r) => aborted.push(r.requestId) });
    const response = await client.fetch("http://h/");
    await response.body!.cancel();
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
  });

  it("a backend silent for responseTimeout gets ABORT_REQUEST and the fetch rejects with TIMEOUT", async () => {
    const aborted: number[] = [];
    const { client } = await setup({ onAbort: (r) => aborted.push(r.requestId) }, { responseTimeout: 200 });
    await client.limits();
    const started = Date.now();
    await assert.rejects(client.fetch("http://h/"), (e: unknown) => e instanceof FastCGIError && e.code === "TIMEOUT" && e.limit === "responseTimeout");
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 3000, `timed out after ${took} ms`);
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
  });

  it("a backend that sends 5 bytes of a record header and stalls: TIMEOUT, and that connection is never reused", async () => {
    let calls = 0;
    const { app, client } = await setup({
      onStdinEnd: (r) => {
        if (++calls === 1) r.connection.write(Uint8Array.of(1, RecordType.STDOUT, 0, r.requestId, 0));
        else r.connection.respond(r.requestId, OK + "second");
      },
    }, { responseTimeout: 200 });
    await assert.rejects(client.fetch("http://h/"), isError("TIMEOUT"));
    // The stalled connection is mid-record: the next request must go out on another one.
    assert.equal(await (await client.fetch("http://h/")).text(), "second");
    assert.equal(requestConnections(app), 2);
    const stalled = app.connections.find((c) => c.begun > 0)!;
    await waitFor(() => stalled.closed, 5000, "the client to close the stalled connection");
  });

  it("responseTimeout also bounds silence between body records", async () => {
    const { client } = await setup({ onStdinEnd: (r) => r.connection.stdout(r.requestId, OK + "start") }, { responseTimeout: 200 });
    const response = await client.fetch("http://h/");
    await assert.rejects(response.text(), isError("TIMEOUT"));
  });
});

describe("Client: request bodies", () => {
  it("a body of unknown length is read to learn CONTENT_LENGTH; over maxBufferedBody it is refused", async () => {
    const { client } = await setup({ onStdinEnd: (r) => r.connection.respond(r.requestId, OK + `${r.params.CONTENT_LENGTH}:${r.stdinBytes}`) }, { maxBufferedBody: 1000 });
    const post = (body: string) => client.fetch(new Request("http://h/", { method: "POST", body }));
    assert.equal(await (await post("x".repeat(1000))).text(), "1000:1000");
    await assert.rejects(post("x".repeat(1001)), (e: unknown) => e instanceof FastCGIError && e.limit === "maxBufferedBody");
    // An empty body without Content-Length is no body to nginx either: CONTENT_LENGTH is empty.
    assert.equal(await (await post("")).text(), ":0");
  });

  it("a body longer than its Content-Length fails the request instead of sending extra bytes", async () => {
    const aborted: number[] = [];
    const { client } = await setup({ onStdinEnd: (r) => r.connection.respond(r.requestId, OK + "should not end"), onAbort: (r) => aborted.push(r.requestId) });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(10));
        controller.close();
      },
    });
    const request = new Request("http://h/", { method: "POST", body, headers: { "content-length": "5" }, duplex: "half" } as RequestInit);
    await assert.rejects(client.fetch(request), /longer than its declared length \(5 bytes\)/);
    await waitFor(() => aborted.length === 1, 5000, "ABORT_REQUEST at the backend");
  });

  it("a large body is streamed no faster than the backend reads it (backpressure), and arrives whole", async () => {
    const total = 64 * 1024 * 1024;
    const chunk = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= total) return controller.close();
        pulled += chunk.length;
        controller.enqueue(chunk);
      },
    }, { highWaterMark: 0 });
    // What the backend's socket gave it while paused, and after it resumed.
    let resumed = false;
    let whilePaused = 0;
    let afterResume = 0;
    const hash = createHash("sha256");
    const counted = countingRuntime(await detectRuntime());
    const { app, client } = await setup({
      onBegin: (r) => r.connection.socket.pause(),
      onStdin: (_r, piece) => {
        hash.update(piece);
        if (resumed) afterResume += piece.length;
        else whilePaused += piece.length;
      },
      onStdinEnd: (r) => r.connection.respond(r.requestId, OK + `${r.stdinBytes} ${hash.digest("hex")}`),
    }, { runtime: counted.runtime });
    const request = new Request("http://h/", { method: "POST", body, headers: { "content-length": String(total) }, duplex: "half" } as RequestInit);
    const pending = client.fetch(request);
    await waitFor(() => app.connections.some((c) => c.begun > 0), 5000, "the request at the backend");
    // The client pulls while its socket takes the bytes; once the kernel buffers are full it stops.
    const [stalled, atBackend] = await settle(() => [pulled, whilePaused], "the bytes pulled from the body");
    const socket = busiestOut(counted.connections);
    assert.ok(socket.refusedWrites > 0, "the client's socket never pushed back");
    assert.ok(atBackend <= MAX_READ, `the paused backend still got ${atBackend} bytes`);
    assert.ok(stalled > chunk.length, `the body was hardly read: ${stalled} bytes`);
    // Pulled and not at the backend: in the kernel (both sockets), the adapter's queue, one chunk in hand.
    const bound = atBackend + KERNEL_BUFFERS + ADAPTER_QUEUE + MAX_RECORD + 2 * chunk.length;
    assert.ok(stalled <= bound, `read ${stalled} bytes of ${total} from the body (bound ${bound}) while the backend read none`);
    assert.ok(stalled < total);
    resumed = true;
    for (const c of app.connections) c.socket.resume();
    const expected = createHash("sha256");
    for (let n = 0; n < total; n += chunk.length) expected.update(chunk);
    assert.equal(await (await within(pending, 30_000, "the upload")).text(), `${total} ${expected.digest("hex")}`);
    assert.equal(whilePaused + afterResume, total);
    assert.ok(afterResume >= total - bound, `only ${afterResume} bytes came after the backend resumed`);
  });
});

describe("Client: response backpressure", () => {
  it("a consumer that does not read stops the reading of a non-multiplexed socket; the body then arrives whole", async () => {
    const total = 32 * 1024 * 1024;
    const piece = new Uint8Array(60_000).fill(0x61);
    let app!: FakeApp;
    const counted = countingRuntime(await detectRuntime());
    const setupResult = await setup({
      onStdinEnd: (r) => {
        r.connection.stdout(r.requestId, OK);
        let sent = 0;
        const socket = r.connection.socket;
        const pump = () => {
          while (sent < total) {
            const n = Math.min(piece.length, total - sent);
            sent += n;
            r.connection.stdout(r.requestId, piece.subarray(0, n));
            if (socket.writableLength > 8 * 1024 * 1024) return void socket.once("drain", pump);
          }
          r.connection.end(r.requestId);
        };
        pump();
      },
    }, { runtime: counted.runtime });
    app = setupResult.app;
    const response = await setupResult.client.fetch("http://h/big");
    // The client reads its socket until the body's queue is full, then pauses it: what the adapter
    // delivered stops growing, and the backend's writes back up in its socket.
    const socket = busiestIn(counted.connections);
    const delivered = await settle(() => socket.delivered, "the bytes delivered to the client");
    assert.ok(delivered > BODY_HIGH_WATER_MARK, `only ${delivered} bytes were read before the pause`);
    assert.ok(delivered <= BODY_HIGH_WATER_MARK + MAX_READ + MAX_RECORD, `the client read ${delivered} bytes nobody consumed`);
    assert.equal(socket.paused, true, "the client paused its socket");
    assert.equal(socket.deliveredWhilePaused, 0);
    const backlog = app.connections.find((c) => c.begun > 0)!.socket.writableLength;
    assert.ok(backlog > 0, "the backend's socket took everything: nothing pushed back");
    let received = 0;
    const reader = response.body!.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) received += r.value.length;
    assert.equal(received, total);
  });

  it("on a multiplexed connection an unread response fails at maxResponseBuffer while the others go on", async () => {
    const { app, client } = await setup(
      {
        onStdinEnd: (r) => {
          if (r.params.REQUEST_URI === "/big") {
            r.connection.stdout(r.requestId, OK);
            for (let i = 0; i < 40; i++) r.connection.stdout(r.requestId, new Uint8Array(60_000));
            r.connection.end(r.requestId);
          } else {
            setTimeout(() => r.connection.respond(r.requestId, OK + "small"), 50);
          }
        },
      },
      { maxResponseBuffer: 1024 * 1024, maxConnections: 1 },
      true,
    );
    const big = await client.fetch("http://h/big");
    const small = await within(client.fetch("http://h/small"), 5000, "the small response beside an unread one");
    assert.equal(await small.text(), "small");
    assert.equal(requestConnections(app), 1, "both on one multiplexed connection");
    await assert.rejects(big.arrayBuffer(), (e: unknown) => e instanceof FastCGIError && e.limit === "maxResponseBuffer");
  });
});
