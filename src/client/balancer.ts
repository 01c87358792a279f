/**
 * A Client's backends: which one takes each request (least outstanding requests, or weighted
 * round-robin), which are down (passive health: a refused, reset or silent backend is left out
 * for a backoff that doubles while it keeps failing; optional GET_VALUES probes), and failover
 * by nginx's fastcgi_next_upstream rules: a request that never reached a backend goes on to the
 * next one; one a backend may have started goes on only if ClientRequest.resendable says so.
 * @module
 */
import { formatAddress } from "../address.ts";
import { FastCGIError } from "../errors.ts";
import type { SocketAddress } from "../socket.ts";
import type { Pool, PoolStats } from "./pool.ts";
import type { ClientRequest } from "./request.ts";

/** How the next backend is chosen: fewest requests in flight (per weight), or in turn (by weight). */
export type BalanceMode = "least" | "round-robin";

/** What the balancer needs of its settings. */
export interface BalancerOptions {
  mode: BalanceMode;
  /** How long a backend is left out after its first failure (ms); doubled on each failure that follows. */
  backoff: number;
  /** The longest a backend is left out at a time (ms). */
  maxBackoff: number;
  /** Probe every backend with GET_VALUES this often (ms); 0: no probes. */
  healthCheck: number;
  /** How long a probe may wait for its answer once connected (ms; the connect has connectTimeout). */
  healthCheckTimeout: number;
}

/** One backend's counters, as Client.stats() gives them. */
export interface BackendStats extends PoolStats {
  /** The backend's address, as text. */
  address: string;
  /** Its share of the requests against the other backends' (default 1). */
  weight: number;
  /** "down" while it is left out after a failure. */
  state: "up" | "down";
  /** Requests sent to it (a request that fails over counts on each backend it reached). */
  requests: number;
  /** Failed attempts: refused or failed connects, connections reset or closed under a request, timeouts. */
  failures: number;
  /** Requests that failed here and went on to another backend. */
  retries: number;
  /** Requests queued or in flight on it now. */
  outstanding: number;
  /** While down: milliseconds until it is tried again (0: a request or probe may try it now). */
  retryIn: number;
  /** While down: how long this down spell leaves it out (ms); it doubles while the backend keeps failing. */
  backoff: number;
  /** The last failure, as text; null when it never failed. */
  lastError: string | null;
}

/** A backend's health and counters; the Pool updates the counters, the Balancer the state. */
export class Health {
  readonly weight: number;
  requests = 0;
  failures = 0;
  retries = 0;
  outstanding = 0;
  down = false;
  /** While down: when it may be tried again (Date.now()). */
  retryAt = 0;
  /** The backoff of the current down spell; it doubles on each failure while down. */
  backoff = 0;
  /** The one request let through to a down backend past its backoff, to see whether it is back. */
  trial: ClientRequest | null = null;
  lastError: string | null = null;
  /** Weighted round-robin: the running score (nginx's smooth weighted round-robin). */
  current = 0;

  constructor(weight: number) {
    this.weight = weight;
  }
}

/** Spreads requests over backends, each a Pool; with one backend it is a pass-through. */
export class Balancer {
  readonly pools: readonly Pool[];
  readonly #options: BalancerOptions;
  /** Backends a failing-over request already tried (only requests that failed somewhere are here). */
  readonly #tried = new WeakMap<ClientRequest, Set<Pool>>();
  /** Where a tie among least-loaded backends starts, so that ties go round. */
  #next = 0;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(pools: readonly Pool[], options: BalancerOptions) {
    this.pools = pools;
    this.#options = options;
    for (const pool of pools) pool.owner = this;
    if (options.healthCheck > 0 && pools.length > 1) this.#scheduleProbes();
  }

  /** The backend for a new request (past `tried`), or null when none is up. */
  pick(tried?: Set<Pool>): Pool | null {
    const pools = this.pools;
    if (pools.length === 1) return tried?.has(pools[0]!) ? null : pools[0]!;
    const now = Date.now();
    // A down backend whose backoff is over gets the next request, alone, to see whether it is back.
    for (const pool of pools) {
      const health = pool.health;
      if (health.down && health.trial === null && now >= health.retryAt && !tried?.has(pool)) return pool;
    }
    return this.#options.mode === "least" ? this.#least(tried) : this.#roundRobin(tried);
  }

  #least(tried: Set<Pool> | undefined): Pool | null {
    const pools = this.pools;
    const n = pools.length;
    let best: Pool | null = null;
    let bestLoad = Infinity;
    const start = this.#next;
    for (let i = 0; i < n; i++) {
      const pool = pools[(start + i) % n]!;
      const health = pool.health;
      if (health.down || tried?.has(pool)) continue;
      const load = health.outstanding / health.weight;
      if (load < bestLoad) {
        best = pool;
        bestLoad = load;
      }
    }
    this.#next = (start + 1) % n;
    return best;
  }

  /** nginx's smooth weighted round-robin: weights 5,1,1 go a a b a c a a, not a a a a a b c. */
  #roundRobin(tried: Set<Pool> | undefined): Pool | null {
    let best: Pool | null = null;
    let total = 0;
    for (const pool of this.pools) {
      const health = pool.health;
      if (health.down || tried?.has(pool)) continue;
      health.current += health.weight;
      total += health.weight;
      if (best === null || health.current > best.health.current) best = pool;
    }
    if (best !== null) best.health.current -= total;
    return best;
  }

  /** What a request gets when no backend is up. */
  unavailable(): FastCGIError {
    const now = Date.now();
    const each = this.pools.map((p) => `${formatAddress(p.address)} (${p.health.lastError ?? "down"}; tried again in ${Math.max(0, p.health.retryAt - now)} ms)`);
    return new FastCGIError("UNAVAILABLE", `no FastCGI backend is up: ${each.join(", ")}`);
  }

  /**
   * An attempt of `request` on `pool` failed with `error`: the backend is marked down, and the
   * request goes on to a backend it has not tried when it may (`started`: BEGIN_REQUEST may
   * have reached the backend). True when another backend took the request.
   */
  failed(pool: Pool, request: ClientRequest | null, error: unknown, started: boolean): boolean {
    this.#markDown(pool, request, error);
    if (request === null || request.finished || this.#closed) return false;
    if (started && !request.resendable) return false;
    return this.#moveOn(pool, request);
  }

  /** A request answered by a down backend, or a probe it answered: it is up again. */
  recovered(pool: Pool): void {
    const health = pool.health;
    if (!health.down) return;
    health.down = false;
    health.trial = null;
    health.backoff = 0;
    // Start level with the others: a returning backend does not take a burst of turns at once.
    health.current = 0;
  }

  #markDown(pool: Pool, request: ClientRequest | null, error: unknown): void {
    const health = pool.health;
    health.failures++;
    health.lastError = error instanceof Error ? error.message : String(error);
    const trial = health.trial;
    if (trial !== null && trial === request) health.trial = null;
    // As nginx does with a single server: one backend is never left out, there is no other.
    if (this.pools.length === 1) return;
    const now = Date.now();
    // Requests it had in flight when it went down fail one after the other: one failure, one
    // backoff. Only a failed trial (or probe) once the backoff is over makes it longer.
    if (health.down && (now < health.retryAt || (health.trial !== null && request !== trial))) return;
    const { backoff, maxBackoff } = this.#options;
    health.backoff = health.down ? Math.min(maxBackoff, health.backoff * 2) : backoff;
    health.down = true;
    health.retryAt = now + health.backoff;
    // Requests still queued for it never reached it: they go elsewhere now, not after queueTimeout.
    for (const queued of pool.evacuate()) {
      if (!this.#moveOn(pool, queued)) queued.fail(error);
    }
  }

  #moveOn(from: Pool, request: ClientRequest): boolean {
    let tried = this.#tried.get(request);
    if (tried === undefined) this.#tried.set(request, (tried = new Set()));
    tried.add(from);
    const next = this.pick(tried);
    if (next === null) return false;
    from.health.retries++;
    from.ended(request);
    request.retries++;
    next.submit(request);
    return true;
  }

  // ---- active health checks ------------------------------------------------------------------

  #scheduleProbes(): void {
    this.#probeTimer = setTimeout(() => {
      void Promise.all(this.pools.map((pool) => this.#probe(pool))).then(() => {
        if (!this.#closed) this.#scheduleProbes();
      });
    }, this.#options.healthCheck);
  }

  async #probe(pool: Pool): Promise<void> {
    try {
      await pool.values(undefined, this.#options.healthCheckTimeout);
    } catch (error) {
      if (!this.#closed) this.failed(pool, null, error, false);
      return;
    }
    this.recovered(pool);
  }

  /** Stops the probes. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
  }

  /** Each backend's counters. */
  stats(): BackendStats[] {
    const now = Date.now();
    return this.pools.map((pool) => {
      const h = pool.health;
      return {
        address: formatAddress(pool.address),
        weight: h.weight,
        state: h.down ? "down" : "up",
        requests: h.requests,
        failures: h.failures,
        retries: h.retries,
        outstanding: h.outstanding,
        retryIn: h.down ? Math.max(0, h.retryAt - now) : 0,
        backoff: h.down ? h.backoff : 0,
        lastError: h.lastError,
        ...pool.stats(),
      };
    });
  }
}
