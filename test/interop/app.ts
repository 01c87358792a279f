// The app the interop tests serve with `fcgi serve`: a few routes that make a web server show
// what it passes on (query, forms, bodies, status, redirects, cookies) and an authorizer.
// Not a test file itself: importing it has no side effects.
import { createHash } from "node:crypto";
import type { RequestContext } from "../../src/app/types.ts";

/** The bytes /download sends: byte i is i % 251 (a prime, so records never line up with the pattern). */
export function patternBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  return bytes;
}

/** Hex SHA-256 of some bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const DOWNLOAD_CHUNK = 100_000;
// One period-aligned chunk to stream from: 251 * 400 bytes, so every slice continues the pattern.
const PERIOD_CHUNK = patternBytes(251 * 400);

function download(size: number): Response {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) {
        controller.close();
        return;
      }
      const n = Math.min(DOWNLOAD_CHUNK, size - sent, PERIOD_CHUNK.length - (sent % 251));
      const start = sent % 251;
      controller.enqueue(PERIOD_CHUNK.slice(start, start + n));
      sent += n;
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream", "content-length": String(size) } });
}

async function upload(request: Request): Promise<Response> {
  const hash = createHash("sha256");
  let bytes = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      hash.update(value);
    }
  }
  return Response.json({ bytes, sha256: hash.digest("hex") });
}

// How often the responder ran /hits: shows whether a denied request ever reached it.
let hits = 0;

/** The responder: routes by path. */
export async function respond(request: Request, context: RequestContext): Promise<Response> {
  const url = new URL(request.url);
  // /private/... is the same route behind a web server's authorizer.
  switch (url.pathname.replace(/^\/private(?=\/)/, "")) {
    case "/echo":
      return Response.json({
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        test: request.headers.get("x-test"),
        contentType: request.headers.get("content-type"),
        body: await request.text(),
        keepConn: context.keepConn,
        role: context.role,
        // The FastCGI connection (the web server's side), to tell connections apart in failures.
        fcgiPeer: `${context.socket.remoteAddress}:${context.socket.remotePort}`,
        // httpoxy: a `Proxy:` request header must never become the process's HTTP_PROXY.
        envProxy: process.env.HTTP_PROXY ?? null,
      });
    case "/form": {
      const form = await request.formData();
      const fields: Record<string, string> = {};
      for (const [name, value] of form) fields[name] = typeof value === "string" ? value : `file:${value.name}:${value.size}`;
      return Response.json(fields);
    }
    case "/json":
      return Response.json({ got: await request.json() }, { status: 201 });
    case "/upload":
      return await upload(request);
    case "/download":
      return download(Number(url.searchParams.get("bytes") ?? "0"));
    case "/status": {
      const status = Number(url.searchParams.get("code"));
      return new Response(status === 204 || status === 304 ? null : `status ${status}\n`, { status });
    }
    case "/redirect":
      return new Response(null, { status: Number(url.searchParams.get("code") ?? "302"), headers: { location: "/echo?from=redirect" } });
    case "/cookies": {
      const headers = new Headers({ "content-type": "text/plain" });
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2; HttpOnly");
      headers.append("set-cookie", "c=3, with comma; Max-Age=60");
      return new Response("three cookies\n", { headers });
    }
    case "/throw":
      throw new Error("the handler failed on purpose");
    case "/crlf":
      // A header value smuggling a second header; it must not reach the client as one.
      return new Response("crlf\n", { headers: { "x-bad": "a\r\nx-injected: yes" } });
    case "/hits":
      return Response.json({ hits: ++hits });
    case "/params":
      return Response.json(context.params.toObject());
    case "/host": {
      // Which app host answered (HOST_ID in its environment) and whom it saw connect, after holding
      // the request ?ms= (at most 5 s) so that a load keeps requests in flight on every host. The
      // begin/end lines on stderr tell a test which requests a host had in flight when it stopped.
      const n = url.searchParams.get("n");
      console.error(`host ${process.env.HOST_ID} begin ${n}`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(Number(url.searchParams.get("ms") ?? "0"), 5000)));
      console.error(`host ${process.env.HOST_ID} end ${n}`);
      return Response.json({ host: process.env.HOST_ID ?? null, peer: context.socket.remoteAddress });
    }
    case "/slow": {
      // Answers after ?ms= (at most 5 s), saying when it ran and on which FastCGI connection and
      // request id: requests in flight together on one connection show a web server multiplexing.
      const started = Date.now();
      await new Promise((resolve) => setTimeout(resolve, Math.min(Number(url.searchParams.get("ms") ?? "0"), 5000)));
      const fcgiPeer = `${context.socket.remoteAddress}:${context.socket.remotePort}`;
      return Response.json({ fcgiPeer, requestId: context.requestId, started, ended: Date.now() });
    }
  }
  return new Response("no such route\n", { status: 404 });
}

/**
 * The authorizer: lets "Bearer good-token" in, naming the user in a Variable- header for the
 * responder; anything else is answered 403 with a body the client must see.
 */
export function authorize(request: Request): Response {
  if (request.headers.get("authorization") === "Bearer good-token") {
    return new Response(null, { status: 200, headers: { "Variable-FCGI_USER": "alice" } });
  }
  return new Response("denied by the fcgi authorizer\n", { status: 403, headers: { "content-type": "text/plain", "x-denied": "yes" } });
}

/** The module `fcgi serve` loads: a responder and an authorizer. */
const app: { fetch: typeof respond; authorize: typeof authorize } = { fetch: respond, authorize };
export default app;
