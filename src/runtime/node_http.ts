/**
 * `toNodeHandler`: runs a Web-standard fetch handler (the gateway, a Hono app, …) on a
 * `node:http` server, as `Deno.serve` and `Bun.serve` run it natively. The Node adapter's HTTP
 * server runs on it, and it is public for those who bring their own `node:http` server.
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { clearImmediate, setImmediate } from "node:timers";
import type { FetchHandler } from "./types.ts";

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

/** The address a Host-less (HTTP/1.0) request came to, as a URL authority. */
function localHost(req: IncomingMessage): string {
  const address = (req.socket.localAddress ?? "localhost").replace(/^::ffff:(?=\d+\.)/, "");
  const port = req.socket.localPort;
  const name = address.includes(":") ? `[${address}]` : address;
  return port ? `${name}:${port}` : name;
}

async function serveNode(handler: FetchHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = req.url ?? "/";
  const host = req.headers.host ?? localHost(req);
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
    requestTarget: target,
  });
  await writeResponse(response, res, controller.signal);
}

/** Headers that describe one hop, not the message: node:http writes its own. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

/** What {@link promptly} gives when the promise did not settle within the current turn. */
const LATE = Symbol("late");

/** Settles as `promise` does if it settles before the event loop's next turn, else with LATE. */
function promptly<T>(promise: Promise<T>): Promise<T | typeof LATE> {
  return new Promise((resolve, reject) => {
    const timer = setImmediate(() => resolve(LATE));
    promise.then(
      (value) => {
        clearImmediate(timer);
        resolve(value);
      },
      (error) => {
        clearImmediate(timer);
        reject(error);
      },
    );
  });
}

async function writeResponse(response: Response, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const head: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name) && name !== "set-cookie") head[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) head["set-cookie"] = cookies;
  // A handler may end the connection after its response; node:http honours its own header.
  if (/(?:^|,)\s*close\s*(?:,|$)/i.test(response.headers.get("connection") ?? "")) head["connection"] = "close";
  const statusText = response.statusText || undefined;
  if (response.body === null || res.req.method === "HEAD") {
    await response.body?.cancel();
    res.writeHead(response.status, statusText, head);
    res.end();
    return;
  }
  const declared = head["content-length"] === undefined ? -1 : Number(head["content-length"]);
  const reader = response.body.getReader();
  const stop = (): void => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  let sent = 0;
  // Bytes past the Content-Length would be read by the client as the next response.
  const send = (chunk: Uint8Array): boolean => {
    sent += chunk.length;
    if (declared >= 0 && sent > declared) throw new Error(`the response body runs past its Content-Length (${declared})`);
    return res.write(chunk);
  };
  try {
    // A body complete at once (most dynamic pages) goes out with the head in one write and a
    // Content-Length: half the writes, no chunked framing. A slower body streams as it comes, the
    // head first, so an event stream or a long poll is not held back.
    let read = reader.read();
    const first = await promptly(read);
    let chunk: Uint8Array | undefined;
    if (first !== LATE && !first.done) {
      chunk = first.value;
      read = reader.read();
    }
    const rest = first === LATE ? LATE : await promptly(read);
    if (signal.aborted) return;
    if (rest !== LATE && rest.done) {
      const length = chunk?.length ?? 0;
      if (declared >= 0 && declared !== length) throw new Error(`the response body is ${length} bytes, its Content-Length says ${declared}`);
      head["content-length"] = String(length);
      res.writeHead(response.status, statusText, head);
      res.end(chunk);
      return;
    }
    res.writeHead(response.status, statusText, head);
    if (chunk === undefined) res.flushHeaders();
    else if (!send(chunk)) await drained(res);
    for (;;) {
      const step = await read;
      if (step.done) break;
      if (signal.aborted) return;
      if (!send(step.value)) await drained(res);
      read = reader.read();
    }
    // A body shorter than its Content-Length would leave the client waiting for the rest.
    if (declared >= 0 && sent !== declared) throw new Error(`the response body ended after ${sent} of its ${declared} bytes`);
    res.end();
  } catch (error) {
    // Before the head went out the caller answers 500; after it, a cut connection is the only way
    // to tell the client that the body is incomplete.
    reader.cancel(error).catch(() => {});
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
