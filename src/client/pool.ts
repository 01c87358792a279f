/**
 * The connections of one Client to its backend: asks the backend its limits once (GET_VALUES),
 * opens connections up to them, keeps FCGI_KEEP_CONN connections for reuse, spreads requests
 * over multiplexed ones, and queues requests while every connection is busy.
 * @module
 */
import { formatAddress } from "../address.ts";
import { FastCGIError } from "../errors.ts";
import { FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS } from "../protocol/constants.ts";
import type { Runtime } from "../runtime/types.ts";
import type { Connection, SocketAddress } from "../socket.ts";
import type { ClientRequest, RequestHost, RequestSettings } from "./request.ts";
import { BackendSocket, type SocketOwner } from "./socket.ts";
import { Queue } from "../queue.ts";
import { Health } from "./balancer.ts";

/** How the pool behaves (the Client's options, resolved). */
export interface PoolOptions {
  address: SocketAddress;
  /** Its share of requests against the other backends' (1 when alone). */
  weight: number;
  runtime: () => Promise<Runtime>;
  maxConnections: number;
  keepConn: boolean;
  multiplex: "auto" | boolean;
  connectTimeout: number;
  queueTimeout: number;
  idleTimeout: number;
  /** How long the first request waits for the backend's GET_VALUES_RESULT before going on without it. */
  valuesTimeout: number;
  settings: RequestSettings;
}

/** What the pool made of the backend's GET_VALUES_RESULT and the options. */
export interface BackendLimits {
  /** Connections the pool opens at most: maxConnections, lowered to FCGI_MAX_CONNS. */
  maxConnections: number;
  /** Requests in flight at most (FCGI_MAX_REQS; Infinity when not told). */
  maxRequests: number;
  /** Requests share connections. */
  multiplex: boolean;
  /** What the backend answered; null when it did not answer. */
  values: Record<string, string> | null;
}

/** The pool's counts, for monitoring and tests. */
export interface PoolStats {
  /** Open connections (idle or busy), not counting those being opened. */
  connections: number;
  /** Connections being opened. */
  connecting: number;
  /** Open connections without a request. */
  idle: number;
  /** Requests on connections. */
  active: number;
  /** Requests waiting for a connection. */
  queued: number;
  /** The backend's limits, once known. */
  limits: BackendLimits | null;
}

/**
 * A new connection unanswered for this long is taken to wait for a free backend worker. Longer
 * than a quick script's first answer, so that warming up the pool does not churn connections.
 */
const STARVED_AFTER_MS = 100;
/** At most this many requests share one multiplexed connection (requestIds are 16-bit). */
const MAX_PER_SOCKET = 0xffff;

/** What a pool tells the balancer of its backend's health. */
export interface PoolOwner {
  /** An attempt failed (`started`: BEGIN_REQUEST may have reached the backend); true when another backend took the request. */
  failed(pool: Pool, request: ClientRequest | null, error: unknown, started: boolean): boolean;
  /** The backend answered a request: if it was down, it is up again. */
  recovered(pool: Pool): void;
}

/** One backend's connections and queue. */
export class Pool implements RequestHost, SocketOwner {
  readonly settings: RequestSettings;
  /** Its health and counters (the balancer's). */
  readonly health: Health;
  /** Told of failures and recoveries; set by the balancer. */
  owner: PoolOwner | null = null;
  readonly #options: PoolOptions;
  /** Open sockets that still take requests (closing ones are dropped at once). */
  readonly #sockets: Set<BackendSocket> = new Set();
  /** Non-multiplexed kept sockets without a request, most recently used last. */
  #idle: BackendSocket[] = [];
  #connecting = 0;
  readonly #queue = new Queue<ClientRequest>();
  #limits: BackendLimits | null = null;
  #limitsPromise: Promise<BackendLimits> | null = null;
  #closed = false;
  #closeWaiters: Array<() => void> = [];
  #dispatching = false;
  #dispatchAgain = false;
  #queueTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: PoolOptions) {
    this.#options = options;
    this.settings = options.settings;
    this.health = new Health(options.weight);
  }

  /** The backend's address. */
  get address(): SocketAddress {
    return this.#options.address;
  }

  /** Counts of connections and requests now. */
  stats(): PoolStats {
    let active = 0;
    let idle = 0;
    for (const socket of this.#sockets) {
      active += socket.live;
      if (socket.live === 0) idle++;
    }
    return {
      connections: this.#sockets.size,
      connecting: this.#connecting,
      idle,
      active,
      queued: this.#queue.length,
      limits: this.#limits,
    };
  }

  // ---- requests ---------------------------------------------------------------------------

  /** Sends an request as soon as the backend's limits are known and a connection is free. */
  submit(request: ClientRequest): void {
    request.host = this;
    const health = this.health;
    health.requests++;
    health.outstanding++;
    if (health.down) health.trial = request;
    if (this.#closed) return request.fail(closedError());
    if (this.#limits !== null) return this.#enqueue(request);
    this.limits().then(
      () => this.#enqueue(request),
      (error) => this.#unreached(request, error),
    );
  }

  /** BEGIN_REQUEST never reached the backend (no connection): another backend may take the request. */
  #unreached(request: ClientRequest, error: unknown): void {
    if (this.owner === null || !this.owner.failed(this, request, error, false)) request.fail(error);
  }

  failed(request: ClientRequest, error: unknown): boolean {
    return this.owner !== null && this.owner.failed(this, request, error, true);
  }

  ended(request: ClientRequest): void {
    const health = this.health;
    health.outstanding--;
    if (health.trial === request) health.trial = null;
  }

  /** Takes the queued requests out (their backend is down: they go elsewhere). */
  evacuate(): ClientRequest[] {
    return this.#queue.drain().filter((request) => !request.finished);
  }

  /** The backend's limits: asked once with GET_VALUES (a failed connect is not remembered). */
  limits(): Promise<BackendLimits> {
    if (this.#limits !== null) return Promise.resolve(this.#limits);
    this.#limitsPromise ??= this.#probe().then(
      (limits) => (this.#limits = limits),
      (error) => {
        this.#limitsPromise = null;
        throw error;
      },
    );
    return this.#limitsPromise;
  }

  #enqueue(request: ClientRequest): void {
    if (request.finished) return;
    if (this.#closed) return request.fail(closedError());
    request.queuedAt = Date.now();
    this.#queue.push(request);
    this.#dispatch();
    if (!request.finished && this.#queue.length > 0) this.#armQueueTimer();
  }

  retry(request: ClientRequest): void {
    if (request.finished) return;
    if (this.#closed) return request.fail(closedError());
    // Retries go first: they waited their turn once already.
    request.queuedAt = Date.now();
    this.#queue.unshift(request);
    this.#dispatch();
    this.#armQueueTimer();
  }

  multiplexRefused(): void {
    const limits = this.#limits;
    if (limits === null || !limits.multiplex) return;
    // One request per connection from now on; FCGI_MAX_REQS then caps the connections too.
    this.#limits = { ...limits, multiplex: false, maxConnections: Math.min(limits.maxConnections, limits.maxRequests) };
    for (const socket of this.#sockets) {
      socket.multiplex = false;
      if (socket.live === 0 && socket.requests.size === 0 && socket.usable && socket.idleSince > 0) this.#idle.push(socket);
    }
  }

  /** Starts queued requests while connections (or room for new ones) are free. */
  #dispatch(): void {
    // Starting a request may end another synchronously (and call back here): loop instead of nesting.
    if (this.#dispatching) {
      this.#dispatchAgain = true;
      return;
    }
    if (this.#limits === null) return;
    this.#dispatching = true;
    try {
      do {
        this.#dispatchAgain = false;
        const queue = this.#queue;
        let request: ClientRequest | undefined;
        while ((request = queue.peek()) !== undefined) {
          // Read each time: a CANT_MPX_CONN may have turned multiplexing off meanwhile.
          const limits = this.#limits;
          if (request.finished) {
            queue.shift();
            continue;
          }
          // Each connection being opened carries one request already.
          if (limits.multiplex && this.#active() + this.#connecting >= limits.maxRequests) break;
          const socket = this.#pick(limits);
          if (socket !== null) {
            queue.shift();
            socket.idleSince = 0;
            request.start(socket);
            continue;
          }
          if (this.#sockets.size + this.#connecting >= limits.maxConnections) break;
          queue.shift();
          this.#open(request, limits);
        }
      } while (this.#dispatchAgain);
    } finally {
      this.#dispatching = false;
    }
    this.#checkClosed();
  }

  #active(): number {
    let active = 0;
    for (const socket of this.#sockets) active += socket.live;
    return active;
  }

  /** A socket that can take one more request now, or null. */
  #pick(limits: BackendLimits): BackendSocket | null {
    if (!limits.multiplex) {
      while (this.#idle.length > 0) {
        const socket = this.#idle.pop()!;
        if (socket.usable && socket.live === 0) return socket;
      }
      return null;
    }
    let best: BackendSocket | null = null;
    for (const socket of this.#sockets) {
      if (!socket.usable || socket.live >= MAX_PER_SOCKET) continue;
      // A connection that refused to multiplex (CANT_MPX_CONN) carries one request at a time.
      if (!socket.multiplex && socket.requests.size > 0) continue;
      if (best === null || socket.live < best.live) best = socket;
    }
    // Spread the load: while connections may still be opened, a busy one is not the best choice.
    if (best !== null && best.live > 0 && this.#sockets.size + this.#connecting < limits.maxConnections) return null;
    return best;
  }

  /** Opens a connection for `request` (and afterwards for whoever needs it). */
  #open(request: ClientRequest, limits: BackendLimits): void {
    this.#connecting++;
    const socket = new BackendSocket(this, limits.multiplex);
    this.#connect(socket).then(
      () => {
        this.#connecting--;
        socket.multiplex &&= this.#limits!.multiplex;
        // It may have closed already (the backend accepted and hung up): then it is not kept.
        if (!socket.closing) this.#sockets.add(socket);
        if (request.finished) this.#rest(socket);
        else request.start(socket);
        if (!limits.multiplex && this.#options.keepConn) this.#watchFresh(socket);
        this.#dispatch();
      },
      (error) => {
        this.#connecting--;
        this.#unreached(request, error);
        this.#dispatch();
      },
    );
  }

  /** Connects `socket` within connectTimeout; a connection that comes too late is destroyed. */
  async #connect(socket: BackendSocket): Promise<Connection> {
    const { address, connectTimeout } = this.#options;
    const runtime = await this.#options.runtime();
    const connecting = runtime.connect(address, socket);
    let connection: Connection;
    if (connectTimeout > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FastCGIError(
          "TIMEOUT",
          `connect ${formatAddress(address)}: no connection within ${connectTimeout} ms (connectTimeout)`,
          { limit: "connectTimeout" },
        )), connectTimeout);
      });
      try {
        connection = await Promise.race([connecting, timeout]);
      } catch (error) {
        connecting.then((late) => late.destroy(), () => {});
        throw error;
      } finally {
        clearTimeout(timer);
      }
    } else {
      connection = await connecting;
    }
    socket.attach(connection);
    return connection;
  }

  // ---- RequestHost, SocketOwner ------------------------------------------------------------

  finished(_request: ClientRequest, socket: BackendSocket, reuse: boolean): void {
    if (reuse && this.health.down) this.owner?.recovered(this);
    if (!socket.closing && socket.live === 0) {
      const kept = reuse && this.#options.keepConn && socket.usable && !this.#closed && (socket.multiplex || !this.#starved(socket));
      // A non-multiplexed socket with an abandoned request on it was closed by abandon() already;
      // a closing pool does not wait for the END_REQUEST of requests given up on.
      if (!kept && (socket.requests.size === 0 || this.#closed)) socket.close();
      else if (kept) this.#rest(socket);
    }
    this.#dispatch();
  }

  /**
   * True when another connection of ours still waits for the backend's first byte: PHP-FPM
   * does not tell FCGI_MAX_CONNS, and each kept connection holds one of its workers, so with more
   * connections than workers the extra ones wait in the listen backlog until a kept one closes.
   * Closing finished connections then (instead of keeping them) hands the workers on in turn.
   */
  #starved(except: BackendSocket): boolean {
    const now = Date.now();
    for (const socket of this.#sockets) {
      if (socket !== except && !socket.answered && socket.live > 0 && now - socket.connectedAt >= STARVED_AFTER_MS) return true;
    }
    return false;
  }

  /**
   * A new connection still unanswered after STARVED_AFTER_MS may be waiting for a worker that one
   * of our idle kept connections holds: close an idle one so the backend can take the new one.
   */
  #watchFresh(socket: BackendSocket): void {
    setTimeout(() => {
      if (socket.answered || socket.closing || (socket.live === 0 && socket.onValues === null)) return;
      const idle = this.#idle.shift();
      idle?.close();
    }, STARVED_AFTER_MS);
  }

  socketRetired(socket: BackendSocket): void {
    if (!this.#sockets.delete(socket)) return;
    const at = this.#idle.indexOf(socket);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#dispatch();
  }

  /** A kept socket without requests: reused first, closed after idleTimeout. */
  #rest(socket: BackendSocket): void {
    if (this.#closed || !socket.usable) return socket.close();
    socket.idleSince = Date.now();
    if (!socket.multiplex || !this.#limits?.multiplex) this.#idle.push(socket);
    this.#armIdleTimer();
  }

  // ---- GET_VALUES ---------------------------------------------------------------------------

  /**
   * Asks the backend with GET_VALUES on a connection of its own (PHP-FPM closes a connection after
   * answering one, so it never carries requests). Rejects when the backend does not answer.
   */
  async values(names: readonly string[] | undefined, timeout: number): Promise<Record<string, string>> {
    const answer = await this.#ask(names, timeout);
    if ("values" in answer) return answer.values;
    throw answer.error;
  }

  async #ask(names: readonly string[] | undefined, timeout: number): Promise<{ values: Record<string, string> } | { error: FastCGIError }> {
    let settle: (answer: { values: Record<string, string> } | { error: FastCGIError }) => void = () => {};
    const answered = new Promise<{ values: Record<string, string> } | { error: FastCGIError }>((resolve) => (settle = resolve));
    const where = formatAddress(this.#options.address);
    const owner: SocketOwner = {
      socketRetired: () => settle({ error: new FastCGIError("CONNECTION_CLOSED", `${where} closed the connection without answering GET_VALUES`) }),
    };
    const socket = new BackendSocket(owner, false);
    socket.onValues = (values) => settle({ values: values.toObject() });
    socket.onUnknownType = (type) => settle({ error: new FastCGIError("BAD_RESPONSE", `${where} answered GET_VALUES with UNKNOWN_TYPE (type ${type})`) });
    // A failed connect rejects: that is not "no answer".
    await this.#connect(socket);
    socket.core.getValues(names);
    socket.flush();
    // PHP-FPM answers from a worker: one of our idle kept connections may hold the last free one.
    this.#watchFresh(socket);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeout > 0) {
      timer = setTimeout(() => settle({
        error: new FastCGIError("TIMEOUT", `${where} did not answer GET_VALUES within ${timeout} ms`, { limit: "valuesTimeout" }),
      }), timeout);
    }
    const answer = await answered;
    clearTimeout(timer);
    socket.onValues = null;
    socket.onUnknownType = null;
    socket.destroy();
    return answer;
  }

  async #probe(): Promise<BackendLimits> {
    const options = this.#options;
    const answer = await this.#ask(undefined, options.valuesTimeout);
    // No answer is an answer too: the backend does not tell its limits, so none are assumed.
    const values = "values" in answer ? answer.values : null;
    const maxConns = positiveInteger(values?.[FCGI_MAX_CONNS]);
    const maxReqs = positiveInteger(values?.[FCGI_MAX_REQS]);
    const multiplex = options.keepConn && (options.multiplex === true || (options.multiplex === "auto" && values?.[FCGI_MPXS_CONNS] === "1"));
    let maxConnections = Math.min(options.maxConnections, maxConns ?? Infinity);
    const maxRequests = maxReqs ?? Infinity;
    if (!multiplex) maxConnections = Math.min(maxConnections, maxRequests);
    return { maxConnections: Math.max(1, maxConnections), maxRequests, multiplex, values };
  }

  // ---- timers -----------------------------------------------------------------------------

  /** One timer for the whole queue, set for the request that expires first. */
  #armQueueTimer(): void {
    const timeout = this.#options.queueTimeout;
    if (timeout <= 0 || this.#queueTimer !== undefined) return;
    let first = Infinity;
    for (const request of this.#queue) if (!request.finished && request.queuedAt < first) first = request.queuedAt;
    if (first === Infinity) return;
    this.#queueTimer = setTimeout(() => {
      this.#queueTimer = undefined;
      const now = Date.now();
      for (const request of this.#queue) {
        if (!request.finished && now - request.queuedAt >= timeout) {
          request.fail(new FastCGIError(
            "TIMEOUT",
            `no connection to ${formatAddress(this.#options.address)} became free within ${timeout} ms (queueTimeout)`,
            { limit: "queueTimeout" },
          ));
        }
      }
      this.#dispatch();
      this.#armQueueTimer();
    }, Math.max(1, first + timeout - Date.now()));
  }

  /** One timer for every kept socket: closes those idle for idleTimeout. */
  #armIdleTimer(): void {
    const timeout = this.#options.idleTimeout;
    if (timeout <= 0 || this.#idleTimer !== undefined) return;
    let first = Infinity;
    for (const socket of this.#sockets) if (socket.live === 0 && socket.idleSince > 0 && socket.idleSince < first) first = socket.idleSince;
    if (first === Infinity) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const now = Date.now();
      for (const socket of [...this.#sockets]) {
        if (socket.live === 0 && socket.requests.size === 0 && socket.idleSince > 0 && now - socket.idleSince >= timeout) socket.close();
      }
      this.#armIdleTimer();
    }, Math.max(1, first + timeout - Date.now()));
  }

  // ---- closing ----------------------------------------------------------------------------

  /**
   * Rejects queued requests, closes idle connections, and resolves once the requests in flight
   * are done and every connection is closed. Later requests are rejected.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#queueTimer);
      clearTimeout(this.#idleTimer);
      this.#queueTimer = undefined;
      this.#idleTimer = undefined;
      const queued = this.#queue.drain();
      for (const request of queued) request.fail(closedError());
      // Requests given up on (abandoned) are not waited for: a backend may never end them.
      for (const socket of [...this.#sockets]) if (socket.live === 0) socket.close();
      this.#idle = [];
    }
    if (this.#isDrained()) return Promise.resolve();
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  #isDrained(): boolean {
    return this.#sockets.size === 0 && this.#connecting === 0;
  }

  #checkClosed(): void {
    if (!this.#closed || this.#closeWaiters.length === 0 || !this.#isDrained()) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function closedError(): FastCGIError {
  return new FastCGIError("CONNECTION_CLOSED", "the FastCGI client is closed");
}

function positiveInteger(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,9}$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return n > 0 ? n : undefined;
}
