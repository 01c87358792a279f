/**
 * Serves a fetch handler over HTTP with the runtime's own server, which each adapter starts
 * (`Deno.serve` on Deno, `Bun.serve` on Bun, `node:http` through `toNodeHandler` on Node). What
 * the three share is here: the graceful close with its timeout, the abort signal, the URL.
 * Used by `fcgi proxy` and the `npm run server` demo.
 * @module
 */
import { detectAdapter } from "./index.ts";
import type { FetchHandler } from "./types.ts";

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
  /**
   * Hand the handler the request target exactly as the client sent it (default false). Node's
   * and Deno's servers always do; Bun.serve percent-encodes ' < > in it, so on Bun this serves
   * through Bun's node:http instead, about 0.6× as fast.
   */
  rawTarget?: boolean;
  /**
   * Listen with SO_REUSEPORT (Linux; Node 22.12 or later), so that several processes serve the
   * same port: `fcgi proxy --workers`. Default false.
   */
  reusePort?: boolean;
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
  const server = await (await detectAdapter()).serveHttp(handler, { hostname: options.hostname, port: options.port, rawTarget: options.rawTarget, reusePort: options.reusePort });
  let closing: Promise<void> | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const close = (): Promise<void> => {
    closing ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          server.abort();
          resolve();
        }, closeTimeout);
      });
      await Promise.race([server.shutdown(), late]);
      clearTimeout(timer);
      finish();
    })();
    return closing;
  };
  // A signal aborted while the server was starting (a SIGTERM during start-up) closes it now.
  if (options.signal?.aborted) void close();
  else options.signal?.addEventListener("abort", () => void close(), { once: true });
  const host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
  const port = server.port;
  return { url: `http://${host}:${port}/`, hostname: options.hostname, port, close, finished };
}
