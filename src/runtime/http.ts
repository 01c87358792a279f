/**
 * Serves a fetch handler over HTTP with the runtime's own server: `Deno.serve` on Deno,
 * `Bun.serve` on Bun, `node:http` (through {@link toNodeHandler}) on Node. Used by
 * `fcgi proxy` and the `npm run server` demo; the one place the HTTP side asks which runtime this is.
 * @module
 */
import type { FetchHandler } from "../client/node_http.ts";
import { currentRuntimeName } from "./index.ts";

/** Options of {@link listenHttp}. */
export interface HttpListenOptions {
  /** The address to bind (e.g. "127.0.0.1", "::1", "0.0.0.0"). */
  hostname: string;
  /** The port; 0 picks a free one (see {@link HttpServer.port}). */
  port: number;
  /** Aborting it closes the server, as {@link HttpServer.close} does. */
  signal?: AbortSignal;
  /** How long close() lets in-flight requests finish before cutting them (default 10 000 ms). */
  closeTimeout?: number;
}

/** A running HTTP server. */
export interface HttpServer {
  /** `http://host:port/`, with the real port. */
  readonly url: string;
  /** The address it listens on, as given (e.g. `127.0.0.1`). */
  readonly hostname: string;
  /** The port it listens on: the real one when 0 was asked for. */
  readonly port: number;
  /** Graceful: stops accepting, lets in-flight requests finish (up to closeTimeout), then closes. */
  close(): Promise<void>;
  /** Settles once the server is closed. */
  readonly finished: Promise<void>;
}

declare const Deno: {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { port: number }) => void },
    handler: (request: Request, info: { remoteAddr: { hostname: string; port: number } }) => Response | Promise<Response>,
  ): { addr: { port: number }; finished: Promise<void>; shutdown(): Promise<void> };
};
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch: (request: Request, server: BunServer) => Response | Promise<Response>;
  }): BunServer;
};
interface BunServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
  requestIP(request: Request): { address: string; port: number } | null;
}

/**
 * Serves `handler` over HTTP/1.1 on this runtime. The handler's second argument is
 * `{ remoteAddr: { hostname, port } }` on every runtime.
 *
 * @example
 * ```ts
 * const server = await listenHttp((request) => new Response("hi"), { hostname: "127.0.0.1", port: 8080 });
 * console.log(server.url);
 * await server.close();
 * ```
 */
export async function listenHttp(handler: FetchHandler, options: HttpListenOptions): Promise<HttpServer> {
  const closeTimeout = options.closeTimeout ?? 10_000;
  const runtime = currentRuntimeName();
  let port: number;
  let stop: () => Promise<void>;
  let cut: () => void;
  if (runtime === "deno") {
    const server = Deno.serve({ hostname: options.hostname, port: options.port, onListen() {} }, handler);
    port = server.addr.port;
    stop = () => server.shutdown();
    cut = () => {}; // Deno's shutdown() already waits for in-flight requests; nothing to cut more.
  } else if (runtime === "bun") {
    const server = Bun.serve({
      hostname: options.hostname,
      port: options.port,
      fetch: (request, bun) => {
        const peer = bun.requestIP(request);
        return handler(request, { remoteAddr: { hostname: peer?.address ?? "", port: peer?.port ?? 0 } });
      },
    });
    port = server.port;
    stop = async () => void (await server.stop(false));
    cut = () => void server.stop(true);
  } else {
    const { createServer } = await import("node:http");
    const { toNodeHandler } = await import("../client/node_http.ts");
    const server = createServer(toNodeHandler(handler));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
    port = (server.address() as { port: number }).port;
    stop = () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    cut = () => server.closeAllConnections();
  }
  let closing: Promise<void> | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const close = (): Promise<void> => {
    closing ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          cut();
          resolve();
        }, closeTimeout);
      });
      await Promise.race([stop(), late]);
      clearTimeout(timer);
      finish();
    })();
    return closing;
  };
  // A signal aborted while the server was starting (a SIGTERM during start-up) closes it now.
  if (options.signal?.aborted) void close();
  else options.signal?.addEventListener("abort", () => void close(), { once: true });
  const host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
  return { url: `http://${host}:${port}/`, hostname: options.hostname, port, close, finished };
}
