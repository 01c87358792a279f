/**
 * serve(): listens where told (or on the sockets inherited from systemd or on fd 0), admits web servers by the
 * allow-list, counts connections and requests against their limits, runs the timers, and
 * closes gracefully.
 * @module
 */
import { formatAddress, parseAddress, parseAllowList, type AllowList } from "../address.ts";
import { FastCGIError } from "../errors.ts";
import { detectAdapter, getRuntime, inheritedSockets } from "../runtime/index.ts";
import type { Runtime, RuntimeAdapter, RuntimeListener, RuntimeListenOptions, TlsServerOptions } from "../runtime/types.ts";
import { bodyPool } from "./body_pool.ts";
import type { Connection, ConnectionHandlers, SocketAddress } from "../socket.ts";
import { AppSocket, type ConnectionServer } from "./connection.ts";
import { resolveOptions, ServerLog, type ResolvedOptions } from "./options.ts";
import { installGlobalObjects } from "./response.ts";
import type { Handler, ListenAddress, ServeOptions, Server } from "./types.ts";
import type { Params } from "../codec/pairs.ts";
import { formatStatus, statusQuery } from "../status/format.ts";
import { listenQueue } from "../status/listen_queue.ts";
import { NO_RESTARTS, poolStatus, type ProcessReport } from "../status/report.ts";
import type { PoolStatus } from "../status/types.ts";
import { ServerStats } from "./stats.ts";
import { ROLE_BY_NAME } from "../protocol/constants.ts";
import type { RequestTask } from "./task.ts";

/** What a process manager's worker adds to serve(): the pool's status page in place of its own. */
export interface ServeHooks {
  /** The whole pool's status, given this worker's fresh report; undefined when the manager cannot answer. */
  poolStatus?(report: ProcessReport): Promise<PoolStatus | undefined>;
}

/** A server that also gives its part of a pool's status page. */
export type ReportingServer = Server & { report(): ProcessReport };

/** Headers of the status and ping pages, as PHP-FPM sends them: never cached. */
const NO_CACHE = { expires: "Thu, 01 Jan 1970 00:00:00 GMT", "cache-control": "no-cache, no-store, must-revalidate, max-age=0" };

const IGNORE: ConnectionHandlers = { onData() {}, onDrain() {}, onClose() {} };

/** The sweeper's period while the server closes. */
const CLOSING_SWEEP_MS = 50;

/**
 * Runs FastCGI handlers: `fetch` for the Responder role, `authorize` for the Authorizer,
 * `filter` for the Filter. Resolves once listening.
 *
 * @example
 * ```ts
 * import { serve } from "fcgi";
 *
 * const server = await serve({
 *   listen: "127.0.0.1:9000",
 *   fetch: (request) => new Response(`hello from ${new URL(request.url).pathname}`),
 * });
 * // nginx: fastcgi_pass 127.0.0.1:9000;
 * process.on("SIGTERM", () => server.close());
 * ```
 */
export function serve(options: ServeOptions): Promise<Server> {
  return serveWith(options, {});
}

/** serve(), with the hooks a process manager's worker uses (not public). */
export async function serveWith(options: ServeOptions, hooks: ServeHooks): Promise<ReportingServer> {
  const resolved = resolveOptions(options);
  const log = new ServerLog(options.logger);
  const host = await detectAdapter();
  const runtime = await resolveRuntime(options.runtime, host);
  const addresses = listenAddresses(options.listen, host);
  const allow = allowList(options.allow, host);
  if (resolved.light) installGlobalObjects();
  const server = new AppServer(resolved, log, allow, new ServerStats(host.pid(), options.accessLog), hooks);
  const listenOptions: RuntimeListenOptions = {
    ...(options.socketMode === undefined ? {} : { mode: options.socketMode }),
    ...(options.tls === undefined ? {} : { tls: options.tls, handshakeTimeout: resolved.paramsTimeout, maxTlsConnections: resolved.maxConnections, onTlsError: (peer, error) => server.refuseTls(peer, error) }),
  };
  try {
    for (const address of addresses) {
      const listener = await runtime.listen(address, (connection) => server.accept(connection), listenOptions);
      server.listeners.push(listener);
      // A runtime that ignored the tls option would serve plaintext to anyone: refuse to run instead.
      if (options.tls !== undefined && typeof listener.reloadTls !== "function") {
        throw new Error(`serve: the ${runtime.name} socket adapter given as runtime does not serve TLS on ${formatAddress(listener.address)}; not listening without it`);
      }
    }
  } catch (error) {
    await server.close();
    throw error;
  }
  server.start();
  const signal = options.signal;
  if (signal) {
    if (signal.aborted) void server.close();
    else signal.addEventListener("abort", () => void server.close(), { once: true });
  }
  return server;
}

async function resolveRuntime(runtime: ServeOptions["runtime"], host: Runtime): Promise<Runtime> {
  if (typeof runtime === "object") return runtime;
  if (typeof runtime === "string") return await getRuntime(runtime);
  return host;
}

function listenAddresses(listen: ServeOptions["listen"], host: RuntimeAdapter): SocketAddress[] {
  if (listen === undefined) return inheritedSockets(host);
  const list: readonly ListenAddress[] = typeof listen === "string" || !Array.isArray(listen) ? [listen as ListenAddress] : listen;
  if (list.length === 0) return inheritedSockets(host);
  return list.map((a) => (typeof a === "string" ? parseAddress(a) : a));
}


/**
 * The allow-list option, or else FCGI_WEB_SERVER_ADDRS from the environment of the runtime this
 * code runs on (whichever socket adapter serves), or null: any web server may connect.
 */
function allowList(allow: ServeOptions["allow"], host: RuntimeAdapter): AllowList | null {
  if (allow !== undefined) return parseAllowList(typeof allow === "string" ? allow : [...allow]);
  const env = host.env("FCGI_WEB_SERVER_ADDRS");
  return env === undefined || env.trim() === "" ? null : parseAllowList(env);
}

class AppServer implements Server, ConnectionServer {
  readonly options: ResolvedOptions;
  readonly log: ServerLog;
  readonly listeners: RuntimeListener[] = [];
  readonly finished: Promise<void>;
  closing = false;

  readonly #allow: AllowList | null;
  readonly #sockets = new Set<AppSocket>();
  readonly #stats: ServerStats;
  readonly #hooks: ServeHooks;
  readonly #statusHandler: Handler | undefined;
  readonly #pingHandler: Handler | undefined;
  readonly #notFound: Handler | undefined;
  #requests = 0;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #sweptAt = 0;
  #sweepPeriod = 0;
  #maxListenQueue = 0;
  #maxActive = 0;
  #closed: Promise<void> | undefined;
  #resolveFinished!: () => void;
  #idleWaiter: (() => void) | undefined;

  constructor(options: ResolvedOptions, log: ServerLog, allow: AllowList | null, stats: ServerStats, hooks: ServeHooks) {
    this.options = options;
    this.log = log;
    this.#allow = allow;
    this.#stats = stats;
    this.#hooks = hooks;
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    if (options.statusPath !== undefined) this.#statusHandler = (_request, context) => this.#statusPage(context.params);
    if (options.pingPath !== undefined) this.#pingHandler = () => this.#pingPage();
    if (options.handlers[ROLE_BY_NAME.responder] === undefined && (this.#statusHandler || this.#pingHandler)) {
      this.#notFound = () => new Response("Not Found\n", { status: 404, headers: { "content-type": "text/plain" } });
    }
  }

  get addresses(): readonly SocketAddress[] {
    return this.listeners.map((l) => l.address);
  }

  get connections(): number {
    return this.#sockets.size;
  }

  get activeRequests(): number {
    return this.#requests;
  }

  /** This process's part of the status page. */
  report(): ProcessReport {
    return this.#stats.report(this.#sockets.size);
  }

  status(): PoolStatus {
    const report = this.report();
    const listen = listenQueue(this.listeners[0]?.address);
    if (listen.queue !== null) this.#maxListenQueue = Math.max(this.#maxListenQueue, listen.queue);
    this.#maxActive = Math.max(this.#maxActive, report.process.state === "Running" ? 1 : 0);
    return poolStatus({
      pool: this.options.poolName,
      processManager: "static",
      startTime: this.#stats.startTime,
      now: Date.now(),
      listen,
      maxListenQueue: listen.queue === null ? null : this.#maxListenQueue,
      maxActiveProcesses: this.#maxActive,
      maxChildrenReached: 0,
      restarts: NO_RESTARTS,
    }, [report]);
  }

  internalHandler(params: Params): Handler | undefined {
    if (this.#statusHandler === undefined && this.#pingHandler === undefined) return undefined;
    // nginx sends the path as SCRIPT_NAME ($fastcgi_script_name) and DOCUMENT_URI; either names the page.
    const name = params.get("SCRIPT_NAME");
    const uri = params.get("DOCUMENT_URI");
    const { statusPath, pingPath } = this.options;
    if (this.#statusHandler && (name === statusPath || uri === statusPath)) return this.#statusHandler;
    if (this.#pingHandler && (name === pingPath || uri === pingPath)) return this.#pingHandler;
    return this.#notFound;
  }

  async #statusPage(params: Params): Promise<Response> {
    const query = statusQuery(params.get("QUERY_STRING") ?? "");
    const status = (await this.#hooks.poolStatus?.(this.report())) ?? this.status();
    const { contentType, body } = formatStatus(status, query, { accept: params.get("HTTP_ACCEPT") });
    return new Response(body, { status: 200, headers: { "content-type": contentType, ...NO_CACHE } });
  }

  #pingPage(): Response {
    // A draining server (a reload or a stop) says so, so that a health check moves on.
    if (this.closing) return new Response("closing\n", { status: 503, headers: { "content-type": "text/plain", ...NO_CACHE } });
    return new Response(this.options.pingResponse, { status: 200, headers: { "content-type": "text/plain", ...NO_CACHE } });
  }

  began(task: RequestTask): void {
    this.#stats.began(task);
  }

  ended(task: RequestTask): void {
    this.#stats.ended(task);
    const limit = this.options.slowRequest;
    if (limit === Infinity || task.slowLogged) return;
    // A request that blocked the loop all along ends before a sweep can see it running.
    const now = performance.now();
    if (now - task.startedAt < limit) return;
    task.slowLogged = true;
    this.#stats.slow++;
    this.#reportSlow(task, now, now - this.#sweptAt - this.#sweepPeriod);
  }

  refuse(limit: string): void {
    this.#stats.refuse(limit);
  }

  refuseParams(limit: string | undefined): void {
    this.#stats.refuseParams(limit);
  }

  /** Starts the timer that enforces paramsTimeout, idleTimeout, sendTimeout and requestTimeout. */
  start(): void {
    // One sweep over all connections a few times per shortest timeout: cheaper than a timer per
    // connection (or per request) re-armed on every request, and precise enough for limits
    // measured in seconds: a limit hit is noticed at most one period late.
    const { paramsTimeout, idleTimeout, sendTimeout, requestTimeout, slowRequest } = this.options;
    const period = Math.max(10, Math.min(1000, Math.min(paramsTimeout, idleTimeout, sendTimeout, requestTimeout, slowRequest) / 4));
    this.#sweepEvery(period);
    if (this.options.statusPath !== undefined) this.#stats.startSampling();
  }

  /** A connection whose TLS handshake failed: the runtime closed it; counted and logged here. */
  refuseTls(peer: string, error: Error): void {
    // Over the connection limit before its handshake ended: counted as the limit, not as TLS.
    const reason = error instanceof FastCGIError && error.limit === "maxConnections" ? "maxConnections" : "tls";
    this.#stats.refuse(reason);
    this.log.warn(reason, `refused a TLS connection from ${peer || "a peer"}: ${error.message}`);
  }

  reloadTls(tls: TlsServerOptions): void {
    const listeners = this.listeners.filter((l) => l.reloadTls !== undefined);
    if (listeners.length === 0) throw new TypeError("reloadTls: this server does not serve TLS");
    // Every listener checks the files the same way, so the first one's refusal leaves all unchanged.
    for (const listener of listeners) listener.reloadTls!(tls);
  }

  accept(connection: Connection): ConnectionHandlers {
    const peer = connection.remoteAddress;
    // A connection accepted while closing (the listener's close is not instant, and a pool's
    // workers share one queue) is served, not reset: the web server already sent it a request,
    // and a reset would be a 502. It closes after that request (see AppSocket.closeWhenIdle).
    if (this.#allow && peer !== "" && !this.#allow.allows(peer)) {
      this.#stats.refuse("allow");
      this.log.warn("allow", `refused a connection from ${peer}: not in the allowed web server addresses`);
      connection.destroy();
      return IGNORE;
    }
    if (this.#sockets.size >= this.options.maxConnections) {
      this.#stats.refuse("maxConnections");
      this.log.warn("maxConnections", `refused a connection from ${peer || "a unix socket peer"}: maxConnections (${this.options.maxConnections}) reached`);
      connection.destroy();
      return IGNORE;
    }
    const socket = new AppSocket(this, connection);
    this.#sockets.add(socket);
    return socket.handlers();
  }

  admit(late = false): boolean {
    if (this.closing && !late) return false;
    if (this.#requests >= this.options.maxRequests) {
      this.#stats.refuse("maxRequests");
      this.log.warn("maxRequests", `maxRequests (${this.options.maxRequests}) running: answering OVERLOADED`);
      return false;
    }
    this.#requests++;
    this.#stats.accepted++;
    return true;
  }

  release(): void {
    this.#requests--;
  }

  closed(socket: AppSocket): void {
    this.#sockets.delete(socket);
    if (this.#sockets.size === 0) this.#idleWaiter?.();
  }

  close(): Promise<void> {
    return (this.#closed ??= this.#close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + this.options.closeTimeout;
    const listenersClosed = Promise.all(this.listeners.map((l) => l.close().catch((error: unknown) => {
      this.log.error("listener", `closing the listener on ${formatAddress(l.address)}: ${error instanceof Error ? error.message : String(error)}`);
    })));
    for (const socket of [...this.#sockets]) socket.closeWhenIdle();
    // Idle connections now have a grace of a second (see closeWhenIdle): sweep often enough that
    // it ends on time, not up to a sweep period (1 s with the default limits) later.
    if (this.#sweeper !== undefined && this.#sweepPeriod > CLOSING_SWEEP_MS) this.#sweepEvery(CLOSING_SWEEP_MS);
    // Connections accepted until the listeners are closed are served too: wait for them as well.
    await listenersClosed;
    if (this.#sockets.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#idleWaiter = resolve;
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      clearTimeout(timer);
      if (this.#sockets.size > 0) {
        this.log.warn("closeTimeout", `closeTimeout (${this.options.closeTimeout} ms) passed: cutting ${this.#sockets.size} connection(s)`);
        for (const socket of [...this.#sockets]) socket.destroy("the server closed (closeTimeout)");
      }
    }
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#stats.stop();
    this.#resolveFinished();
  }

  /** (Re)starts the sweeper with this period. */
  #sweepEvery(period: number): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweepPeriod = period;
    this.#sweptAt = performance.now();
    this.#sweeper = setInterval(() => this.#sweep(), period);
  }

  #sweep(): void {
    const now = Date.now();
    // Requests are timed on the monotonic clock (see RequestTask.startedAt).
    const clock = performance.now();
    // How late this sweep runs: the time the event loop spent elsewhere (blocked) since the last one.
    const late = clock - this.#sweptAt - this.#sweepPeriod;
    this.#sweptAt = clock;
    const timed = this.options.requestTimeout !== Infinity;
    for (const socket of this.#sockets) {
      if (socket.deadline !== 0 && now >= socket.deadline) socket.expire();
      if (timed && socket.activeRequests > 0) socket.expireRequests(clock);
    }
    if (this.options.slowRequest !== Infinity) this.#logSlow(clock, late);
    bodyPool.trim(now);
  }

  #logSlow(now: number, late: number): void {
    for (const task of this.#stats.newlySlow(now, this.options.slowRequest)) this.#reportSlow(task, now, late);
  }

  /** One slow-request line; `late` is how late the sweeper runs (or would run) now. */
  #reportSlow(task: RequestTask, now: number, late: number): void {
    const limit = this.options.slowRequest;
    // A sweep that runs late by a good part of the limit, and of the request's time so far, shows
    // the loop was blocked; else the loop ran (a busy machine delays a sweep a little) and the
    // request waits on something (an upstream, a timer, a body that does not come).
    const why = late > Math.max(50, limit / 2, (now - task.startedAt) / 2)
      ? `the event loop was blocked for ${Math.round(late)} ms before this check`
      : "the event loop runs: the handler is waiting";
    const uri = task.params.get("REQUEST_URI") ?? task.params.get("SCRIPT_NAME") ?? "";
    const state = task.ended ? "ran" : "has run";
    this.log.warnEach(`slow request: ${task.method} ${uri} (pid ${this.#stats.pid}, request ${task.requestId} from ${task.socket.remoteAddress || "a unix socket peer"}) ${state} ${Math.round(now - task.startedAt)} ms, past slowRequest (${limit} ms); ${why}`);
  }
}
