// fcgi/node without a web server: createServer() driven by the raw-record client, checking what a
// node:http listener sees (req), what its res writes as CGI output, the Authorizer role, the
// request ended by ABORT_REQUEST, and write()'s backpressure against a peer that does not read.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { createServer, type FastCGIServer, FastCGIIncomingMessage, requestContext } from "../node.ts";
import { Role } from "../src/protocol/constants.ts";
import { captureLogger, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { KERNEL_BUFFERS, waitFor, within } from "./_support/poll.ts";

const MiB = 1024 * 1024;

/** Listens on a free loopback port, runs `body`, closes. */
async function withNodeServer(server: FastCGIServer, body: (port: number) => Promise<void>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  try {
    const address = server.address();
    assert.ok(address !== null && typeof address === "object", "a TCP address");
    await body(address.port);
  } finally {
    await within(new Promise<void>((resolve) => server.close(() => resolve())), 10_000, "server.close()");
  }
}

test("a listener sees the request as node:http shows it: method, url, headers, version, client address, https", async () => {
  let seen: Record<string, unknown> | undefined;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen = {
      method: req.method,
      url: req.url,
      host: req.headers.host,
      accept: req.headers["accept-language"],
      type: req.headers["content-type"],
      raw: req.rawHeaders,
      version: [req.httpVersion, req.httpVersionMajor, req.httpVersionMinor],
      remote: [req.socket.remoteAddress, req.socket.remotePort],
      encrypted: (req.socket as unknown as { encrypted: boolean }).encrypted,
      script: requestContext(req)?.params.get("SCRIPT_NAME"),
      pathInfo: (req as unknown as FastCGIIncomingMessage).fastcgi.params.get("PATH_INFO"),
      role: requestContext(req)?.role,
    };
    res.end("ok");
  });
  await withNodeServer(server, async (port) => {
    const result = await fcgiRequest(port, {
      params: httpParams("/app.cgi/extra?q=1", {
        SCRIPT_NAME: "/app.cgi", PATH_INFO: "/extra", HTTP_ACCEPT_LANGUAGE: "fr", CONTENT_TYPE: "", CONTENT_LENGTH: "",
        SERVER_PROTOCOL: "HTTP/2.0", REMOTE_ADDR: "203.0.113.7", REMOTE_PORT: "4242", HTTPS: "on",
      }),
    });
    assert.equal(parseCgi(result.stdout).text, "ok");
  });
  assert.deepEqual(seen, {
    method: "GET",
    url: "/app.cgi/extra?q=1",
    host: "example.test",
    accept: "fr",
    type: undefined,
    raw: ["host", "example.test", "accept-language", "fr"],
    version: ["2.0", 2, 0],
    remote: ["203.0.113.7", 4242],
    encrypted: true,
    script: "/app.cgi",
    pathInfo: "/extra",
    role: Role.RESPONDER,
  });
});

test("requestContext still finds the FastCGI context after a framework swaps req's prototype, as Express does", async () => {
  let seen: unknown[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    Object.setPrototypeOf(req, Object.create(http.IncomingMessage.prototype));
    seen = [req instanceof FastCGIIncomingMessage, requestContext(req)?.params.get("SCRIPT_NAME"), requestContext(req)?.role];
    res.end("ok");
  });
  await withNodeServer(server, async (port) => {
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/app.cgi", { SCRIPT_NAME: "/app.cgi" }) })).stdout).text, "ok");
  });
  assert.deepEqual(seen, [false, "/app.cgi", Role.RESPONDER]);
  assert.equal(requestContext(Object.create(http.IncomingMessage.prototype) as object), undefined, "a node:http request has none");
});

test("a response's status, headers, several set-cookie lines and body go out as CGI output", async () => {
  const server = createServer((_req, res) => {
    res.statusCode = 201;
    res.setHeader("Set-Cookie", ["a=1; Path=/", "b=2; HttpOnly"]);
    res.setHeader("X-Count", 3);
    res.setHeader("X-Gone", "soon");
    res.removeHeader("x-gone");
    assert.deepEqual(res.getHeaderNames(), ["set-cookie", "x-count"]);
    assert.equal(res.getHeader("x-count"), 3);
    assert.equal(res.hasHeader("X-COUNT"), true);
    assert.equal(res.headersSent, false);
    res.end("héllo", () => res.setHeader.length);
    assert.equal(res.headersSent, true);
    assert.throws(() => res.setHeader("x-late", "1"), { code: "ERR_HTTP_HEADERS_SENT" });
  });
  await withNodeServer(server, async (port) => {
    const response = parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout);
    assert.equal(response.status, 201);
    assert.deepEqual(response.headers.filter(([name]) => name === "Set-Cookie").map(([, value]) => value), ["a=1; Path=/", "b=2; HttpOnly"]);
    assert.equal(response.header("x-count"), "3");
    assert.equal(response.header("x-gone"), undefined);
    assert.equal(response.header("content-length"), String(new TextEncoder().encode("héllo").length));
    assert.match(response.header("date") ?? "", /GMT$/);
    assert.equal(response.text, "héllo");
  });
});

test("writeHead takes a status message and headers as an object or a flat list; the body streams in pieces", async () => {
  const server = createServer((req, res) => {
    if (req.url === "/list") res.writeHead(202, ["X-A", "1", "X-A", "2"]);
    else res.writeHead(203, "Fine", { "x-b": "b", "content-type": "text/plain" });
    res.write("one,");
    setTimeout(() => res.end("two"), 10);
  });
  await withNodeServer(server, async (port) => {
    const list = parseCgi((await fcgiRequest(port, { params: httpParams("/list") })).stdout);
    assert.equal(list.status, 202);
    assert.deepEqual(list.headers.filter(([name]) => name === "X-A"), [["X-A", "1"], ["X-A", "2"]]);
    assert.equal(list.text, "one,two");
    const object = await fcgiRequest(port, { params: httpParams("/object") });
    const response = parseCgi(object.stdout);
    assert.equal(response.status, 203);
    assert.equal(response.header("x-b"), "b");
    assert.equal(response.header("content-length"), undefined, "a streamed body has no length, as in node:http");
    assert.equal(response.text, "one,two");
    assert.ok(object.records.filter((r) => r.type === 6 && r.content.length > 0).length >= 2, "the head and the pieces went out as they were written");
  });
});

test("a request body is a Readable stream; a listener's throw before the head is a 500", async () => {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    assert.equal(req.complete, true);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ length: Buffer.concat(chunks).length, type: req.headers["content-type"] }));
  });
  const logger = captureLogger();
  server.on("error", () => {});
  await withNodeServer(server, async (port) => {
    const body = "x".repeat(200_000);
    const result = await fcgiRequest(port, { params: httpParams("/upload", { REQUEST_METHOD: "POST", CONTENT_TYPE: "text/plain", CONTENT_LENGTH: String(body.length) }), stdin: body });
    assert.deepEqual(JSON.parse(parseCgi(result.stdout).text), { length: 200_000, type: "text/plain" });
    const thrown = createServer({ logger: logger.logger }, () => {
      throw new Error("boom");
    });
    await withNodeServer(thrown, async (port2) => {
      const failed = await fcgiRequest(port2, { params: httpParams("/throw") });
      assert.equal(parseCgi(failed.stdout).status, 500);
      assert.equal(failed.appStatus, 1);
    });
  });
  assert.ok(logger.lines.some((line) => line.includes("boom")), logger.lines.join("\n"));
});

test("the Authorizer role reaches the same listener: 200 with Variable-* allows, 401 denies", async () => {
  const server = createServer((req, res) => {
    const context = requestContext(req)!;
    assert.equal(context.role, Role.AUTHORIZER);
    if (req.headers.authorization === "Bearer good") {
      res.setHeader("Variable-USER", "alice");
      res.end();
    } else {
      res.statusCode = 401;
      res.setHeader("WWW-Authenticate", "Bearer");
      res.end("go away");
    }
  });
  await withNodeServer(server, async (port) => {
    const allowed = parseCgi((await fcgiRequest(port, { role: Role.AUTHORIZER, params: httpParams("/private", { HTTP_AUTHORIZATION: "Bearer good" }) })).stdout);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.header("Variable-USER"), "alice");
    const denied = parseCgi((await fcgiRequest(port, { role: Role.AUTHORIZER, params: httpParams("/private") })).stdout);
    assert.equal(denied.status, 401);
    assert.equal(denied.text, "go away");
  });
});

test("ABORT_REQUEST ends the listener's request: req 'aborted' and 'close', res 'close' without 'finish'", async () => {
  const events: string[] = [];
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const server = createServer((req, res) => {
    req.on("aborted", () => events.push("req aborted"));
    req.on("close", () => events.push("req close"));
    res.on("finish", () => events.push("res finish"));
    res.on("close", () => events.push(`res close, writableEnded ${res.writableEnded}`));
    req.socket.on("close", () => events.push("socket close"));
    res.write("partial");
    started();
  });
  await withNodeServer(server, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/slow", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "10" }), openStdin: true });
      await within(running, 5000, "the listener");
      client.abort(1);
      const result = await client.response(1);
      assert.equal(result.protocolStatus, 0);
      await waitFor(() => events.includes("socket close"), 5000, "the socket's close");
    } finally {
      client.destroy();
    }
  });
  assert.equal(events[0], "req aborted");
  assert.deepEqual([...events].sort(), ["req aborted", "req close", "res close, writableEnded false", "socket close"]);
});

test("a response's finish and close come in node:http's order, and req closes with it", async () => {
  const events: string[] = [];
  const server = createServer((req, res) => {
    req.on("close", () => events.push("req close"));
    res.on("finish", () => events.push("res finish"));
    res.on("close", () => events.push("res close"));
    res.end("done", () => events.push("end callback"));
  });
  await withNodeServer(server, async (port) => {
    await fcgiRequest(port, { params: httpParams("/") });
    await waitFor(() => events.length >= 4, 5000, "the events");
  });
  assert.deepEqual(events, ["res finish", "end callback", "res close", "req close"]);
});

test("write() returns false while the web server does not read, and 'drain' follows its reading", async () => {
  const chunk = Buffer.alloc(64 * 1024, "z");
  const total = 48 * MiB;
  let accepted = 0;
  let falses = 0;
  let acceptedWhilePaused = 0;
  let paused = true;
  const server = createServer({ maxUnsentBytes: 1 * MiB }, async (_req, res) => {
    while (accepted < total) {
      accepted += chunk.length;
      if (!res.write(chunk)) {
        falses++;
        await new Promise((resolve) => res.once("drain", resolve));
      }
      if (paused) acceptedWhilePaused = accepted;
    }
    res.end();
  });
  await withNodeServer(server, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.socket.pause();
      client.send(1, { params: httpParams("/big") });
      // Wait until the writer is stuck: `accepted` stops moving.
      let last = -1;
      await waitFor(() => {
        const still = accepted === last;
        last = accepted;
        return still && accepted > 0;
      }, 10_000, "the writer to stop");
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(accepted, last, "nothing more was accepted while the peer did not read");
      assert.ok(falses > 0, "write() said false");
      const bound = KERNEL_BUFFERS + 1 * MiB + 4 * chunk.length + 2 * 64 * 1024;
      assert.ok(acceptedWhilePaused < Math.min(total, bound), `accepted ${acceptedWhilePaused} bytes while the peer did not read (bound ${bound})`);
      paused = false;
      client.socket.resume();
      const result = await client.response(1, 60_000);
      const response = parseCgi(result.stdout);
      assert.equal(response.body.length, total);
      assert.equal(result.appStatus, 0);
    } finally {
      client.destroy();
    }
  });
});

test("a write loop that ignores backpressure is cut at maxResponseBufferBytes instead of growing memory", { timeout: 60_000 }, async () => {
  const chunk = Buffer.alloc(256 * 1024, "y");
  const logger = captureLogger();
  let peakBuffered = 0;
  let writes = 0;
  let closed: { writableEnded: boolean } | undefined;
  const rssBefore = process.memoryUsage().rss;
  const server = createServer({ maxResponseBufferBytes: 4 * MiB, logger: logger.logger }, (_req, res) => {
    res.on("close", () => (closed = { writableEnded: res.writableEnded }));
    // At most 1 GiB if nothing stopped it: far past any bound below.
    const loop = (): void => {
      if (closed || writes >= 4096) return;
      writes++;
      res.write(chunk);
      peakBuffered = Math.max(peakBuffered, res.writableLength);
      setImmediate(loop);
    };
    loop();
  });
  await withNodeServer(server, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.socket.pause();
      client.send(1, { params: httpParams("/flood") });
      await waitFor(() => closed !== undefined || writes >= 4096, 50_000, "the response to be cut");
      assert.deepEqual(closed, { writableEnded: false });
      assert.ok(peakBuffered <= 4 * MiB + 2 * chunk.length, `peak buffered ${peakBuffered}`);
      assert.ok(writes < 4096, `the loop wrote ${writes} chunks`);
      const grown = (process.memoryUsage().rss - rssBefore) / MiB;
      assert.ok(grown < 128, `RSS grew by ${grown.toFixed(1)} MiB`);
      client.socket.resume();
      const result = await client.response(1, 30_000);
      assert.equal(result.appStatus, 1, "the body was cut short");
    } finally {
      client.destroy();
    }
  });
  assert.ok(logger.lines.some((line) => line.includes("maxResponseBufferBytes")), logger.lines.join("\n"));
});

test("listen() takes a Unix socket path and { fd }-less options; address() and close() follow node:http", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "fcgi-node-"));
  try {
    const path = join(dir, "app.sock");
    const server = createServer((_req, res) => res.end("unix"));
    assert.equal(server.address(), null);
    await new Promise<void>((resolve) => server.listen({ path }, resolve));
    assert.equal(server.listening, true);
    assert.equal(server.address(), path);
    const result = await fcgiRequest({ path }, { params: httpParams("/") });
    assert.equal(parseCgi(result.stdout).text, "unix");
    const closed = await new Promise<Error | undefined>((resolve) => server.close(resolve));
    assert.equal(closed, undefined);
    assert.equal(server.listening, false);
    const again = await new Promise<Error | undefined>((resolve) => server.close(resolve));
    assert.equal((again as Error & { code?: string }).code, "ERR_SERVER_NOT_RUNNING");
    const busy = createServer(() => {});
    const error = await new Promise<Error>((resolve) => busy.once("error", resolve).listen(Number.NaN));
    assert.equal((error as Error & { code?: string }).code, "ERR_SOCKET_BAD_PORT");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
