/**
 * serve(): listens where told (or on the sockets inherited from systemd or on fd 0), admits web servers by the
 * allow-list, counts connections and requests against their limits, runs the timers, and
 * closes gracefully.
 * @module
 */
import { formatAddress, parseAddress, parseAllowList, type AllowList } from "../address.ts";
import { detectAdapter, getRuntime, inheritedSockets } from "../runtime/index.ts";
import type { Runtime, RuntimeAdapter } from "../runtime/types.ts";
import type { Connection, ConnectionHandlers, Listener, SocketAddress } from "../socket.ts";
import { AppSocket, type ConnectionServer } from "./connection.ts";
import { resolveOptions, ServerLog, type ResolvedOptions } from "./options.ts";
import { installGlobalObjects } from "./response.ts";
import type { ListenAddress, ServeOptions, Server } from "./types.ts";

const IGNORE: ConnectionHandlers = { onData() {}, onDrain() {}, onClose() {} };

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
export async function serve(options: ServeOptions): Promise<Server> {
  const resolved = resolveOptions(options);
  const log = new ServerLog(options.logger);
  const host = await detectAdapter();
  const runtime = await resolveRuntime(options.runtime, host);
  const addresses = listenAddresses(options.listen, host);
  const allow = allowList(options.allow, host);
  if (resolved.light) installGlobalObjects();
  const server = new AppServer(resolved, log, allow);
  try {
    for (const address of addresses) {
      server.listeners.push(await runtime.listen(address, (connection) => server.accept(connection), options.socketMode === undefined ? undefined : { mode: options.socketMode }));
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
  readonly listeners: Listener[] = [];
  readonly finished: Promise<void>;
  closing = false;

  readonly #allow: AllowList | null;
  readonly #sockets = new Set<AppSocket>();
  #requests = 0;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed: Promise<void> | undefined;
  #resolveFinished!: () => void;
  #idleWaiter: (() => void) | undefined;

  constructor(options: ResolvedOptions, log: ServerLog, allow: AllowList | null) {
    this.options = options;
    this.log = log;
    this.#allow = allow;
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
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

  /** Starts the timer that enforces paramsTimeout, idleTimeout and requestTimeout. */
  start(): void {
    // One sweep over all connections a few times per shortest timeout: cheaper than a timer per
    // connection (or per request) re-armed on every request, and precise enough for limits
    // measured in seconds: a limit hit is noticed at most one period late.
    const { paramsTimeout, idleTimeout, requestTimeout } = this.options;
    const period = Math.max(10, Math.min(1000, Math.min(paramsTimeout, idleTimeout, requestTimeout) / 4));
    this.#sweeper = setInterval(() => this.#sweep(), period);
  }

  accept(connection: Connection): ConnectionHandlers {
    const peer = connection.remoteAddress;
    // A connection accepted while closing (the listener's close is not instant, and a pool's
    // workers share one queue) is served, not reset: the web server already sent it a request,
    // and a reset would be a 502. It closes after that request (see AppSocket).
    if (this.#allow && peer !== "" && !this.#allow.allows(peer)) {
      this.log.warn("allow", `refused a connection from ${peer}: not in the allowed web server addresses`);
      connection.destroy();
      return IGNORE;
    }
    if (this.#sockets.size >= this.options.maxConnections) {
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
      this.log.warn("maxRequests", `maxRequests (${this.options.maxRequests}) running: answering OVERLOADED`);
      return false;
    }
    this.#requests++;
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
    this.#resolveFinished();
  }

  #sweep(): void {
    const now = Date.now();
    const timed = this.options.requestTimeout !== Infinity;
    // Requests are timed on the monotonic clock (see RequestTask.startedAt).
    const clock = timed ? performance.now() : 0;
    for (const socket of this.#sockets) {
      if (socket.deadline !== 0 && now >= socket.deadline) socket.expire();
      if (timed && socket.activeRequests > 0) socket.expireRequests(clock);
    }
  }
}
