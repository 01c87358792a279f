// Every limit: a safe default, configurable, logged when hit, and never a cause of memory growth.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { encodeBeginRequest, encodeRecord } from "../src/codec/encode.ts";
import { DEFAULT_LIMITS } from "../src/app/options.ts";
import { serve } from "../src/app/serve.ts";
import type { Handler } from "../src/app/types.ts";
import { ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import { captureLogger, deferred, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { slowClosingRuntime, withServer } from "./_support/serve.ts";
import { waitFor, within } from "./_support/poll.ts";

const hello: Handler = () => new Response("hello");

test("the defaults are safe and documented", () => {
  assert.equal(DEFAULT_LIMITS.maxParamsBytes, 1024 * 1024);
  assert.equal(DEFAULT_LIMITS.paramsTimeout, 10_000);
  assert.equal(DEFAULT_LIMITS.idleTimeout, 60_000);
  assert.ok(DEFAULT_LIMITS.maxConnections > 0 && DEFAULT_LIMITS.maxRequests > 0);
});

test("bad limit values are refused when the server starts", async () => {
  await assert.rejects(serve({ listen: "127.0.0.1:0", fetch: hello, maxConnections: 0 }), RangeError);
  await assert.rejects(serve({ listen: "127.0.0.1:0", fetch: hello, paramsTimeout: -1 }), RangeError);
  await assert.rejects(serve({ listen: "127.0.0.1:0" }), TypeError);
});

test("an endless PARAMS stream hits maxParamsBytes: the request ends at the limit, not at a stream end that never comes, and what follows is dropped", async () => {
  const { lines, logger } = captureLogger();
  await withServer({ fetch: hello, logger, maxParamsBytes: 64 * 1024 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.begin(1, Role.RESPONDER, true);
      // 96 KiB of PARAMS, past the 64 KiB limit, and no empty PARAMS record to end them: a server
      // that buffered until the end would never answer.
      const content = new Uint8Array(32 * 1024).fill(0x61);
      content.set([0x04, 0x80, 0x00, 0x7f, 0xff]); // a pair whose value (32 767 bytes) spans the next record
      client.record(RecordType.PARAMS, 1, content);
      for (let i = 0; i < 2; i++) client.record(RecordType.PARAMS, 1, new Uint8Array(32 * 1024).fill(0x62));
      const result = await client.response(1);
      assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      assert.notEqual(result.appStatus, 0);
      assert.ok(lines.some((l) => /PARAMS/.test(l)), lines.join("\n"));
      // 4 MiB more for the ended request is dropped: no answer for it, and the connection still
      // serves the next request.
      for (let i = 0; i < 128; i++) client.record(RecordType.PARAMS, 1, new Uint8Array(32 * 1024).fill(0x62));
      client.send(2, { params: httpParams("/"), keepConn: true });
      assert.equal(parseCgi((await client.response(2)).stdout).text, "hello");
      assert.deepEqual(client.pending.filter((r) => r.requestId === 1), [], "records for the ended request");
    } finally {
      client.destroy();
    }
  });
});

test("many small pairs also stop at maxParamsBytes, with a 431 (the pair at the limit is a header)", async () => {
  await withServer({ fetch: hello, maxParamsBytes: 16 * 1024 }, async (port) => {
    const params: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) params[`HTTP_X_${i}`] = "v".repeat(20);
    const result = await fcgiRequest(port, { params });
    assert.notEqual(result.appStatus, 0);
    assert.equal(parseCgi(result.stdout).status, 431);
  });
});

test("hundreds of half-open connections sending 5 bytes do not block others, and paramsTimeout closes them", async () => {
  const { lines, logger } = captureLogger();
  const paramsTimeout = 3000;
  await withServer({ fetch: hello, logger, paramsTimeout }, async (port, server) => {
    const half: RecordClient[] = [];
    try {
      const started = Date.now();
      // In parallel, so that all 200 are open well inside paramsTimeout even on a slow machine.
      for (let batch = 0; batch < 4; batch++) {
        half.push(...await Promise.all(Array.from({ length: 50 }, () => RecordClient.connect(port))));
      }
      for (const client of half) client.write(encodeBeginRequest(1, Role.RESPONDER, 0).subarray(0, 5));
      // Served while every half-open connection is still there.
      const result = await fcgiRequest(port, { params: httpParams("/") });
      assert.equal(parseCgi(result.stdout).text, "hello");
      const servedAfter = Date.now() - started;
      assert.ok(servedAfter < paramsTimeout, `served after ${servedAfter} ms: too late to tell that the half-open ones did not block it`);
      assert.equal(half.filter((c) => c.closed).length, 0, "served before paramsTimeout, not after it cleared the way");
      await Promise.all(half.map((c) => c.waitClosed(paramsTimeout + 5000)));
      await waitFor(() => server.connections === 0, 2000, "the server to drop them");
      assert.ok(lines.some((l) => l.includes("paramsTimeout")), lines.join("\n"));
      assert.ok(lines.length < 20, `rate-limited log: ${lines.length} lines`);
    } finally {
      for (const c of half) c.destroy();
    }
  });
});

test("a connection whose PARAMS never end is closed by paramsTimeout", async () => {
  await withServer({ fetch: hello, paramsTimeout: 300 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.begin(1);
      client.record(RecordType.PARAMS, 1, new Uint8Array([4, 1, 0x41, 0x42, 0x43, 0x44, 0x45]));
      const started = Date.now();
      await client.waitClosed(3000);
      assert.ok(Date.now() - started >= 200);
    } finally {
      client.destroy();
    }
  });
});

test("idleTimeout closes a kept-open connection that has no request, not one that is busy", async () => {
  const { lines, logger } = captureLogger();
  const slow: Handler = async () => {
    await new Promise((r) => setTimeout(r, 600));
    return new Response("slow");
  };
  await withServer({ fetch: slow, logger, idleTimeout: 300, paramsTimeout: 300 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/"), keepConn: true });
      // Busier than both timeouts: the handler runs 600 ms.
      assert.equal(parseCgi((await client.response(1)).stdout).text, "slow");
      const idleSince = Date.now();
      await client.waitClosed(3000);
      assert.ok(Date.now() - idleSince >= 200);
      assert.ok(lines.some((l) => l.includes("idleTimeout")), lines.join("\n"));
    } finally {
      client.destroy();
    }
  });
});

test("a kept connection that wakes up gets paramsTimeout, not idleTimeout, to finish its PARAMS", async () => {
  await withServer({ fetch: hello, idleTimeout: 10_000, paramsTimeout: 300 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/"), keepConn: true });
      assert.equal(parseCgi((await client.response(1)).stdout).text, "hello");
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(client.closed, false, "idle, but well within idleTimeout");
      client.write(encodeBeginRequest(2, Role.RESPONDER, 1).subarray(0, 5));
      const woke = Date.now();
      await client.waitClosed(3000);
      assert.ok(Date.now() - woke < 2500);
    } finally {
      client.destroy();
    }
  });
});

test("maxConnections: connections beyond it are closed at once, and admitted again once there is room", async () => {
  const { lines, logger } = captureLogger();
  await withServer({ fetch: hello, logger, maxConnections: 2 }, async (port, server) => {
    const a = await RecordClient.connect(port);
    const b = await RecordClient.connect(port);
    await waitFor(() => server.connections === 2, 2000, "two connections");
    const c = await RecordClient.connect(port);
    try {
      await c.waitClosed(2000);
      assert.ok(lines.some((l) => l.includes("maxConnections")), lines.join("\n"));
      a.destroy();
      await waitFor(() => server.connections === 1, 2000, "room again");
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "hello");
    } finally {
      a.destroy();
      b.destroy();
      c.destroy();
    }
  });
});

test("maxRequests: requests beyond it get OVERLOADED, counted across connections", async () => {
  const { lines, logger } = captureLogger();
  const gate = deferred();
  const fetch: Handler = async () => {
    await gate.promise;
    return new Response("done");
  };
  await withServer({ fetch, logger, maxRequests: 2 }, async (port, server) => {
    const one = await RecordClient.connect(port);
    const two = await RecordClient.connect(port);
    try {
      one.send(1, { params: httpParams("/"), keepConn: true });
      one.send(2, { params: httpParams("/"), keepConn: true });
      await waitFor(() => server.activeRequests === 2, 2000, "two running requests");
      two.send(1, { params: httpParams("/") });
      assert.equal((await two.response(1)).protocolStatus, ProtocolStatus.OVERLOADED);
      assert.ok(lines.some((l) => l.includes("maxRequests")), lines.join("\n"));
      gate.resolve();
      await one.response(1);
      await one.response(2);
      await waitFor(() => server.activeRequests === 0, 2000, "the count to drop");
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "done");
    } finally {
      one.destroy();
      two.destroy();
    }
  });
});

test("maxBodyBytes: a declared CONTENT_LENGTH over it gets 413 without calling the handler", async () => {
  const { lines, logger } = captureLogger();
  let called = false;
  await withServer({ fetch: () => ((called = true), new Response("x")), logger, maxBodyBytes: 100 }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "101" }), stdin: "x".repeat(101) });
    assert.equal(parseCgi(result.stdout).status, 413);
    assert.equal(called, false);
    assert.ok(lines.some((l) => l.includes("maxBodyBytes")));
    const ok = await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" }), stdin: "x".repeat(100) });
    assert.equal(parseCgi(ok.stdout).status, 200);
  });
});

test("maxBodyBytes: a body without CONTENT_LENGTH that grows over it gets 413 and the handler's signal fires", async () => {
  const aborted = deferred();
  const fetch: Handler = async (request) => {
    request.signal.addEventListener("abort", () => aborted.resolve());
    await request.text().catch(() => {});
    return new Response("late");
  };
  await withServer({ fetch, maxBodyBytes: 1000 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/", { REQUEST_METHOD: "POST" }), openStdin: true });
      for (let i = 0; i < 5; i++) client.stdin(1, new Uint8Array(400));
      const result = await client.response(1);
      assert.equal(parseCgi(result.stdout).status, 413);
      await within(aborted.promise, 1000, "the abort signal");
    } finally {
      client.destroy();
    }
  });
});

test("the allow-list closes connections from other addresses at once, with a log line", async () => {
  const { lines, logger } = captureLogger();
  await withServer({ fetch: hello, logger, allow: "10.0.0.0/8, ::2" }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      await client.waitClosed(2000);
      assert.ok(lines.some((l) => l.includes("127.0.0.1") && l.includes("allow")), lines.join("\n"));
    } finally {
      client.destroy();
    }
  });
  await withServer({ fetch: hello, allow: ["10.0.0.0/8", "127.0.0.0/8"] }, async (port) => {
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "hello");
  });
});

test("FCGI_WEB_SERVER_ADDRS in the environment is the allow-list when the option is not given", async () => {
  const before = process.env.FCGI_WEB_SERVER_ADDRS;
  process.env.FCGI_WEB_SERVER_ADDRS = "192.0.2.1";
  try {
    await withServer({ fetch: hello }, async (port) => {
      const client = await RecordClient.connect(port);
      try {
        await client.waitClosed(2000);
      } finally {
        client.destroy();
      }
    });
    process.env.FCGI_WEB_SERVER_ADDRS = "192.0.2.1,127.0.0.1";
    await withServer({ fetch: hello }, async (port) => {
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "hello");
    });
  } finally {
    if (before === undefined) delete process.env.FCGI_WEB_SERVER_ADDRS;
    else process.env.FCGI_WEB_SERVER_ADDRS = before;
  }
});

test("graceful close: the in-flight request finishes, new connections are refused, a connection that brings no request closes after the grace", async () => {
  const gate = deferred();
  const started = deferred();
  const fetch: Handler = async () => {
    started.resolve();
    await gate.promise;
    return new Response("finished");
  };
  const server = await serve({ listen: "127.0.0.1:0", logger: null, fetch });
  const port = (server.addresses[0] as { port: number }).port;
  const busy = await RecordClient.connect(port);
  const idle = await RecordClient.connect(port);
  try {
    busy.send(1, { params: httpParams("/") });
    await within(started.promise, 2000, "the handler");
    const closeBegan = Date.now();
    const closing = server.close();
    // A connection with no request yet gets a second to bring one (nginx may be sending it).
    await idle.waitClosed(3000);
    assert.ok(Date.now() - closeBegan >= 900, `the idle connection closed after ${Date.now() - closeBegan} ms`);
    await assert.rejects(within(new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1" }, () => {
        socket.once("close", () => reject(new Error("closed by the server after connecting")));
        socket.once("data", () => resolve("data"));
      });
      socket.once("error", reject);
    }), 2000, "a refusal"), /ECONNREFUSED|closed by the server/);
    gate.resolve();
    const result = await busy.response(1);
    assert.equal(parseCgi(result.stdout).text, "finished");
    await within(closing, 3000, "close()");
    await within(server.finished, 100, "finished");
  } finally {
    busy.destroy();
    idle.destroy();
  }
});

// A web server may have sent a request on a connection the instant the close begins: its first one
// on a connection it has just opened (nginx cannot retry that one: a 502), or its next one on a
// kept connection (nginx retries a GET there, never a POST). Each is served, then the connection
// closes right after the answer, which the web server reads together with the close.
test("graceful close: a connection accepted before the close whose first request was not read yet is served it, then closed", async () => {
  const server = await serve({ listen: "127.0.0.1:0", logger: null, fetch: hello });
  const port = (server.addresses[0] as { port: number }).port;
  const client = await RecordClient.connect(port);
  try {
    await waitFor(() => server.connections === 1, 2000, "the connection accepted");
    const closing = server.close();
    client.send(1, { params: httpParams("/"), keepConn: true });
    const result = await client.response(1);
    assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(parseCgi(result.stdout).text, "hello");
    await client.waitClosed(500);
    await within(closing, 3000, "close()");
  } finally {
    client.destroy();
  }
});

test("graceful close: an idle kept connection is served the request sent on it as the close begins, then closed right after the answer", async () => {
  const server = await serve({ listen: "127.0.0.1:0", logger: null, fetch: (request) => new Response(`${request.method} ${new URL(request.url).pathname}`) });
  const port = (server.addresses[0] as { port: number }).port;
  const client = await RecordClient.connect(port);
  try {
    client.send(1, { params: httpParams("/first"), keepConn: true });
    assert.equal(parseCgi((await client.response(1)).stdout).text, "GET /first");
    const closing = server.close();
    client.send(2, { params: httpParams("/form", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "1" }), stdin: "x", keepConn: true });
    const result = await client.response(2);
    assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(parseCgi(result.stdout).text, "POST /form");
    await client.waitClosed(500);
    await within(closing, 3000, "close()");
  } finally {
    client.destroy();
  }
});

test("graceful close: a request whose PARAMS are still arriving when the close begins is served", async () => {
  const server = await serve({ listen: "127.0.0.1:0", logger: null, fetch: (request) => new Response(new URL(request.url).pathname) });
  const port = (server.addresses[0] as { port: number }).port;
  const client = await RecordClient.connect(port);
  try {
    client.begin(1, Role.RESPONDER, true);
    await waitFor(() => server.activeRequests === 1, 2000, "BEGIN_REQUEST admitted");
    const closing = server.close();
    client.params(1, httpParams("/halfway"));
    client.stdinEnd(1);
    const result = await client.response(1);
    assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(parseCgi(result.stdout).text, "/halfway");
    await client.waitClosed(500);
    await within(closing, 3000, "close()");
  } finally {
    client.destroy();
  }
});

test("graceful close: a multiplexed connection with a request running is still served its next requests, then closes once idle", async () => {
  const gate = deferred();
  const started = deferred();
  const fetch: Handler = async (request) => {
    if (new URL(request.url).pathname === "/slow") {
      started.resolve();
      await gate.promise;
    }
    return new Response(`done ${new URL(request.url).pathname}`);
  };
  const server = await serve({ listen: "127.0.0.1:0", logger: null, multiplex: true, fetch });
  const port = (server.addresses[0] as { port: number }).port;
  const client = await RecordClient.connect(port);
  try {
    client.send(1, { params: httpParams("/slow"), keepConn: true });
    await within(started.promise, 2000, "the slow handler");
    const closing = server.close();
    // HAProxy with mpxs-conns sends its next request on the busy connection it already has.
    client.send(2, { params: httpParams("/next"), keepConn: true });
    const next = await client.response(2);
    assert.equal(next.protocolStatus, ProtocolStatus.REQUEST_COMPLETE, "the request that came while closing was refused");
    assert.equal(parseCgi(next.stdout).text, "done /next");
    gate.resolve();
    assert.equal(parseCgi((await client.response(1)).stdout).text, "done /slow");
    await client.waitClosed(2000);
    await within(closing, 3000, "close()");
  } finally {
    client.destroy();
  }
});

test("closeTimeout: a request that never finishes is cut when close() has waited long enough", async () => {
  const { lines, logger } = captureLogger();
  const aborted = deferred();
  const server = await serve({
    listen: "127.0.0.1:0",
    logger,
    closeTimeout: 300,
    fetch: (request) => new Promise(() => request.signal.addEventListener("abort", () => aborted.resolve())),
  });
  const port = (server.addresses[0] as { port: number }).port;
  const client = await RecordClient.connect(port);
  try {
    client.send(1, { params: httpParams("/") });
    await waitFor(() => server.activeRequests === 1, 2000, "the request");
    const started = Date.now();
    await within(server.close(), 3000, "close()");
    assert.ok(Date.now() - started >= 250);
    await within(aborted.promise, 1000, "the abort signal");
    await client.waitClosed(2000);
    assert.ok(lines.some((l) => l.includes("closeTimeout")));
  } finally {
    client.destroy();
  }
});

test("a signal option closes the server; Symbol.asyncDispose does too", async () => {
  const controller = new AbortController();
  const server = await serve({ listen: "127.0.0.1:0", logger: null, fetch: hello, signal: controller.signal });
  controller.abort();
  await within(server.finished, 3000, "finished");
  const other = await serve({ listen: "127.0.0.1:0", logger: null, fetch: hello });
  await other[Symbol.asyncDispose]();
  await within(other.finished, 100, "finished");
});

test("GET_VALUES, records for unknown ids and unknown types on a request id do not disturb a request", async () => {
  await withServer({ fetch: hello }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.record(RecordType.STDIN, 7, new Uint8Array(4));
      client.abort(9);
      client.record(RecordType.DATA, 3, new Uint8Array(1));
      client.record(77, 1, new Uint8Array(2));
      client.send(1, { params: httpParams("/"), keepConn: true });
      assert.equal(parseCgi((await client.response(1)).stdout).text, "hello");
      client.write(encodeRecord(RecordType.GET_VALUES, 0));
      assert.equal((await client.next()).type, RecordType.GET_VALUES_RESULT);
    } finally {
      client.destroy();
    }
  });
});

test("a version byte other than 1 closes the connection; others are not affected", async () => {
  await withServer({ fetch: hello }, async (port) => {
    const bad = await RecordClient.connect(port);
    try {
      const record = encodeRecord(RecordType.GET_VALUES, 0);
      record[0] = 2;
      bad.write(record);
      await bad.waitClosed(2000);
    } finally {
      bad.destroy();
    }
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "hello");
  });
});

test("a connection accepted while the server closes is served, not reset (a pool's workers share one accept queue)", { timeout: 20_000 }, async () => {
  const slowClose = await slowClosingRuntime(300);
  const server = await serve({ listen: "127.0.0.1:0", logger: null, runtime: slowClose, fetch: () => new Response("served late") });
  const port = (server.addresses[0] as { port: number }).port;
  const closing = server.close();
  assert.ok(slowClose.listened(), "the server listened through the runtime");
  const result = await fcgiRequest(port, { params: httpParams("/late") }, 5000);
  assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
  assert.equal(parseCgi(result.stdout).text, "served late");
  await within(closing, 3000, "close() after the late request");
});
