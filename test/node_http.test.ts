// toNodeHandler: a fetch handler on a node:http server (on Node, and on Deno's and Bun's node:http),
// alone and with the gateway behind it: what reaches the handler, what reaches the HTTP client,
// streaming both ways with backpressure, and clients that go away.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server as HttpServer } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../src/app/serve.ts";
import type { Server } from "../src/app/types.ts";
import { gateway, type Gateway } from "../src/client/gateway.ts";
import { toNodeHandler } from "../src/runtime/node_http.ts";
import type { FetchHandler, HttpConnInfo } from "../src/runtime/types.ts";
import { formatAddress } from "../src/address.ts";
import { settle, waitFor, within } from "./_support/poll.ts";

const MiB = 1024 * 1024;
const enc = new TextEncoder();

/** A node:http server on 127.0.0.1:0 running `handler` through toNodeHandler. */
async function listen(handler: FetchHandler, errors: unknown[] = []): Promise<{ server: HttpServer; port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const server = createServer(toNodeHandler(handler, { onError: (e) => errors.push(e) }));
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    sockets,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return within(new Promise<void>((resolve) => server.close(() => resolve())), 5000, "server.close()");
    },
  };
}

/** Writes `raw` on a new connection and returns everything the server sends until it closes. */
function rawExchange(port: number, raw: string): Promise<string> {
  return within(new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (text += d));
    socket.on("error", reject);
    socket.on("close", () => resolve(text));
    socket.write(raw);
  }), 10_000, `raw ${JSON.stringify(raw.slice(0, 40))}`);
}

/** A GET with node:http, the response head given as soon as it arrives. */
function get(port: number, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<IncomingMessage> {
  return within(new Promise<IncomingMessage>((resolve, reject) => {
    const r = httpRequest({ host: "127.0.0.1", port, path, method, headers, agent: false }, resolve);
    r.on("error", reject);
    r.end();
  }), 10_000, `${method} ${path}`);
}

function readAll(message: IncomingMessage): Promise<Buffer> {
  return within(new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    message.on("data", (c: Buffer) => chunks.push(c));
    message.on("end", () => resolve(Buffer.concat(chunks)));
    message.on("error", reject);
  }), 20_000, "the response body");
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; fire(): void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => (fire = resolve));
  return { promise, fire };
}

describe("toNodeHandler", () => {
  it("gives the handler the method, the full URL, every header and the peer address", async () => {
    let seen: { method: string; url: string; headers: [string, string][]; info: HttpConnInfo } | undefined;
    const http = await listen((request, info) => {
      seen = { method: request.method, url: request.url, headers: [...request.headers], info };
      return new Response("ok");
    });
    try {
      const response = await get(http.port, "/a/b.php/c?x=1&y=%20", { "X-One": "1", Cookie: "a=b" }, "DELETE");
      assert.equal((await readAll(response)).toString(), "ok");
      assert.equal(seen!.method, "DELETE");
      assert.equal(seen!.url, `http://127.0.0.1:${http.port}/a/b.php/c?x=1&y=%20`);
      assert.ok(seen!.headers.some(([k, v]) => k === "x-one" && v === "1"));
      assert.ok(seen!.headers.some(([k, v]) => k === "cookie" && v === "a=b"));
      assert.equal(seen!.info.remoteAddr.hostname.replace(/^::ffff:/, ""), "127.0.0.1");
      assert.ok(seen!.info.remoteAddr.port > 0);
    } finally {
      await http.close();
    }
  });

  it("an HTTP/1.0 request without Host gets a URL with the address it came to", async () => {
    let url = "";
    const http = await listen((request) => {
      url = request.url;
      return new Response("ok");
    });
    try {
      const answer = await rawExchange(http.port, "GET /x?q HTTP/1.0\r\n\r\n");
      assert.match(answer, /^HTTP\/1\.[01] 200 /);
      assert.equal(url, `http://127.0.0.1:${http.port}/x?q`);
    } finally {
      await http.close();
    }
  });

  it("refuses a Host header or a target that could move the URL elsewhere, without calling the handler", async () => {
    let calls = 0;
    const http = await listen(() => {
      calls++;
      return new Response("ok");
    });
    try {
      for (const [target, host] of [["/x", "evil.test/path"], ["/x", "a@evil.test"], ["/x", "evil.test#"], ["//evil.test/x", "ok.test"], ["*", "ok.test"]] as const) {
        const answer = await rawExchange(http.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.match(answer, /^HTTP\/1\.1 400 /, `${target} with Host ${host}: ${answer.slice(0, 60)}`);
      }
      assert.equal(calls, 0);
    } finally {
      await http.close();
    }
  });

  it("sends several Set-Cookie apart, the status text, and drops hop-by-hop headers", async () => {
    const http = await listen(() => {
      const headers = new Headers({ "x-kept": "yes", connection: "close, x-kept", "keep-alive": "timeout=1", upgrade: "h2c", "transfer-encoding": "chunked" });
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2, with a comma");
      return new Response("made", { status: 201, statusText: "Made It", headers });
    });
    try {
      const response = await get(http.port, "/");
      assert.equal(response.statusCode, 201);
      assert.equal(response.statusMessage, "Made It");
      assert.deepEqual(response.headers["set-cookie"], ["a=1; Path=/", "b=2, with a comma"]);
      assert.equal(response.headers["x-kept"], "yes");
      assert.equal(response.headers["keep-alive"], undefined);
      assert.equal(response.headers["upgrade"], undefined);
      assert.equal(response.headers["transfer-encoding"], undefined);
      assert.equal(response.headers["content-length"], "4");
      assert.equal((await readAll(response)).toString(), "made");
    } finally {
      await http.close();
    }
  });

  it("a body that is one piece goes out with Content-Length; HEAD gets the head only", async () => {
    const http = await listen((request) => new Response(request.method === "HEAD" ? null : "hello", { headers: request.method === "HEAD" ? { "content-length": "5" } : {} }));
    try {
      const response = await get(http.port, "/");
      assert.equal(response.headers["content-length"], "5");
      assert.equal((await readAll(response)).toString(), "hello");
      const head = await get(http.port, "/", {}, "HEAD");
      assert.equal(head.headers["content-length"], "5");
      assert.equal((await readAll(head)).length, 0);
      const empty = await listen(() => new Response(new ReadableStream({ start: (c) => c.close() })));
      try {
        const r = await get(empty.port, "/");
        assert.equal(r.headers["content-length"], "0");
        assert.equal((await readAll(r)).length, 0);
      } finally {
        await empty.close();
      }
    } finally {
      await http.close();
    }
  });

  it("streams the response: the head and the first piece arrive before the handler makes the next", async () => {
    const got = signal();
    const http = await listen(() => new Response(new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(enc.encode("first;"));
        await within(got.promise, 10_000, "the client to get the first piece");
        controller.enqueue(enc.encode("second"));
        controller.close();
      },
    })));
    try {
      const response = await get(http.port, "/");
      assert.equal(response.headers["transfer-encoding"], "chunked");
      const first = await within(new Promise<string>((resolve) => response.once("data", (d: Buffer) => resolve(d.toString()))), 10_000, "the first piece");
      assert.equal(first, "first;");
      got.fire();
      assert.equal((await readAll(response)).toString(), "second");
    } finally {
      await http.close();
    }
  });

  it("sends the head at once when the body has nothing yet (server-sent events, long polls)", async () => {
    const headSeen = signal();
    const http = await listen(() => new Response(new ReadableStream<Uint8Array>({
      async start(controller) {
        await within(headSeen.promise, 10_000, "the client to get the head");
        controller.enqueue(enc.encode("data: 1\n\n"));
        controller.close();
      },
    }), { headers: { "content-type": "text/event-stream" } }));
    try {
      const response = await get(http.port, "/");
      assert.equal(response.headers["content-type"], "text/event-stream");
      headSeen.fire();
      assert.equal((await readAll(response)).toString(), "data: 1\n\n");
    } finally {
      await http.close();
    }
  });

  it("streams the request body: the handler reads the first piece while the client still holds the rest", async () => {
    const firstRead = signal();
    let total = "";
    const http = await listen(async (request) => {
      const reader = request.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += new TextDecoder().decode(value);
        if (total.startsWith("part one;")) firstRead.fire();
      }
      return new Response(total);
    });
    try {
      const answer = within(new Promise<string>((resolve, reject) => {
        const r = httpRequest({ host: "127.0.0.1", port: http.port, method: "POST", path: "/", agent: false, headers: { "transfer-encoding": "chunked" } }, (res) => readAll(res).then((b) => resolve(b.toString()), reject));
        r.on("error", reject);
        r.write("part one;");
        firstRead.promise.then(() => r.end("part two"));
      }), 10_000, "the streamed POST");
      assert.equal(await answer, "part one;part two");
    } finally {
      await http.close();
    }
  });

  it("does not read a request body faster than the handler consumes it (backpressure)", async () => {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const http = await listen((request) => {
      reader = request.body!.getReader();
      return new Promise<Response>(() => {}); // answers later, through the test
    });
    const size = 64 * MiB;
    const client = connect(http.port, "127.0.0.1");
    try {
      await within(new Promise((resolve) => client.once("connect", resolve)), 5000, "connect");
      client.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
      const chunk = new Uint8Array(MiB).fill(97);
      let written = 0;
      // Write until the kernel buffers and the server's reading both push back, up to the whole body.
      for (let i = 0; i < 64 && client.write(chunk); i++) written += chunk.length;
      await waitFor(() => reader !== undefined, 5000, "the handler to get the request");
      const serverSocket = [...http.sockets][0]!;
      // Without backpressure the server would keep reading all 64 MiB; with it the count stops.
      const received = await settle(() => serverSocket.bytesRead, "the bytes the server read");
      assert.ok(received < 16 * MiB, `the server read ${received} bytes of a body nobody consumed`);
      // Reading moves the rest along.
      let read = 0;
      client.on("drain", function more() {
        if (written < size) {
          written += chunk.length;
          if (client.write(chunk)) more();
        }
      });
      if (client.writableLength === 0) client.emit("drain");
      await within((async () => {
        for (;;) {
          const { done, value } = await reader!.read();
          if (done) break;
          read += value.length;
          if (read >= size) break;
        }
      })(), 30_000, "reading the whole body");
      assert.equal(read, size);
    } finally {
      client.destroy();
      await http.close();
    }
  });

  it("does not pull the response body faster than the client reads it (backpressure)", async () => {
    let pulled = 0;
    const http = await listen(() => new Response(new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024));
        if (pulled >= 256 * MiB) controller.close();
      },
    })));
    const client = connect(http.port, "127.0.0.1");
    try {
      client.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      client.pause();
      // Without backpressure the body would be pulled to its end (256 MiB); with it the count stops.
      const stopped = await settle(() => pulled, "the bytes pulled from the body");
      assert.ok(stopped < 32 * MiB, `pulled ${stopped} bytes for a client that reads nothing`);
    } finally {
      client.destroy();
      await http.close();
    }
  });

  it("a client that goes away mid-download cancels the body, aborts the request's signal, and the server keeps serving", async () => {
    const cancelled = signal();
    let aborted = false;
    const errors: unknown[] = [];
    const http = await listen((request) => {
      if (new URL(request.url).pathname === "/small") return new Response("still here");
      request.signal.addEventListener("abort", () => (aborted = true));
      return new Response(new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new Uint8Array(256 * 1024));
        },
        cancel() {
          cancelled.fire();
        },
      }));
    }, errors);
    try {
      const response = await get(http.port, "/big");
      await within(new Promise((resolve) => response.once("data", resolve)), 5000, "the first bytes");
      response.destroy();
      await within(cancelled.promise, 5000, "the body's cancel()");
      await waitFor(() => aborted, 5000, "request.signal to abort");
      assert.equal((await readAll(await get(http.port, "/small"))).toString(), "still here");
      assert.deepEqual(errors, []);
    } finally {
      await http.close();
    }
  });

  it("a handler that throws gets a 500 and a log call; the server keeps serving", async () => {
    const errors: unknown[] = [];
    const http = await listen((request) => {
      if (request.url.endsWith("/boom")) throw new Error("boom");
      return new Response("fine");
    }, errors);
    try {
      const response = await get(http.port, "/boom");
      assert.equal(response.statusCode, 500);
      await readAll(response);
      assert.equal((errors[0] as Error).message, "boom");
      assert.equal((await readAll(await get(http.port, "/ok"))).toString(), "fine");
    } finally {
      await http.close();
    }
  });

  it("a body that fails after the head went out cuts the connection: a truncated body never looks complete", async () => {
    const http = await listen(() => new Response(new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(enc.encode("part"));
        await new Promise((r) => setTimeout(r, 20));
        controller.error(new Error("the backend died"));
      },
    })));
    // node:http would otherwise close an idle kept-alive connection after 5 s, inside rawExchange's
    // 10 s: only a connection the code cuts itself may end the exchange.
    http.server.keepAliveTimeout = 60_000;
    try {
      const answer = await rawExchange(http.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.match(answer, /^HTTP\/1\.1 200 /);
      assert.ok(answer.includes("part"));
      assert.ok(!answer.endsWith("0\r\n\r\n"), `the chunked body was ended as if complete: ${JSON.stringify(answer)}`);
    } finally {
      await http.close();
    }
  });

  it("a body longer than its Content-Length cuts the connection instead of spilling into the next response", async () => {
    const http = await listen(() => new Response(new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(enc.encode("12345"));
        await new Promise((r) => setTimeout(r, 20));
        controller.enqueue(enc.encode("HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n"));
        controller.close();
      },
    }), { headers: { "content-length": "5" } }));
    // node:http would otherwise close an idle kept-alive connection after 5 s, inside rawExchange's
    // 10 s: only a connection the code cuts itself may end the exchange.
    http.server.keepAliveTimeout = 60_000;
    try {
      const answer = await rawExchange(http.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.match(answer, /^HTTP\/1\.1 200 /);
      assert.ok(!answer.includes("X-Smuggled"), JSON.stringify(answer));
    } finally {
      await http.close();
    }
  });
});

describe("toNodeHandler serving the gateway (node:http → gateway → FastCGI → app)", () => {
  let dir: string;
  let app: Server;
  let php: Gateway;
  let http: Awaited<ReturnType<typeof listen>>;
  let progress = signal();
  const streamSignals: AbortSignal[] = [];

  const ready = setup(async () => {
    dir = mkdtempSync(join(tmpdir(), "fcgi-node-http-"));
    for (const name of ["index.php", "echo.php", "stream.php", "hash.php"]) writeFileSync(join(dir, name), "<?php");
    app = await serve({
      listen: "127.0.0.1:0",
      logger: null,
      overrideGlobalObjects: false,
      fetch: async (request, context) => {
        const script = context.params.get("SCRIPT_NAME");
        if (script === "/stream.php") {
          streamSignals.push(request.signal);
          return new Response(new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(enc.encode("tick 1;"));
              await within(progress.promise, 10_000, "the HTTP client to see tick 1");
              controller.enqueue(enc.encode("tick 2"));
              controller.close();
            },
          }));
        }
        if (script === "/hash.php") {
          const hash = createHash("sha256");
          let n = 0;
          const reader = request.body!.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            hash.update(value);
            n += value.length;
          }
          return new Response(`${n} ${hash.digest("hex")}`);
        }
        return Response.json({ script, pathInfo: context.params.get("PATH_INFO") ?? null, remote: context.params.get("REMOTE_ADDR"), port: context.params.get("REMOTE_PORT") });
      },
    });
    php = gateway({ upstream: formatAddress(app.addresses[0]!), documentRoot: dir, onError: () => {} });
    http = await listen(php);
  });

  after(async () => {
    await http?.close();
    await php?.close();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("routes with PATH_INFO and passes the HTTP peer as REMOTE_ADDR/REMOTE_PORT", async () => {
    ready();
    const body = JSON.parse((await readAll(await get(http.port, "/echo.php/a/b"))).toString());
    assert.equal(body.script, "/echo.php");
    assert.equal(body.pathInfo, "/a/b");
    assert.equal(body.remote.replace(/^::ffff:/, ""), "127.0.0.1");
    assert.ok(Number(body.port) > 0);
  });

  it("streams the app's response through: the first piece arrives before the app writes the next", async () => {
    ready();
    progress = signal();
    const response = await get(http.port, "/stream.php");
    const first = await within(new Promise<string>((resolve) => response.once("data", (d: Buffer) => resolve(d.toString()))), 10_000, "tick 1");
    assert.equal(first, "tick 1;");
    progress.fire();
    assert.equal((await readAll(response)).toString(), "tick 2");
  });

  it("streams a 16 MiB upload to the app intact", async () => {
    ready();
    const body = new Uint8Array(16 * MiB);
    for (let i = 0; i < body.length; i += 4096) body[i] = (i >> 12) & 0xff;
    const answer = await within(new Promise<string>((resolve, reject) => {
      const r = httpRequest({ host: "127.0.0.1", port: http.port, method: "POST", path: "/hash.php", agent: false, headers: { "content-length": String(body.length) } }, (res) => readAll(res).then((b) => resolve(b.toString()), reject));
      r.on("error", reject);
      r.end(body);
    }), 30_000, "the upload");
    assert.equal(answer, `${body.length} ${createHash("sha256").update(body).digest("hex")}`);
  });

  it("a client that goes away mid-stream does not crash the gateway, which keeps serving", async () => {
    ready();
    progress = signal();
    const response = await get(http.port, "/stream.php");
    await within(new Promise((resolve) => response.once("data", resolve)), 10_000, "tick 1");
    response.destroy();
    // The gateway passes the loss on as ABORT_REQUEST: the app's handler hears of it and its slot is freed.
    await waitFor(() => streamSignals.at(-1)!.aborted && app.activeRequests === 0, 5000, "the app to see the abort");
    progress.fire();
    const body = JSON.parse((await readAll(await get(http.port, "/echo.php"))).toString());
    assert.equal(body.script, "/echo.php");
  });
});
