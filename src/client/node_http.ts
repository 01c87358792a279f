/**
 * `toNodeHandler`: runs a Web-standard fetch handler (the gateway, a Hono app, …) on a
 * `node:http` server, as `Deno.serve` and `Bun.serve` run it natively.
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";

/** What the handler learns about the connection, in the shape `Deno.serve` gives it. */
export interface HttpConnInfo {
  /** The client's address and port. */
  remoteAddr: { hostname: string; port: number };
}

/** A fetch handler as `Deno.serve` takes it. */
export type FetchHandler = (request: Request, info: HttpConnInfo) => Response | Promise<Response>;

/** A `node:http` request listener. */
export type NodeRequestListener = (request: IncomingMessage, response: ServerResponse) => void;

/** Options of {@link toNodeHandler}. */
export interface NodeHandlerOptions {
  /** Where a handler's failure is reported (default: console.error). The client gets a 500. */
  onError?: (error: unknown) => void;
}

/** A Host header that cannot change what the URL means: a name or address, and a port. */
const SAFE_HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * A `node:http` request listener that builds a Request (the body streamed with backpressure,
 * `signal` aborted when the client goes away), calls `handler`, and writes its Response back,
 * streamed with backpressure, several Set-Cookie kept apart.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { gateway, toNodeHandler } from "fcgi";
 *
 * const php = gateway({ upstream: "unix:/run/php/php8.2-fpm.sock", documentRoot: "/var/www/html" });
 * createServer(toNodeHandler(php)).listen(8080, "127.0.0.1");
 * ```
 */
export function toNodeHandler(handler: FetchHandler, options: NodeHandlerOptions = {}): NodeRequestListener {
  const onError = options.onError ?? ((error: unknown) => console.error("fcgi: handler failed:", error));
  return (req, res) => {
    serveNode(handler, req, res).catch((error) => {
      onError(error);
      if (!res.headersSent) plain(res, 500, "Internal Server Error");
      else res.destroy();
    });
  };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) + 1 });
  res.end(text + "\n");
}

async function serveNode(handler: FetchHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = req.url ?? "/";
  const host = req.headers.host ?? req.socket.localAddress ?? "localhost";
  // Only origin-form targets, and a Host that is only a host: "//evil/x" or "a@b" must not move the URL.
  if (!target.startsWith("/") || target.startsWith("//") || !SAFE_HOST.test(host)) return plain(res, 400, "Bad Request");
  const scheme = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  const headers = new Headers();
  const raw = req.rawHeaders;
  try {
    for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  } catch {
    return plain(res, 400, "Bad Request");
  }
  const controller = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) controller.abort(new Error("the HTTP client went away"));
  });
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const init: RequestInit & { duplex?: "half" } = { method: req.method, headers, signal: controller.signal };
  if (hasBody) {
    init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
    init.duplex = "half";
  }
  const request = new Request(`${scheme}://${host}${target}`, init);
  const response = await handler(request, {
    remoteAddr: { hostname: req.socket.remoteAddress ?? "", port: req.socket.remotePort ?? 0 },
  });
  await writeResponse(response, res, controller.signal);
}

async function writeResponse(response: Response, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const head: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") head[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) head["set-cookie"] = cookies;
  if (response.body === null || res.req.method === "HEAD") {
    await response.body?.cancel();
    res.writeHead(response.status, response.statusText || undefined, head);
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const stop = (): void => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  try {
    // A body that is one piece (most dynamic pages) goes out with the head in one write, with a
    // Content-Length instead of chunked framing: half the writes, and the cheapest path in node:http.
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (signal.aborted) return;
    if (second.done) {
      const body = first.done ? undefined : first.value;
      if (head["content-length"] === undefined && head["transfer-encoding"] === undefined) head["content-length"] = String(body?.length ?? 0);
      res.writeHead(response.status, response.statusText || undefined, head);
      res.end(body);
      return;
    }
    res.writeHead(response.status, response.statusText || undefined, head);
    res.write(first.value);
    if (!res.write(second.value)) await drained(res);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (signal.aborted) return;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (error) {
    // The body failed: before the head went out that is a 502-style failure for the caller; after
    // it, a truncated body must not look complete.
    if (signal.aborted) return;
    if (!res.headersSent) throw error;
    res.destroy(error instanceof Error ? error : new Error(String(error)));
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
