// requestTimeout: a request that runs too long is ended (504 or a cut body, then END_REQUEST), its
// signal fires, what its handler does afterwards is dropped, and the connection lives on.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../src/app/options.ts";
import { serve } from "../src/app/serve.ts";
import type { Handler } from "../src/app/types.ts";
import { FastCGIError } from "../src/errors.ts";
import { RecordType } from "../src/protocol/constants.ts";
import { captureLogger, deferred, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";
import { waitFor, within } from "./_support/poll.ts";

const TIMEOUT = 400;
/** How late the sweeper may notice (one period, TIMEOUT / 4) plus a loaded machine's slack. */
const MARGIN = 1500;

const hello: Handler = () => new Response("hello");

/** The handler's view of its signals once they fired. */
function isTimeout(reason: unknown): boolean {
  return reason instanceof FastCGIError && reason.code === "TIMEOUT" && reason.limit === "requestTimeout";
}

test("requestTimeout is off by default, and a negative, zero or NaN value is refused", async () => {
  assert.equal(DEFAULT_LIMITS.requestTimeout, Infinity);
  for (const requestTimeout of [-1, 0, NaN, "5s"]) {
    await assert.rejects(serve({ listen: "127.0.0.1:0", fetch: hello, requestTimeout } as never), RangeError, String(requestTimeout));
  }
  const server = await serve({ listen: "127.0.0.1:0", fetch: hello, logger: null, requestTimeout: Infinity });
  await server.close();
});

for (const overrideGlobalObjects of [true, false]) {
  test(`a handler that never settles gets 504 and END_REQUEST within the timeout, its signals fire with a TIMEOUT error, and the kept connection serves the next request (overrideGlobalObjects: ${overrideGlobalObjects})`, async () => {
    const { lines, logger } = captureLogger();
    const reasons: unknown[] = [];
    const fetch: Handler = (request, context) => {
      if (new URL(request.url).pathname !== "/hang") return new Response("next");
      request.signal.addEventListener("abort", () => reasons.push(request.signal.reason));
      context.signal.addEventListener("abort", () => reasons.push(context.signal.reason));
      return new Promise<Response>(() => {});
    };
    await withServer({ fetch, logger, requestTimeout: TIMEOUT, overrideGlobalObjects }, async (port, server) => {
      const client = await RecordClient.connect(port);
      try {
        const started = Date.now();
        client.send(1, { params: httpParams("/hang?x=1"), keepConn: true });
        const result = await client.response(1, TIMEOUT + MARGIN);
        const took = Date.now() - started;
        assert.ok(took >= TIMEOUT - 20, `ended after ${took} ms, before requestTimeout (${TIMEOUT} ms)`);
        assert.equal(parseCgi(result.stdout).status, 504);
        assert.equal(result.appStatus, 1);
        assert.equal(result.protocolStatus, 0);
        assert.equal(reasons.length, 2, "request.signal and context.signal both fired");
        assert.ok(reasons.every(isTimeout), String(reasons));
        assert.equal(server.activeRequests, 0);
        // The log line names the request and how long it ran.
        const line = lines.find((l) => l.includes("requestTimeout"));
        assert.ok(line, lines.join("\n"));
        assert.match(line!, /GET \/hang\?x=1/);
        assert.match(line!, /ran (\d+) ms/);
        assert.ok(Number(/ran (\d+) ms/.exec(line!)![1]) >= TIMEOUT);
        client.send(2, { params: httpParams("/"), keepConn: true });
        assert.equal(parseCgi((await client.response(2)).stdout).text, "next");
        assert.equal(client.closed, false);
      } finally {
        client.destroy();
      }
    });
  });
}

test("requests that finish in time are untouched, though together they run longer than the timeout on one connection, beside one that hangs", async () => {
  const aborted: string[] = [];
  const fetch: Handler = async (request) => {
    const path = new URL(request.url).pathname;
    request.signal.addEventListener("abort", () => aborted.push(path));
    if (path === "/hang") return await new Promise<Response>(() => {});
    await new Promise((r) => setTimeout(r, TIMEOUT / 4));
    return new Response(`done ${path}`);
  };
  await withServer({ fetch, requestTimeout: TIMEOUT }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(99, { params: httpParams("/hang"), keepConn: true });
      const started = Date.now();
      for (let i = 1; i <= 6; i++) {
        client.send(i, { params: httpParams(`/quick${i}`), keepConn: true });
        const result = await client.response(i);
        assert.equal(result.appStatus, 0);
        assert.equal(parseCgi(result.stdout).text, `done /quick${i}`);
      }
      assert.ok(Date.now() - started > TIMEOUT, "the six requests together outlast requestTimeout");
      assert.equal(parseCgi((await client.response(99, MARGIN)).stdout).status, 504);
      assert.deepEqual(aborted, ["/hang"]);
    } finally {
      client.destroy();
    }
  });
});

test("a streamed body that stalls after the head is cut: no 504, the stream is cancelled with the reason, END_REQUEST with appStatus 1", async () => {
  const cancelled = deferred<unknown>();
  const fetch: Handler = (request) => {
    if (new URL(request.url).pathname !== "/stall") return new Response("next");
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("first part;"));
      },
      cancel(reason) {
        cancelled.resolve(reason);
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  };
  await withServer({ fetch, requestTimeout: TIMEOUT }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/stall"), keepConn: true });
      const result = await client.response(1, TIMEOUT + MARGIN);
      const cgi = parseCgi(result.stdout);
      assert.equal(cgi.status, 200);
      assert.equal(cgi.text, "first part;");
      assert.equal(result.appStatus, 1);
      assert.ok(isTimeout(await within(cancelled.promise, 1000, "the body's cancel")));
      client.send(2, { params: httpParams("/"), keepConn: true });
      assert.equal(parseCgi((await client.response(2)).stdout).text, "next");
    } finally {
      client.destroy();
    }
  });
});

test("what a handler does after its request timed out is dropped: a late response, stderr, a throw; nothing is written and nothing crashes", async () => {
  const { lines, logger } = captureLogger();
  const late = new Map([["/respond", deferred()], ["/throw", deferred()]]);
  const fetch: Handler = async (request, context) => {
    const path = new URL(request.url).pathname;
    if (path === "/") return new Response("next");
    await new Promise((resolve) => request.signal.addEventListener("abort", resolve));
    await new Promise((r) => setTimeout(r, 50));
    context.stderr.write("late stderr\n");
    late.get(path)!.resolve();
    if (path === "/throw") throw new Error("thrown after the timeout");
    return new Response("late response");
  };
  await withServer({ fetch, logger, requestTimeout: TIMEOUT }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      for (const [id, path] of [[1, "/respond"], [3, "/throw"]] as const) {
        client.send(id, { params: httpParams(path), keepConn: true });
        const result = await client.response(id, TIMEOUT + MARGIN);
        assert.equal(parseCgi(result.stdout).status, 504);
        assert.equal(result.stderr, "");
        await within(late.get(path)!.promise, 2000, "the late handler");
        // Give the late output every chance to be (wrongly) written.
        await new Promise((r) => setTimeout(r, 100));
        client.send(id + 1, { params: httpParams("/"), keepConn: true });
        assert.equal(parseCgi((await client.response(id + 1)).stdout).text, "next");
        assert.deepEqual(client.pending.filter((r) => r.requestId === id), [], `records after END_REQUEST of ${path}`);
      }
      assert.ok(!lines.some((l) => l.includes("thrown after the timeout")), lines.join("\n"));
    } finally {
      client.destroy();
    }
  });
});

test("a request still uploading its body when the timeout passes is ended, and its body reader fails with the reason", async () => {
  const readError = deferred<unknown>();
  const fetch: Handler = async (request) => {
    try {
      await request.arrayBuffer();
    } catch (error) {
      readError.resolve(error);
    }
    return new Response("read");
  };
  await withServer({ fetch, requestTimeout: TIMEOUT }, async (port, server) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/upload", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" }), stdin: "only ten b", openStdin: true, keepConn: true });
      const result = await client.response(1, TIMEOUT + MARGIN);
      assert.equal(parseCgi(result.stdout).status, 504);
      const error = await within(readError.promise, 1000, "the body read to fail");
      assert.ok(isTimeout(error) || isTimeout((error as Error).cause), String(error));
      // The rest of the upload arriving late is dropped, not mistaken for a new request.
      client.stdin(1, "x".repeat(90));
      client.stdinEnd(1);
      await waitFor(() => server.activeRequests === 0, 1000, "the request to be counted out");
      assert.equal(client.pending.filter((r) => r.requestId === 1 && r.type !== RecordType.STDERR).length, 0);
    } finally {
      client.destroy();
    }
  });
});
