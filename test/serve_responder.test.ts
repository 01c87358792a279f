// serve() as a Responder, spoken to record by record over a real loopback socket.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import type { Handler, RequestContext } from "../src/app/types.ts";
import { RecordType, Role } from "../src/protocol/constants.ts";
import { captureLogger, deferred, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

test("a GET gets its Status line, headers and body", async () => {
  await withServer({ fetch: () => new Response("hello", { headers: { "x-app": "1" } }) }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/") });
    assert.equal(result.protocolStatus, 0);
    assert.equal(result.appStatus, 0);
    const response = parseCgi(result.stdout);
    assert.equal(response.status, 200);
    assert.equal(response.header("x-app"), "1");
    assert.equal(response.header("content-type"), "text/plain;charset=UTF-8");
    assert.equal(response.header("content-length"), "5");
    assert.equal(response.text, "hello");
  });
});

test("the Request carries method, URL, headers and body from the params and STDIN", async () => {
  let seen: { method: string; url: string; lang: string | null; type: string | null; length: string | null; body: string; isRequest: boolean } | undefined;
  const fetch: Handler = async (request) => {
    seen = {
      method: request.method,
      url: request.url,
      lang: request.headers.get("accept-language"),
      type: request.headers.get("content-type"),
      length: request.headers.get("content-length"),
      body: await request.text(),
      isRequest: request instanceof Request,
    };
    return new Response(null, { status: 204 });
  };
  await withServer({ fetch }, async (port) => {
    const result = await fcgiRequest(port, {
      params: httpParams("/caf\xe9/x?q=1", { REQUEST_METHOD: "POST", HTTP_ACCEPT_LANGUAGE: "de", CONTENT_TYPE: "text/plain", CONTENT_LENGTH: "9", HTTPS: "on" }),
      stdin: "body text",
    });
    assert.equal(parseCgi(result.stdout).status, 204);
    assert.deepEqual(seen, {
      method: "POST",
      url: "https://example.test/caf%E9/x?q=1",
      lang: "de",
      type: "text/plain",
      length: "9",
      body: "body text",
      isRequest: true,
    });
  });
});

test("the context carries params, role, requestId and the addresses", async () => {
  let context: RequestContext | undefined;
  await withServer({ fetch: (_r, c) => ((context = c), new Response("ok")) }, async (port) => {
    await fcgiRequest(port, { params: httpParams("/", { REMOTE_ADDR: "203.0.113.7", REMOTE_PORT: "4444", SERVER_ADDR: "192.0.2.1", SERVER_PORT: "8080", CUSTOM: "v" }) });
    assert.ok(context);
    assert.equal(context.role, Role.RESPONDER);
    assert.equal(context.requestId, 1);
    assert.equal(context.keepConn, false);
    assert.equal(context.params.get("CUSTOM"), "v");
    assert.equal(context.remoteAddress, "203.0.113.7");
    assert.equal(context.remotePort, 4444);
    assert.equal(context.serverAddress, "192.0.2.1");
    assert.equal(context.serverPort, 8080);
    assert.equal(context.socket.remoteAddress.replace(/^::ffff:/, ""), "127.0.0.1");
    assert.equal(context.socket.localPort, port);
    assert.equal(context.data, null);
  });
});

test("a POST without CONTENT_LENGTH still gets its body; with an empty STDIN it has none", async () => {
  const bodies: (string | null)[] = [];
  const fetch: Handler = async (request) => {
    bodies.push(request.body === null ? null : await request.text());
    return new Response("ok");
  };
  await withServer({ fetch }, async (port) => {
    const params = httpParams("/", { REQUEST_METHOD: "POST" });
    await fcgiRequest(port, { params, stdin: "chunked" });
    await fcgiRequest(port, { params });
    await fcgiRequest(port, { params: { ...params, CONTENT_LENGTH: "0" } });
    assert.deepEqual(bodies, ["chunked", null, null]);
  });
});

test("GET and HEAD have no body even if STDIN carries bytes, and HEAD gets no response body", async () => {
  const seen: (ReadableStream | null)[] = [];
  await withServer({ fetch: (request) => (seen.push(request.body), new Response("twelve bytes")) }, async (port) => {
    const get = parseCgi((await fcgiRequest(port, { params: httpParams("/"), stdin: "ignored" })).stdout);
    assert.equal(get.text, "twelve bytes");
    const head = parseCgi((await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "HEAD" }) })).stdout);
    assert.equal(head.text, "");
    assert.equal(head.header("content-length"), "12");
    assert.deepEqual(seen, [null, null]);
  });
});

test("several Set-Cookie headers each get their own line", async () => {
  const fetch = () => {
    const headers = new Headers();
    headers.append("set-cookie", "a=1; Path=/");
    headers.append("set-cookie", "b=2; HttpOnly");
    return new Response("ok", { headers });
  };
  await withServer({ fetch }, async (port) => {
    const response = parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout);
    assert.deepEqual(response.headers.filter(([n]) => n.toLowerCase() === "set-cookie").map(([, v]) => v), ["a=1; Path=/", "b=2; HttpOnly"]);
  });
});

test("status codes and redirects go out as Status lines, with Location", async () => {
  const fetch: Handler = (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/missing") return new Response("nope", { status: 404 });
    if (path === "/teapot") return new Response("short and stout", { status: 418, statusText: "Teapot" });
    if (path === "/moved") return Response.redirect("https://example.test/new", 301);
    return new Response(null, { status: 302, headers: { location: "/there" } });
  };
  await withServer({ fetch }, async (port) => {
    const missing = parseCgi((await fcgiRequest(port, { params: httpParams("/missing") })).stdout);
    assert.equal(missing.status, 404);
    assert.equal(missing.text, "nope");
    const teapot = await fcgiRequest(port, { params: httpParams("/teapot") });
    assert.match(decoder.decode(teapot.stdout), /^Status: 418 Teapot\r\n/);
    const moved = parseCgi((await fcgiRequest(port, { params: httpParams("/moved") })).stdout);
    assert.equal(moved.status, 301);
    assert.equal(moved.header("location"), "https://example.test/new");
    const found = parseCgi((await fcgiRequest(port, { params: httpParams("/found") })).stdout);
    assert.equal(found.status, 302);
    assert.equal(found.header("location"), "/there");
  });
});

test("a response larger than one record is cut into several STDOUT records, none over 65535 bytes", async () => {
  const big = new Uint8Array(300_000).map((_, i) => i % 251);
  await withServer({ fetch: () => new Response(big) }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/") });
    const stdout = result.records.filter((r) => r.type === RecordType.STDOUT);
    assert.ok(stdout.length >= 5);
    assert.ok(stdout.every((r) => r.content.length <= 65535));
    assert.equal(stdout.at(-1)!.content.length, 0, "the stream ends with an empty STDOUT record");
    assert.deepEqual(parseCgi(result.stdout).body, big);
  });
});

test("request and response bodies stream: output for the first input arrives before the rest is sent", async () => {
  const fetch: Handler = (request) => {
    const upper = new TransformStream<Uint8Array, Uint8Array>({
      transform: (chunk, controller) => controller.enqueue(encoder.encode(decoder.decode(chunk).toUpperCase())),
    });
    return new Response(request.body!.pipeThrough(upper));
  };
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "6" }), openStdin: true });
      client.stdin(1, "abc");
      let seen = "";
      while (!seen.includes("ABC")) {
        const record = await client.nextFor(1);
        assert.equal(record.type, RecordType.STDOUT);
        seen += decoder.decode(record.content);
      }
      client.stdin(1, "def");
      client.stdinEnd(1);
      const rest = await client.response(1);
      assert.equal(parseCgi(encoder.encode(seen + decoder.decode(rest.stdout))).text, "ABCDEF");
    } finally {
      client.destroy();
    }
  });
});

test("a handler that throws or rejects gives a 500 with the message on STDERR, and the server goes on", async () => {
  const { lines, logger } = captureLogger();
  const fetch: Handler = (request) => {
    if (request.url.endsWith("/sync")) throw new Error("sync boom");
    if (request.url.endsWith("/async")) return Promise.reject(new Error("async boom"));
    if (request.url.endsWith("/nothing")) return undefined as unknown as Response;
    return new Response("fine");
  };
  await withServer({ fetch, logger }, async (port) => {
    for (const [path, message] of [["/sync", "sync boom"], ["/async", "async boom"], ["/nothing", "did not return a Response"]]) {
      const result = await fcgiRequest(port, { params: httpParams(path) });
      assert.equal(parseCgi(result.stdout).status, 500, path);
      assert.match(result.stderr, new RegExp(message), path);
      assert.notEqual(result.appStatus, 0);
      assert.ok(result.records.some((r) => r.type === RecordType.STDERR && r.content.length === 0), "STDERR is closed");
    }
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ok") })).stdout).text, "fine");
    assert.ok(lines.some((l) => l.startsWith("error:") && l.includes("sync boom")));
  });
});

test("a header value with CR or LF never reaches the web server: the request gets a 500", async () => {
  const fetch: Handler = (request) => {
    const url = new URL(request.url);
    const value = url.searchParams.get("v")!;
    return new Response("x", { headers: [["x-echo", value]] });
  };
  await withServer({ fetch }, async (port) => {
    for (const evil of ["a\r\nSet-Cookie: owned=1", "a\nb", "a\rb", "a\0b"]) {
      const result = await fcgiRequest(port, { params: httpParams(`/?v=${encodeURIComponent(evil)}`) });
      const text = decoder.decode(result.stdout);
      assert.doesNotMatch(text, /owned|x-echo/i);
      assert.equal(parseCgi(result.stdout).status, 500);
    }
  });
});

test("context.stderr writes STDERR records, as text, bytes or a stream", async () => {
  const fetch: Handler = async (_request, context) => {
    context.stderr.write("one ");
    context.stderr.write(encoder.encode("two "));
    const writer = context.stderr.writable.getWriter();
    await writer.write("three");
    writer.releaseLock();
    return new Response("ok");
  };
  await withServer({ fetch }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/") });
    assert.equal(result.stderr, "one two three");
    assert.equal(parseCgi(result.stdout).text, "ok");
  });
});

test("with FCGI_KEEP_CONN the connection serves the next request; without it, it is closed after END_REQUEST", async () => {
  let n = 0;
  await withServer({ fetch: () => new Response(String(++n)) }, async (port) => {
    const kept = await RecordClient.connect(port);
    try {
      for (const id of [1, 2, 1]) {
        kept.send(id, { params: httpParams("/"), keepConn: true });
        const result = await kept.response(id);
        assert.equal(result.protocolStatus, 0);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(kept.closed, false);
    } finally {
      kept.destroy();
    }
    const once = await RecordClient.connect(port);
    try {
      once.send(1, { params: httpParams("/") });
      await once.response(1);
      await once.waitClosed(2000);
    } finally {
      once.destroy();
    }
    assert.equal(n, 4);
  });
});

test("httpoxy: no param is ever written to process.env, during the request or after; a Proxy header stays a header", async () => {
  const marker = `fcgi-httpoxy-${Math.random().toString(36).slice(2)}`;
  // Sorted: Deno does not keep process.env's key order from one read to the next.
  const snapshot = () => Object.entries(process.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const envBefore = snapshot();
  const leaked = () => Object.entries(process.env).filter(([name, value]) => value?.includes(marker) || name.includes("FCGI_TEST_PARAM"));
  let header: string | null = null;
  let duringRequest: Array<[string, string | undefined]> = [];
  await withServer({ fetch: (request) => ((header = request.headers.get("proxy")), (duringRequest = leaked()), new Response("ok")) }, async (port) => {
    await fcgiRequest(port, { params: httpParams("/", { HTTP_PROXY: `http://${marker}:8080`, FCGI_TEST_PARAM: marker }) });
  });
  assert.equal(header, `http://${marker}:8080`, "the handler saw the request (and the Proxy header as a header)");
  assert.deepEqual(duringRequest, [], "params were in process.env while the handler ran");
  assert.deepEqual(leaked(), [], "params were left in process.env");
  assert.deepEqual(snapshot(), envBefore, "process.env changed");
});

test("with overrideGlobalObjects false, handlers get real Request objects and answers still go out", async () => {
  let constructorName = "";
  const fetch: Handler = async (request) => {
    constructorName = Object.getPrototypeOf(request) === Request.prototype || request.constructor.name === "Request" ? "Request" : request.constructor.name;
    return new Response(`${request.method} ${await request.text()}`);
  };
  await withServer({ fetch, overrideGlobalObjects: false }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "2" }), stdin: "hi" });
    assert.equal(parseCgi(result.stdout).text, "POST hi");
    assert.equal(constructorName, "Request");
  });
});

test("a missing handler role is refused with UNKNOWN_ROLE", async () => {
  await withServer({ authorize: () => new Response(null) }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/") });
    assert.equal(result.protocolStatus, 3);
  });
});

test("a handler answering slowly does not hold up other connections", async () => {
  const slow = deferred();
  const fetch: Handler = async (request) => {
    if (request.url.endsWith("/slow")) await slow.promise;
    return new Response("done");
  };
  await withServer({ fetch }, async (port) => {
    const pending = fcgiRequest(port, { params: httpParams("/slow") }, 5000);
    const fast = await fcgiRequest(port, { params: httpParams("/fast") });
    assert.equal(parseCgi(fast.stdout).text, "done");
    slow.resolve();
    assert.equal(parseCgi((await pending).stdout).text, "done");
  });
});

test("a proxying handler can pass its request on: fetch(request) and new Request(url, request) keep method, headers and body", async () => {
  const { createServer } = await import("node:http");
  const upstream = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => res.end(`${req.method} ${req.url} ${req.headers["x-trace"]} ${body}`));
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamPort = (upstream.address() as { port: number }).port;
  const fetchHandler: Handler = async (request) => {
    if (request.url.includes("/rewrite")) {
      const target = new URL(request.url);
      target.pathname = "/rewritten";
      return await fetch(new Request(target, request));
    }
    return await fetch(request);
  };
  try {
    await withServer({ fetch: fetchHandler }, async (port) => {
      const params = (uri: string) => httpParams(uri, { REQUEST_METHOD: "POST", CONTENT_LENGTH: "7", HTTP_HOST: `127.0.0.1:${upstreamPort}`, HTTP_X_TRACE: "t1" });
      const direct = await fcgiRequest(port, { params: params("/direct?a=1"), stdin: "payload" });
      assert.equal(parseCgi(direct.stdout).text, "POST /direct?a=1 t1 payload");
      const rewritten = await fcgiRequest(port, { params: params("/rewrite"), stdin: "payload" });
      assert.equal(parseCgi(rewritten.stdout).text, "POST /rewritten t1 payload");
    });
  } finally {
    await new Promise((resolve) => upstream.close(resolve));
  }
});

test("STDIN beyond CONTENT_LENGTH is not body, and a STDIN shorter than CONTENT_LENGTH fails the body read", async () => {
  const fetch: Handler = async (request) => {
    try {
      return new Response(`body: ${await request.text()}`);
    } catch (error) {
      return new Response(`failed: ${(error as Error).message}`, { status: 400 });
    }
  };
  await withServer({ fetch }, async (port) => {
    const long = await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "5" }), stdin: "12345EXTRA" });
    assert.equal(parseCgi(long.stdout).text, "body: 12345");
    const short = parseCgi((await fcgiRequest(port, { params: httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "50" }), stdin: "only this" })).stdout);
    assert.equal(short.status, 400);
    assert.match(short.text, /STDIN ended after 9 of the 50 bytes/);
  });
});
