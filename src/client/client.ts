/**
 * The FastCGI client: sends Web-standard Requests to a FastCGI backend (PHP-FPM, or any FastCGI
 * application) over pooled connections and answers with streaming Responses.
 * @module
 */
import { formatAddress, parseAddress } from "../address.ts";
import { FastCGIError } from "../errors.ts";
import { Role, roleFromName, type RoleName } from "../protocol/constants.ts";
import { connectingWith, getRuntime, detectRuntime, type RuntimeName } from "../runtime/index.ts";
import type { Runtime, TlsClientOptions } from "../runtime/types.ts";
import type { SocketAddress } from "../socket.ts";
import { DEFAULT_MAX_HEADER_BYTES } from "./cgi_response.ts";
import type { InputSource } from "./input.ts";
import { abortReason, ClientRequest, type RequestHead } from "./request.ts";
import type { StderrInfo } from "./stderr.ts";
import { numberOption } from "../validate.ts";
import { requestParams, type ParamsOptions } from "./params.ts";
import { Pool, type BackendLimits, type PoolStats } from "./pool.ts";
import { Balancer, type BackendStats, type BalanceMode } from "./balancer.ts";

export type { StderrInfo } from "./stderr.ts";
export type { BackendLimits, PoolStats } from "./pool.ts";
export type { BackendStats, BalanceMode } from "./balancer.ts";

/**
 * One backend: a SocketAddress, text such as `127.0.0.1:9000`, `[::1]:9000`,
 * `unix:/run/php/php-fpm.sock`, or either with a weight (default 1): its share of the requests
 * against the other backends'.
 */
export type BackendAddress = SocketAddress | string | { address: SocketAddress | string; weight?: number };

/** {@link Client.stats}: the counts over every backend, and each backend's own. */
export interface ClientStats extends PoolStats {
  /** Each backend, in the order given: its state, counters and connections (`limits` is the first backend's). */
  backends: BackendStats[];
}

/** Options of {@link Client}. Times are in milliseconds; 0 turns a timeout off. */
export interface ClientOptions {
  /**
   * The backend, or several: requests are spread over them ({@link balance}), and a backend that
   * refuses or resets connections or times out is left out for a while ({@link backoff}), its
   * requests going on to the next one (see {@link Client.fetch}). A single backend is never left out.
   */
  address: BackendAddress | readonly BackendAddress[];
  /**
   * How a request picks its backend: "least" (default), the one with the fewest requests queued
   * or in flight for its weight; "round-robin", each in turn, as often as its weight says.
   */
  balance?: BalanceMode;
  /**
   * How long a failed backend is left out (default 1000): after it, one request (or a health
   * check) tries it again; each failure that follows doubles the time, up to maxBackoff.
   */
  backoff?: number;
  /** The longest a failed backend is left out at a time (default 30 000). */
  maxBackoff?: number;
  /**
   * Ask each backend for its values (GET_VALUES) this often, on a connection of its own, and mark
   * it down when it refuses the connection, does not connect within connectTimeout, or does not
   * answer within 3000 ms (PHP-FPM answers from a worker: a pool whose workers are all busy that
   * long is marked down too),
   * up when it answers (default 0: no checks, a down backend is tried again with a request).
   * With several backends only.
   */
  healthCheck?: number;
  /**
   * Connections opened at most to each backend (default 8). Lowered to the backend's FCGI_MAX_CONNS when it tells
   * one: PHP-FPM answers pm.max_children, and a kept connection holds a PHP-FPM worker.
   */
  maxConnections?: number;
  /** Send FCGI_KEEP_CONN and reuse connections (default true). Without it each request opens its own. */
  keepConn?: boolean;
  /**
   * Several requests per connection: "auto" (default) when the backend answers FCGI_MPXS_CONNS=1;
   * true always (the backend then answers CANT_MPX_CONN if it cannot); false never. Needs keepConn.
   */
  multiplex?: "auto" | boolean;
  /** Time to establish a connection (default 10 000). */
  connectTimeout?: number;
  /**
   * How long the backend may stay silent (default 60 000): before the response headers, and
   * between records while the response body is read. The request is then aborted.
   */
  responseTimeout?: number;
  /** How long a request may wait for a free connection (default 30 000). */
  queueTimeout?: number;
  /** How long an unused kept connection stays open (default 60 000). */
  idleTimeout?: number;
  /** Largest CGI header block of a response (default 64 KiB). */
  maxHeaderBytes?: number;
  /**
   * On a multiplexed connection, how many bytes of one response may wait for a consumer that does
   * not read before that response fails (default 4 MiB): reading goes on for the other requests.
   */
  maxResponseBuffer?: number;
  /**
   * A request body of unknown length (no Content-Length header, no CONTENT_LENGTH param) is read
   * into memory to learn its length, which CGI needs; larger bodies fail (default 8 MiB).
   * Bodies of known length are streamed, never buffered.
   */
  maxBufferedBody?: number;
  /** Receives what the backend writes to FCGI_STDERR (PHP's error_log()). Default: console.error with a prefix. */
  onStderr?: (message: string, info: StderrInfo) => void;
  /** The socket adapter: a Runtime, or "node" | "deno" | "bun" (default: the one this code runs on). */
  runtime?: Runtime | RuntimeName;
  /** Connect over TLS: the CA to trust, and a client certificate for a server that asks for one. */
  tls?: TlsClientOptions;
}

/** Per-request options of {@link Client.fetch}: where the script is, and params to add or override. */
export interface FetchOptions extends ParamsOptions {
  /** The FastCGI role (default "responder"). An authorizer gets no request body. */
  role?: RoleName;
  /** The Filter role's FCGI_DATA stream (the file to filter); FCGI_DATA_LENGTH is set from it. */
  data?: Uint8Array | string | Blob;
  /** FCGI_DATA_LAST_MOD (Filter role): a Date, or seconds since the epoch. A File's lastModified otherwise. */
  dataLastModified?: Date | number;
}

const DEFAULTS = {
  maxConnections: 8,
  connectTimeout: 10_000,
  responseTimeout: 60_000,
  queueTimeout: 30_000,
  idleTimeout: 60_000,
  backoff: 1000,
  maxBackoff: 30_000,
  maxResponseBuffer: 4 * 1024 * 1024,
  maxBufferedBody: 8 * 1024 * 1024,
} as const;

/** The longest the first request waits for the backend's limits (GET_VALUES) before going on without. */
const VALUES_PROBE_TIMEOUT = 3000;

const utf8 = new TextEncoder();

/**
 * A FastCGI client with a connection pool: `fetch()` a Request from PHP-FPM or any FastCGI
 * application and get a Response whose body streams as the backend writes it.
 *
 * The first request asks the backend for its limits (GET_VALUES) on a connection of its own:
 * connections are capped at FCGI_MAX_CONNS, and multiplexed when FCGI_MPXS_CONNS=1 (in "auto").
 * Close the client when done ({@link close}, or `await using`): kept connections hold the process open.
 *
 * @example
 * ```ts
 * import { Client } from "fcgi";
 *
 * await using php = new Client({ address: "unix:/run/php/php8.2-fpm.sock" });
 * const response = await php.fetch(new Request("http://localhost/index.php?name=world"), {
 *   documentRoot: "/var/www/html",
 * });
 * console.log(response.status, await response.text());
 * ```
 */
export class Client implements AsyncDisposable {
  /** The (first) backend's address. */
  readonly address: SocketAddress;
  /** Every backend's address, in the order given. */
  readonly addresses: readonly SocketAddress[];
  readonly #balancer: Balancer;
  readonly #responseTimeout: number;
  readonly #maxBufferedBody: number;
  #runtime: Promise<Runtime> | null = null;

  /** A client for the application(s) at `options.address`; it connects on the first request. */
  constructor(options: ClientOptions) {
    const backends = parseBackends(options.address);
    this.addresses = backends.map((b) => b.address);
    this.address = this.addresses[0]!;
    const runtime = options.runtime;
    const tls = options.tls;
    const runtimeOf = () => (this.#runtime ??= (typeof runtime === "object" ? Promise.resolve(runtime) : runtime !== undefined ? getRuntime(runtime) : detectRuntime()).then((r) => (tls ? connectingWith(r, { tls }) : r)));
    const maxConnections = Math.floor(numberOption("Client: maxConnections", options.maxConnections, DEFAULTS.maxConnections, 1, true));
    this.#responseTimeout = numberOption("Client: responseTimeout", options.responseTimeout, DEFAULTS.responseTimeout, 0, true);
    this.#maxBufferedBody = numberOption("Client: maxBufferedBody", options.maxBufferedBody, DEFAULTS.maxBufferedBody, 0, true);
    const multiplex = options.multiplex ?? "auto";
    if (multiplex !== "auto" && multiplex !== true && multiplex !== false) throw new TypeError(`multiplex must be "auto", true or false`);
    const balance = options.balance ?? "least";
    if (balance !== "least" && balance !== "round-robin") throw new TypeError(`balance must be "least" or "round-robin", got ${JSON.stringify(balance)}`);
    const connectTimeout = numberOption("Client: connectTimeout", options.connectTimeout, DEFAULTS.connectTimeout, 0, true);
    const valuesTimeout = this.#responseTimeout > 0 ? Math.min(this.#responseTimeout, VALUES_PROBE_TIMEOUT) : VALUES_PROBE_TIMEOUT;
    const common = {
      runtime: runtimeOf,
      maxConnections,
      keepConn: options.keepConn ?? true,
      multiplex,
      connectTimeout,
      queueTimeout: numberOption("Client: queueTimeout", options.queueTimeout, DEFAULTS.queueTimeout, 0, true),
      idleTimeout: numberOption("Client: idleTimeout", options.idleTimeout, DEFAULTS.idleTimeout, 0, true),
      valuesTimeout,
    };
    const maxHeaderBytes = Math.floor(numberOption("Client: maxHeaderBytes", options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES, 1, true));
    const maxResponseBuffer = numberOption("Client: maxResponseBuffer", options.maxResponseBuffer, DEFAULTS.maxResponseBuffer, 0, true);
    const pools = backends.map(({ address, weight }) => {
      const where = formatAddress(address);
      const onStderr = options.onStderr ?? ((message: string, info: StderrInfo) => {
        console.error(`fcgi: stderr from ${where} (requestId ${info.requestId}): ${message.replace(/\r?\n$/, "")}`);
      });
      return new Pool({
        ...common,
        address,
        weight,
        settings: { keepConn: common.keepConn, responseTimeout: this.#responseTimeout, maxHeaderBytes, maxResponseBuffer, onStderr },
      });
    });
    const backoff = numberOption("Client: backoff", options.backoff, DEFAULTS.backoff, 1, true);
    this.#balancer = new Balancer(pools, {
      mode: balance,
      backoff,
      maxBackoff: Math.max(backoff, numberOption("Client: maxBackoff", options.maxBackoff, DEFAULTS.maxBackoff, 1, true)),
      healthCheck: numberOption("Client: healthCheck", options.healthCheck, 0, 0, true),
      healthCheckTimeout: valuesTimeout,
    });
  }

  /**
   * Sends a request to the backend; resolves with the Response once its CGI headers arrived, and
   * the body streams from there. The params are built from the request (see {@link FetchOptions}
   * for the script's location); `request.signal` aborts it (ABORT_REQUEST is sent).
   *
   * Rejects with a FastCGIError: REQUEST_REFUSED (a RequestRefusedError: OVERLOADED, UNKNOWN_ROLE,
   * CANT_MPX_CONN), BAD_RESPONSE (malformed CGI output), CONNECTION_CLOSED (the backend went away;
   * the same error fails a body cut short), TIMEOUT (connectTimeout, responseTimeout,
   * queueTimeout), LIMIT_EXCEEDED, UNAVAILABLE (every backend is down: at once, without trying
   * one); with the runtime's connect error (code ECONNREFUSED, ENOENT, …); or with the signal's
   * reason (an AbortError).
   *
   * With several backends, a request whose BEGIN_REQUEST never reached its backend (the connect
   * failed or timed out) goes on to the next backend; one the backend may have started (the
   * connection closed or reset under it, or responseTimeout) goes on only when its method is
   * idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), no response was handed out yet, and its
   * body is not streamed from the caller (a body of unknown length, read into memory, is resent;
   * one with a Content-Length is streamed, and never sent twice). Each backend is tried once.
   *
   * @example
   * ```ts
   * import { Client } from "fcgi";
   *
   * const client = new Client({ address: "unix:/run/php/php8.2-fpm.sock" });
   * const form = new FormData();
   * form.set("name", "world");
   * const response = await client.fetch(new Request("http://example.com/upload.php", { method: "POST", body: form }), {
   *   scriptFilename: "/srv/www/upload.php",
   *   params: { REMOTE_ADDR: "203.0.113.7" },
   * });
   * ```
   */
  fetch(input: Request | string | URL, options: FetchOptions = {}): Promise<Response> {
    let role: number;
    try {
      role = roleNumber(options.role);
    } catch (error) {
      return Promise.reject(error);
    }
    // A bare URL is a GET without headers: no Request object needed (URL checked by requestParams).
    if (!(input instanceof Request)) {
      const url = typeof input === "string" ? input : String(input);
      return this.#send({ method: "GET", url, headers: null, signal: null, request: null }, options, role, { kind: "none" }, null);
    }
    const request = input;
    const signal = request.signal;
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const head: RequestHead = { method: request.method, url: request.url, headers: request.headers, signal, request };
    const body = role === Role.AUTHORIZER ? null : request.body;
    if (body === null) return this.#send(head, options, role, { kind: "none" }, null);
    if (request.bodyUsed) return Promise.reject(new TypeError("the request body was already read"));
    const declared = declaredLength(request, options);
    if (declared !== null) return this.#send(head, options, role, { kind: "stream", stream: body, length: declared }, declared);
    return this.#buffered(head, options, role, body);
  }

  /**
   * Asks the backend for its values with GET_VALUES, on a connection of its own (default names:
   * FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). Resolves with what it answered (names it
   * does not know are missing); rejects when it answers nothing within responseTimeout.
   *
   * @example
   * ```ts
   * import { Client } from "fcgi";
   *
   * const client = new Client({ address: "127.0.0.1:9000" });
   * const values = await client.values(); // { FCGI_MAX_CONNS: "5", FCGI_MAX_REQS: "5", FCGI_MPXS_CONNS: "0" }
   * ```
   */
  values(names?: readonly string[]): Promise<Record<string, string>> {
    return this.#upPool().values(names, this.#responseTimeout);
  }

  /** The backend's limits as the pool applies them (asks with GET_VALUES the first time); of the first backend that is up. */
  limits(): Promise<BackendLimits> {
    return this.#upPool().limits();
  }

  /**
   * Connections and requests now, over every backend (open, idle, active, queued; `limits` of the
   * first backend), and each backend's in `backends`: up or down, requests, failures, retries,
   * outstanding requests, connections.
   */
  stats(): ClientStats {
    const backends = this.#balancer.stats();
    const total: ClientStats = { connections: 0, connecting: 0, idle: 0, active: 0, queued: 0, limits: backends[0]!.limits, backends };
    for (const b of backends) {
      total.connections += b.connections;
      total.connecting += b.connecting;
      total.idle += b.idle;
      total.active += b.active;
      total.queued += b.queued;
    }
    return total;
  }

  /** The first backend that is up (the first one when none is). */
  #upPool(): Pool {
    const pools = this.#balancer.pools;
    return pools.find((pool) => !pool.health.down) ?? pools[0]!;
  }

  /**
   * Rejects queued requests and later ones, closes idle connections, and resolves once the
   * requests in flight are done (their bodies read or cancelled) and every connection is closed.
   */
  async close(): Promise<void> {
    this.#balancer.close();
    await Promise.all(this.#balancer.pools.map((pool) => pool.close()));
  }

  /** `await using client = new Client(…)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #send(request: RequestHead, options: FetchOptions, role: number, stdin: InputSource, contentLength: number | null): Promise<Response> {
    let pending: ClientRequest;
    const pool = this.#balancer.pick();
    if (pool === null) return Promise.reject(this.#balancer.unavailable());
    try {
      const extra: Array<readonly [string, string | Uint8Array]> = [];
      const data = role === Role.FILTER ? filterData(options, extra) : { kind: "none" as const };
      if (options.params !== undefined) {
        const params = options.params;
        for (const pair of Symbol.iterator in params ? params as Iterable<readonly [string, string | Uint8Array]> : Object.entries(params)) extra.push(pair);
      }
      const params = requestParams(request, extra.length > 0 ? { ...options, params: extra } : options, role === Role.AUTHORIZER ? null : contentLength);
      pending = new ClientRequest(pool, request, role, params, stdin, data);
    } catch (error) {
      return Promise.reject(error);
    }
    pool.submit(pending);
    return pending.response;
  }

  /** A body of unknown length: read it (up to maxBufferedBody) to tell CONTENT_LENGTH. */
  async #buffered(request: RequestHead, options: FetchOptions, role: number, body: ReadableStream<Uint8Array>): Promise<Response> {
    const limit = this.#maxBufferedBody;
    const chunks: Uint8Array[] = [];
    let length = 0;
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        length += value.length;
        if (length > limit) {
          throw new FastCGIError(
            "LIMIT_EXCEEDED",
            `a request body without Content-Length is read into memory to learn its length, and this one exceeds ${limit} bytes (maxBufferedBody): set Content-Length to stream it`,
            { limit: "maxBufferedBody" },
          );
        }
        chunks.push(value);
      }
    } catch (error) {
      reader.cancel(error).catch(() => {});
      throw error;
    } finally {
      reader.releaseLock();
    }
    if (request.signal!.aborted) throw abortReason(request.signal!);
    return await this.#send(request, options, role, { kind: "bytes", chunks, length }, length);
  }
}

function roleNumber(role: FetchOptions["role"]): number {
  if (role === undefined) return Role.RESPONDER;
  const number = roleFromName(role);
  if (number === undefined) throw new TypeError(`role must be "responder", "authorizer" or "filter", got ${JSON.stringify(role)}`);
  return number;
}

/** CONTENT_LENGTH as the caller's params or the Content-Length header give it, or null. */
function declaredLength(request: Request, options: FetchOptions): number | null {
  let text: string | null = request.headers.get("content-length");
  const params = options.params;
  if (params !== undefined) {
    if (Symbol.iterator in params) {
      for (const [name, value] of params as Iterable<readonly [string, string | Uint8Array]>) if (name === "CONTENT_LENGTH" && typeof value === "string") text = value;
    } else if (typeof (params as Record<string, unknown>).CONTENT_LENGTH === "string") {
      text = (params as Record<string, string>).CONTENT_LENGTH!;
    }
  }
  if (text === null || !/^\d{1,15}$/.test(text.trim())) return null;
  return Number(text.trim());
}

/** The Filter role's DATA stream and its params (FCGI_DATA_LENGTH, FCGI_DATA_LAST_MOD). */
function filterData(options: FetchOptions, extra: Array<readonly [string, string | Uint8Array]>): InputSource {
  const data = options.data ?? new Uint8Array(0);
  let source: InputSource;
  let lastModified: number | undefined;
  if (typeof data === "string" || data instanceof Uint8Array) {
    const bytes = typeof data === "string" ? utf8.encode(data) : data;
    source = { kind: "bytes", chunks: [bytes], length: bytes.length };
  } else {
    source = { kind: "stream", stream: data.stream(), length: data.size };
    if (typeof (data as File).lastModified === "number") lastModified = Math.floor((data as File).lastModified / 1000);
  }
  const given = options.dataLastModified;
  if (given !== undefined) lastModified = given instanceof Date ? Math.floor(given.getTime() / 1000) : Math.floor(given);
  extra.push(["FCGI_DATA_LENGTH", String(source.length)]);
  if (lastModified !== undefined) extra.push(["FCGI_DATA_LAST_MOD", String(lastModified)]);
  return source;
}

/** The backends of ClientOptions.address, checked. */
function parseBackends(given: ClientOptions["address"]): Array<{ address: SocketAddress; weight: number }> {
  const list = Array.isArray(given) ? given as readonly BackendAddress[] : [given as BackendAddress];
  if (list.length === 0) throw new TypeError("Client: address is an empty list (give at least one backend)");
  return list.map((entry) => {
    const weighted = typeof entry === "object" && entry !== null && "address" in entry;
    const text = weighted ? entry.address : entry;
    const address = typeof text === "string" ? parseAddress(text) : text;
    if (address.transport === "fd") throw new TypeError("a Client connects to a TCP or Unix address, not fd:0");
    const weight = weighted ? numberOption(`Client: weight of ${formatAddress(address)}`, entry.weight, 1, 1, true) : 1;
    return { address, weight };
  });
}
