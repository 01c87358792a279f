// Flow control and lost peers: per-request buffering with multiplexing, plain backpressure
// without it, ABORT_REQUEST, and web servers that disappear mid-response.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import type { Handler } from "../src/app/types.ts";
import { ProtocolStatus, RecordType } from "../src/protocol/constants.ts";
import { captureLogger, deferred, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";
import { countingRuntime, KERNEL_BUFFERS, MAX_READ, MAX_RECORD, settle, waitFor, within } from "./_support/poll.ts";
import { detectRuntime } from "../src/runtime/index.ts";

const MiB = 1024 * 1024;
/** What a request may hold unread before its connection stops reading: min(64 KiB, maxBufferedBytes / 4) (src/app/task.ts). */
const STDIN_HIGH_WATER = 64 * 1024;

/** An endless body: a chunk of `size` bytes every 5 ms, until cancelled. */
function trickle(size: number, onCancel: (reason: unknown) => void): ReadableStream<Uint8Array> {
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    pull: (controller) =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          if (!cancelled) controller.enqueue(new Uint8Array(size));
          resolve();
        }, 5)),
    cancel: (reason) => {
      cancelled = true;
      onCancel(reason);
    },
  });
}

test("multiplexed: a request whose large body is never read does not stall the other request on the connection", async () => {
  const { lines, logger } = captureLogger();
  const stuck = deferred<AbortSignal>();
  const fetch: Handler = async (request) => {
    if (new URL(request.url).pathname === "/stuck") {
      stuck.resolve(request.signal);
      await new Promise((resolve) => request.signal.addEventListener("abort", resolve));
      return new Response("never sent");
    }
    return new Response(`read ${(await request.bytes()).length}`);
  };
  await withServer({ fetch, logger, maxBufferedBytes: 256 * 1024 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      // Both requests begin; then 4 MiB for the first (never read), then the second's body.
      client.send(1, { params: httpParams("/stuck", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(4 * MiB) }), keepConn: true, openStdin: true });
      client.send(2, { params: httpParams("/quick", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(100_000) }), keepConn: true, openStdin: true });
      const piece = new Uint8Array(64 * 1024);
      for (let sent = 0; sent < 4 * MiB; sent += piece.length) client.stdin(1, piece);
      client.stdinEnd(1);
      client.stdin(2, new Uint8Array(100_000));
      client.stdinEnd(2);
      const second = await client.response(2, 10_000);
      assert.equal(parseCgi(second.stdout).text, "read 100000");
      // The first was ended for holding too much unread input; its handler saw the abort.
      const first = await client.response(1, 10_000);
      assert.equal(parseCgi(first.stdout).status, 503);
      const signal = await within(stuck.promise, 1000, "the stuck handler");
      assert.equal(signal.aborted, true);
      assert.ok(lines.some((l) => l.includes("maxBufferedBytes") || l.includes("unread input")), lines.join("\n"));
      // The connection is still good.
      client.send(3, { params: httpParams("/quick", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" }), stdin: "abc", keepConn: true });
      assert.equal(parseCgi((await client.response(3)).stdout).text, "read 3");
    } finally {
      client.destroy();
    }
  });
});

test("multiplexed: a slow response on one request does not delay another request's response", async () => {
  const fetch: Handler = (request) => {
    if (new URL(request.url).pathname === "/slow") {
      let n = 0;
      return new Response(new ReadableStream({
        async pull(controller) {
          await new Promise((r) => setTimeout(r, 20));
          if (++n > 50) controller.close();
          else controller.enqueue(new TextEncoder().encode("."));
        },
      }));
    }
    return new Response("fast");
  };
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/slow"), keepConn: true });
      client.send(2, { params: httpParams("/fast"), keepConn: true });
      assert.equal(parseCgi((await client.response(2)).stdout).text, "fast");
      assert.ok(!client.pending.some((r) => r.requestId === 1 && r.type === RecordType.END_REQUEST), "the fast answer did not wait for the slow one");
      assert.equal(parseCgi((await client.response(1)).stdout).text, ".".repeat(50));
    } finally {
      client.destroy();
    }
  });
});

test("one request per connection: an unread body stops the socket being read (backpressure), and nothing is lost", async () => {
  const go = deferred();
  const fetch: Handler = async (request) => {
    await go.promise;
    let total = 0;
    let sum = 0;
    const reader = request.body!.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      total += r.value.length;
      for (const b of r.value) sum = (sum + b) % 65521;
    }
    return new Response(`${total} ${sum}`);
  };
  const counted = countingRuntime(await detectRuntime());
  await withServer({ fetch, multiplex: false, runtime: counted.runtime }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      const size = 24 * MiB;
      const body = new Uint8Array(size).map((_, i) => i % 253);
      let expectedSum = 0;
      for (const b of body) expectedSum = (expectedSum + b) % 65521;
      client.send(1, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(size) }), openStdin: true });
      client.stdin(1, body);
      client.stdinEnd(1);
      // The server reads until the request holds its high-water mark unread, then stops reading:
      // what its socket adapter delivered stops growing, far short of the body.
      const [server] = counted.connections;
      assert.ok(server, "the server's connection was counted");
      const delivered = await settle(() => server.delivered, "the bytes delivered to the server");
      assert.ok(delivered > STDIN_HIGH_WATER, `the server read only ${delivered} bytes before it stopped`);
      assert.ok(delivered <= STDIN_HIGH_WATER + MAX_READ + MAX_RECORD, `the server read ${delivered} bytes of a body nobody consumed`);
      assert.equal(server.paused, true, "the server paused its socket");
      assert.equal(server.deliveredWhilePaused, 0);
      go.resolve();
      const result = await client.response(1, 20_000);
      assert.equal(parseCgi(result.stdout).text, `${size} ${expectedSum}`);
      assert.ok(server.resumes >= 1, "reading resumed once the handler read");
    } finally {
      client.destroy();
    }
  });
});

test("ABORT_REQUEST fires the request's signal and is answered with END_REQUEST", async () => {
  const aborted = deferred<unknown>();
  const started = deferred();
  const fetch: Handler = (request) =>
    new Promise(() => {
      request.signal.addEventListener("abort", () => aborted.resolve(request.signal.reason));
      started.resolve();
    });
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/"), keepConn: true });
      await within(started.promise, 2000, "the handler");
      client.abort(1);
      const result = await client.response(1);
      assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      const reason = await within(aborted.promise, 1000, "the abort signal");
      assert.match(String((reason as Error).message), /ABORT_REQUEST/);
      // Nothing else was written for the request, and the kept connection stays open.
      assert.equal(result.records.filter((r) => r.type === RecordType.STDOUT && r.content.length > 0).length, 0);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(client.closed, false);
    } finally {
      client.destroy();
    }
  });
});

test("ABORT_REQUEST during a streamed response cancels the response body", async () => {
  const cancelled = deferred<unknown>();
  const fetch: Handler = () =>
    new Response(trickle(10, (reason) => cancelled.resolve(reason)));
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/"), keepConn: true });
      await client.nextFor(1);
      client.abort(1);
      await within(cancelled.promise, 2000, "the body to be cancelled");
      const result = await client.response(1);
      assert.equal(result.records.at(-1)!.type, RecordType.END_REQUEST);
    } finally {
      client.destroy();
    }
  });
});

test("a web server that disconnects mid-response: the body is cancelled, the signal fires, the server goes on", async () => {
  const cancelled = deferred();
  const aborted = deferred();
  const fetch: Handler = (request) => {
    if (new URL(request.url).pathname === "/ok") return new Response("still here");
    request.signal.addEventListener("abort", () => aborted.resolve());
    return new Response(trickle(1000, () => cancelled.resolve()));
  };
  await withServer({ fetch }, async (port, server) => {
    const client = await RecordClient.connect(port);
    client.send(1, { params: httpParams("/stream") });
    await client.nextFor(1);
    await client.nextFor(1);
    client.destroy();
    await within(cancelled.promise, 2000, "the body to be cancelled");
    await within(aborted.promise, 2000, "the signal");
    await waitFor(() => server.connections === 0 && server.activeRequests === 0, 2000, "the connection to be let go");
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ok") })).stdout).text, "still here");
  });
});

test("a web server that disconnects before the handler answers: the signal fires and the late answer is dropped", async () => {
  const aborted = deferred();
  const late = deferred<Response>();
  const cancelled = deferred<unknown>();
  let pulls = 0;
  const { lines, logger } = captureLogger();
  const counted = countingRuntime(await detectRuntime());
  const fetch: Handler = (request) => (request.signal.addEventListener("abort", () => aborted.resolve()), late.promise);
  await withServer({ fetch, logger, runtime: counted.runtime }, async (port, server) => {
    const client = await RecordClient.connect(port);
    client.send(1, { params: httpParams("/") });
    await waitFor(() => server.activeRequests === 1, 2000, "the request to start");
    client.destroy();
    await within(aborted.promise, 2000, "the signal");
    const [connection] = counted.connections;
    assert.ok(connection, "the server's connection was counted");
    const writtenBefore = connection.written;
    // The answer comes after the connection is gone: its body is cancelled unread, nothing is written.
    late.resolve(new Response(new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new TextEncoder().encode("too late"));
      },
      cancel: (reason) => cancelled.resolve(reason),
    }, { highWaterMark: 0 })));
    await within(cancelled.promise, 2000, "the late body to be cancelled");
    await waitFor(() => server.connections === 0 && server.activeRequests === 0, 2000, "everything to be let go");
    assert.equal(pulls, 0, "the late body was read");
    assert.equal(connection.closed, true);
    assert.equal(connection.written, writtenBefore, "bytes were written for the late answer");
    assert.equal(connection.writtenAfterClose, 0);
    assert.deepEqual(lines, [], "the late answer is not an error");
  });
});

test("a response the socket cannot take is read from the handler only as fast as the web server reads", async () => {
  const CHUNK = 64 * 1024;
  const TOTAL = 256 * MiB;
  let produced = 0;
  const fetch: Handler = () =>
    new Response(new ReadableStream({
      pull(controller) {
        produced += CHUNK;
        controller.enqueue(new Uint8Array(CHUNK));
        if (produced >= TOTAL) controller.close();
      },
    }, { highWaterMark: 0 }));
  const counted = countingRuntime(await detectRuntime());
  await withServer({ fetch, runtime: counted.runtime }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.socket.pause();
      client.send(1, { params: httpParams("/") });
      // Once the kernel buffers and the adapter's queue are full, the server stops pulling.
      const stalled = await settle(() => produced, "the bytes pulled from the handler's body");
      const [connection] = counted.connections;
      assert.ok(connection, "the server's connection was counted");
      assert.ok(connection.refusedWrites > 0, "the server's socket never pushed back");
      assert.ok(stalled > CHUNK, `the handler's body was hardly read: ${stalled} bytes`);
      // What left the handler sits in the kernel (both sockets) or in the adapter's queue, which
      // refuses writes from 64 KiB on; the pump reads one chunk before it waits.
      const bound = KERNEL_BUFFERS + MAX_RECORD + 64 * 1024 + 2 * CHUNK;
      assert.ok(stalled <= bound, `the handler's stream was read ahead by ${stalled} bytes (bound ${bound}) while nobody read the socket`);
    } finally {
      client.destroy();
    }
  });
});
