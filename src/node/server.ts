/**
 * createServer(): node:http's Server API on top of serve(). Each FastCGI request becomes a
 * `request` event with node:http-shaped `req` and `res`, so Express, Koa, Fastify and any
 * `(req, res)` listener run unchanged behind nginx, Apache or lighttpd.
 * @module
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { formatAddress } from "../address.ts";
import { ServerLog } from "../app/options.ts";
import { serve } from "../app/serve.ts";
import type { Handler, RequestContext, ServeOptions, Server } from "../app/types.ts";
import type { RoleName } from "../protocol/constants.ts";
import type { SocketAddress } from "../socket.ts";
import type { RequestEmitter } from "./emitter.ts";
import { FastCGIIncomingMessage } from "./incoming.ts";
import { FastCGIServerResponse, type ResponseLimits } from "./response.ts";
import { FastCGIRequestSocket } from "./socket.ts";

export { isRequestEmitter } from "./emitter.ts";
export type { RequestEmitter } from "./emitter.ts";

/**
 * A node:http request listener, as an Express app, Koa's `app.callback()` and Fastify's handler
 * are. It is typed with node:http's classes so that those pass as they are; what it gets are a
 * {@link FastCGIIncomingMessage} and a {@link FastCGIServerResponse}, which behave as them.
 */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * The FastCGI side of a request a node:http listener got (its params, role, STDERR writer), or
 * undefined for a request that did not come over FastCGI. The same as `req.fastcgi`, typed for
 * any framework's request type.
 *
 * @example
 * ```ts
 * import { requestContext } from "fcgi/node";
 * import type { IncomingMessage } from "node:http";
 *
 * function scriptName(req: IncomingMessage): string | undefined {
 *   return requestContext(req)?.params.get("SCRIPT_NAME");
 * }
 * ```
 */
export function requestContext(req: object): RequestContext | undefined {
  return FastCGIIncomingMessage.isOne(req) ? req.fastcgi : undefined;
}

/** How node:http exchanges behave over FastCGI. */
export interface NodeExchangeOptions {
  /**
   * The FastCGI roles the listener plays (default responder and authorizer). An authorizer request
   * has `req.fastcgi.role === Role.AUTHORIZER`; a 200 allows it, and `Variable-NAME` headers pass
   * on to the responder as params.
   */
  roles?: readonly RoleName[];
  /** Bytes the request body and the response buffer before backpressure (default 64 KiB). */
  highWaterMark?: number;
  /**
   * Bytes one response may hold unsent (default 64 MiB). An app that goes on writing while more
   * than this waits (it ignores write()'s false and `drain` while the web server reads slowly) has
   * its response cut short with a log line, instead of growing memory without bound.
   */
  maxResponseBufferBytes?: number;
}

/** Options of {@link createServer}: serve()'s limits and settings (not its handlers or listen), and {@link NodeExchangeOptions}. */
export interface CreateServerOptions extends Omit<ServeOptions, "fetch" | "authorize" | "filter" | "listen" | "signal">, NodeExchangeOptions {}

/** What `listen()` takes, as node:http's `server.listen(options)`. */
export interface ListenOptions {
  /** A TCP port (0 picks a free one). */
  port?: number | string;
  /** The address to listen on with `port` (default: every IPv4 interface). */
  host?: string;
  /** A Unix socket path. */
  path?: string;
  /** An inherited listening socket's file descriptor (0 as from a web server or spawn-fcgi, or 3 and up). */
  fd?: number;
  /** `{ fd }`, as node:http also takes it. */
  handle?: { fd: number };
  /** Accepted and ignored (the runtime picks the backlog). */
  backlog?: number;
  /** Accepted and ignored. */
  exclusive?: boolean;
  /** Accepted and ignored. */
  ipv6Only?: boolean;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
}

/** What `address()` returns for TCP, as node:http does. */
export interface AddressInfo {
  /** The address listened on. */
  address: string;
  /** "IPv4" or "IPv6". */
  family: string;
  /** The port listened on (the real one when 0 was asked for). */
  port: number;
}

const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
const DEFAULT_MAX_RESPONSE_BUFFER = 64 * 1024 * 1024;
const DEFAULT_ROLES: readonly RoleName[] = ["responder", "authorizer"];

/**
 * serve()'s handlers for a node:http listener: each request is emitted as `request` on `target`
 * with node:http-shaped `req` and `res`, and the Response resolves once the head is known.
 */
export function nodeHandlers(target: RequestEmitter, options: NodeExchangeOptions & { logger?: ServeOptions["logger"] } = {}): Pick<ServeOptions, "fetch" | "authorize" | "filter"> {
  const log = new ServerLog(options.logger);
  const limits: ResponseLimits = {
    highWaterMark: options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
    maxResponseBufferBytes: options.maxResponseBufferBytes ?? DEFAULT_MAX_RESPONSE_BUFFER,
  };
  const handler: Handler = (request, context) => new Promise<Response>((resolve, reject) => {
    const socket = new FastCGIRequestSocket(context, (error) => res.destroy(error));
    const req = new FastCGIIncomingMessage(request, context, socket, limits.highWaterMark);
    const res = new FastCGIServerResponse(req, { respond: resolve, fail: reject, warn: (kind, message) => log.warn(kind, message) }, limits);
    const signal = context.signal;
    // ABORT_REQUEST, the web server's connection lost, or a limit such as requestTimeout.
    const abort = (): void => {
      const reason = signal.reason instanceof Error ? signal.reason : new Error("the request was aborted");
      req.abort(Object.assign(new Error("aborted", { cause: reason }), { code: "ECONNRESET" }));
      res.destroy();
    };
    signal.addEventListener("abort", abort, { once: true });
    res.once("close", () => {
      signal.removeEventListener("abort", abort);
      req.answered();
      // As node:http: the request closes with its response, its unread body dropped.
      if (!req.destroyed) req.destroy();
      socket.closed(!res.writableFinished);
    });
    try {
      target.emit("request", req, res);
    } catch (error) {
      // Before the head this is a 500; after it the body is cut short (node:http would crash the process).
      log.error("handler", `the request listener threw: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      res.destroy(error instanceof Error ? error : new Error(String(error)));
    }
  });
  const roles = new Set(options.roles ?? DEFAULT_ROLES);
  return {
    ...(roles.has("responder") ? { fetch: handler } : {}),
    ...(roles.has("authorizer") ? { authorize: handler } : {}),
    ...(roles.has("filter") ? { filter: handler } : {}),
  };
}

function notRunning(): Error {
  return Object.assign(new Error("Server is not running."), { code: "ERR_SERVER_NOT_RUNNING" });
}

/**
 * node:http's Server over FastCGI: `listen`, `close`, `address`, and the events `listening`,
 * `request`, `close` and `error`. Made by {@link createServer}.
 */
export class FastCGIServer extends EventEmitter {
  /** node:http's timeouts, kept for frameworks that set them; the web server times its clients. */
  timeout = 0;
  /** As `timeout`. */
  keepAliveTimeout = 5000;
  /** As `timeout`. */
  headersTimeout = 60000;
  /** As `timeout` (serve()'s `requestTimeout` option is the one that ends requests). */
  requestTimeout = 300000;
  /** As `timeout`. */
  maxHeadersCount: number | null = null;
  /** As `timeout`. */
  maxRequestsPerSocket = 0;
  readonly #options: CreateServerOptions;
  #server: Server | undefined;
  #starting: Promise<Server | undefined> | undefined;

  /** A server whose `request` listener is `listener`, when given. */
  constructor(options: CreateServerOptions = {}, listener?: RequestListener) {
    super();
    this.#options = options;
    if (listener) this.on("request", listener as (...args: unknown[]) => unknown);
  }

  /** True while listening. */
  get listening(): boolean {
    return this.#server !== undefined;
  }

  /** The fcgi server underneath (its status page, connection and request counts), once listening. */
  get fastcgi(): Server | undefined {
    return this.#server;
  }

  /**
   * Starts accepting FastCGI connections, as `http.Server.listen()`: `(port, host?, backlog?, cb?)`,
   * `(path, cb?)`, `({ port, host } | { path } | { fd }, cb?)`, or with no address the socket
   * inherited on file descriptor 0 (or from systemd), as a web server or spawn-fcgi hands it over.
   * `listening` follows, or `error`.
   */
  listen(...args: unknown[]): this {
    const callback = typeof args[args.length - 1] === "function" ? args.pop() as () => void : undefined;
    if (callback) this.once("listening", callback);
    let address: SocketAddress | undefined;
    let signal: AbortSignal | undefined;
    try {
      if (this.#starting) throw Object.assign(new Error("Listen method has been called more than once without closing."), { code: "ERR_SERVER_ALREADY_LISTEN" });
      [address, signal] = listenAddress(args);
    } catch (error) {
      queueMicrotask(() => this.emit("error", error));
      return this;
    }
    const options = this.#options;
    this.#starting = serve({
      ...options,
      ...nodeHandlers(this, options),
      ...(address === undefined ? {} : { listen: address }),
    }).then((server) => {
      this.#server = server;
      if (signal?.aborted) void this.close();
      else signal?.addEventListener("abort", () => void this.close(), { once: true });
      this.emit("listening");
      return server;
    }, (error: unknown) => {
      this.#starting = undefined;
      this.emit("error", error);
      return undefined;
    });
    return this;
  }

  /** Where it listens: `{ address, family, port }` for TCP, the path for a Unix socket ("fd:N" for an inherited one); null before listening. */
  address(): AddressInfo | string | null {
    const address = this.#server?.addresses[0];
    if (!address) return null;
    if (address.transport === "tcp") return { address: address.hostname, family: address.hostname.includes(":") ? "IPv6" : "IPv4", port: address.port };
    return address.transport === "unix" ? address.path : formatAddress(address);
  }

  /**
   * Stops accepting; requests in flight finish (up to `closeTimeout`), then `close` is emitted
   * and `callback` called (with ERR_SERVER_NOT_RUNNING when it was not listening).
   */
  close(callback?: (error?: Error) => void): this {
    const starting = this.#starting;
    this.#starting = undefined;
    if (!starting) {
      if (callback) this.once("close", () => callback(notRunning()));
      queueMicrotask(() => this.emit("close"));
      return this;
    }
    if (callback) this.once("close", () => callback());
    void starting.then(async (server) => {
      await server?.close();
      this.#server = undefined;
      this.emit("close");
    });
    return this;
  }

  /** Cuts nothing: the web server's connections are closed by close() once idle. */
  closeAllConnections(): void {}

  /** Cuts nothing: the web server's idle connections are closed by close(). */
  closeIdleConnections(): void {}

  /** Sets `timeout` (kept for frameworks that call it; the web server times its clients out). */
  setTimeout(ms: number = 0, callback?: () => void): this {
    this.timeout = ms;
    if (callback) this.on("timeout", callback);
    return this;
  }

  /** Accepted and ignored. */
  ref(): this {
    return this;
  }

  /** Accepted and ignored. */
  unref(): this {
    return this;
  }

  /** Closes the server, resolving once it has. */
  [Symbol.asyncDispose](): Promise<void> {
    return new Promise((resolve) => this.close(() => resolve()));
  }
}

/** The address (and signal) of `listen()`'s arguments, as node:http reads them. */
function listenAddress(args: unknown[]): [SocketAddress | undefined, AbortSignal | undefined] {
  const [first, second] = args;
  if (first === undefined || first === null) return [undefined, undefined];
  if (typeof first === "object") {
    const options = first as ListenOptions;
    const fd = options.fd ?? options.handle?.fd;
    if (fd !== undefined) return [{ transport: "fd", fd }, options.signal];
    if (options.path !== undefined) return [{ transport: "unix", path: options.path }, options.signal];
    return [tcpAddress(options.port ?? 0, options.host), options.signal];
  }
  if (typeof first === "string" && !/^[0-9]+$/.test(first)) return [{ transport: "unix", path: first }, undefined];
  return [tcpAddress(first as number | string, typeof second === "string" ? second : undefined), undefined];
}

function tcpAddress(port: number | string, host: string | undefined): SocketAddress {
  const number = Number(port);
  if (!Number.isInteger(number) || number < 0 || number > 65535) {
    throw Object.assign(new RangeError(`options.port should be >= 0 and < 65536. Received ${String(port)}.`), { code: "ERR_SOCKET_BAD_PORT" });
  }
  const hostname = host === undefined || host === "" ? "0.0.0.0" : host === "localhost" ? "127.0.0.1" : host.replace(/^\[(.*)\]$/, "$1");
  return { transport: "tcp", hostname, port: number };
}

/**
 * node:http's `createServer()`, over FastCGI: the same `(req, res)` listener, the same
 * `listen()`; only the web server in front speaks HTTP.
 *
 * @example
 * ```ts
 * import express from "express";
 * import { createServer, requestContext } from "fcgi/node";
 *
 * const app = express();
 * app.get("/", (req, res) => res.send(`hello from ${requestContext(req)?.params.get("SCRIPT_NAME")}`));
 * createServer(app).listen(9000, "127.0.0.1");   // nginx: fastcgi_pass 127.0.0.1:9000;
 * ```
 */
export function createServer(listener?: RequestListener): FastCGIServer;
/** node:http's `createServer(options, listener)`: the options are serve()'s, plus {@link NodeExchangeOptions}. */
export function createServer(options: CreateServerOptions, listener?: RequestListener): FastCGIServer;
export function createServer(a?: CreateServerOptions | RequestListener, b?: RequestListener): FastCGIServer {
  return typeof a === "function" ? new FastCGIServer({}, a) : new FastCGIServer(a ?? {}, b);
}
