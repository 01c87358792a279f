/**
 * The public shapes of the application side: handlers, their context, serve() options, the
 * server handle, and the logger.
 * @module
 */
import type { Params } from "../codec/pairs.ts";
import type { Role } from "../protocol/constants.ts";
import type { Runtime, TlsServerOptions } from "../runtime/types.ts";
import type { SocketAddress } from "../socket.ts";
import type { PoolStatus } from "../status/types.ts";
import type { AccessEntry } from "./access_log.ts";

/**
 * Handles one request in one role. Return (or resolve to) the Response to send.
 *
 * @example
 * ```ts
 * const fetch: Handler = (request, context) =>
 *   new Response(`hello ${context.params.get("REMOTE_ADDR")} from ${new URL(request.url).pathname}`);
 * ```
 */
export type Handler = (request: Request, context: RequestContext) => Response | Promise<Response>;

/** Writes FCGI_STDERR records for one request (the web server usually logs them). */
export interface StderrWriter {
  /** Queues text (sent as UTF-8) or bytes; ignored once the request has ended. */
  write(data: string | Uint8Array): void;
  /** The same output as a WritableStream, for piping. */
  readonly writable: WritableStream<string | Uint8Array>;
}

/** The socket a request arrived on (the web server's connection, not the HTTP client's). */
export interface SocketInfo {
  /** The web server's address ("" for Unix sockets). */
  readonly remoteAddress: string;
  /** The web server's port (0 for Unix sockets). */
  readonly remotePort: number;
  /** This side's address (the socket path for Unix sockets). */
  readonly localAddress: string;
  /** This side's port (0 for Unix sockets). */
  readonly localPort: number;
}

/** Everything about a request that is not in the Request object. */
export interface RequestContext {
  /** Every CGI param as the web server sent it (names and values are latin1-decoded bytes). */
  readonly params: Params;
  /** The role of this request (Role.RESPONDER, Role.AUTHORIZER or Role.FILTER). */
  readonly role: Role;
  /** The FastCGI requestId (unique among the active requests of one connection). */
  readonly requestId: number;
  /** True when the web server keeps the connection for further requests (FCGI_KEEP_CONN). */
  readonly keepConn: boolean;
  /** The HTTP client's address (REMOTE_ADDR), else the web server's. */
  readonly remoteAddress: string;
  /** The HTTP client's port (REMOTE_PORT), else the web server's. */
  readonly remotePort: number;
  /** The address the HTTP client connected to (SERVER_ADDR), else this socket's. */
  readonly serverAddress: string;
  /** The port the HTTP client connected to (SERVER_PORT), else this socket's. */
  readonly serverPort: number;
  /** The FastCGI connection itself. */
  readonly socket: SocketInfo;
  /** FCGI_STDERR output for this request. */
  readonly stderr: StderrWriter;
  /** Filter role: the file to filter (FCGI_DATA); null in other roles. */
  readonly data: ReadableStream<Uint8Array> | null;
  /** Filter role: FCGI_DATA_LENGTH, when given. */
  readonly dataLength: number | undefined;
  /** Filter role: FCGI_DATA_LAST_MOD (seconds since the epoch) as a Date, when given. */
  readonly dataLastModified: Date | undefined;
  /** Aborts like `request.signal`; here for handlers that do not look at the request. */
  readonly signal: AbortSignal;
}

/** Where serve() listens: a SocketAddress, or "host:port", "[::1]:port", ":port", "unix:/path". */
export type ListenAddress = SocketAddress | string;

/** Where log lines go. Each call gets one line without a trailing newline. */
export interface Logger {
  /** Startup and shutdown notes. */
  info(message: string): void;
  /** A limit was hit, a connection refused, a request rejected. */
  warn(message: string): void;
  /** A handler failed, a connection broke. */
  error(message: string): void;
}

/** Safety limits. Every one has a default; each hit is logged. */
export interface Limits {
  /** Largest PARAMS stream of one request, in bytes (default 1 MiB). */
  maxParamsBytes?: number;
  /** Most simultaneous connections (FCGI_MAX_CONNS), over TLS those in their handshake too; more are closed at once (default 1024). */
  maxConnections?: number;
  /** Most simultaneous requests over all connections (FCGI_MAX_REQS); more get OVERLOADED (default 1024). */
  maxRequests?: number;
  /**
   * Milliseconds within which a request's PARAMS must be complete, counted from the
   * connection's start or from the first bytes after it was idle (default 10 000).
   */
  paramsTimeout?: number;
  /** Milliseconds a kept-open connection may sit without a request (default 60 000). */
  idleTimeout?: number;
  /** Largest request body (STDIN) in bytes; over it the request gets 413 (default: no limit). */
  maxBodyBytes?: number;
  /**
   * Largest unread input (STDIN or DATA) one request may buffer while other requests on the
   * same connection keep it flowing; over it that request is ended (default 1 MiB).
   */
  maxBufferedBytes?: number;
  /**
   * Most output bytes one connection may have waiting for the web server to read them (default
   * 1 MiB). Past it the connection stops reading (new requests, management records) until the
   * peer drains it; requests already running go on streaming as the peer reads. The runtime's own
   * socket buffer (16-64 KiB) is the floor: a smaller value acts as that.
   */
  maxUnsentBytes?: number;
  /**
   * Milliseconds a connection over maxUnsentBytes may wait for the peer to drain its output
   * before it is closed, with a log line (default 60 000, as nginx's send_timeout).
   */
  sendTimeout?: number;
  /** Milliseconds close() lets in-flight requests run before cutting them (default 10 000). */
  closeTimeout?: number;
  /**
   * Milliseconds a request may run, from its complete PARAMS to its END_REQUEST, body upload and
   * streamed response included (default Infinity: no limit). Past it the handler's signal fires
   * with a FastCGIError of code TIMEOUT, the web server gets a 504 if no response head went out
   * yet (else the body stops there), then END_REQUEST with appStatus 1. What the handler does
   * afterwards is dropped. This catches a handler that never settles or a body that stalls; an
   * event loop that never comes back (a busy loop) cannot be caught from inside the process.
   */
  requestTimeout?: number;
}

/** Where {@link serve} writes one {@link AccessEntry} per finished request (an {@link AccessLog}, or your own). */
export interface AccessLogSink {
  /** Takes one entry; called on the request's path, so it must be quick (buffer, do not wait). */
  write(entry: AccessEntry): void;
}

/** The status page, the ping page, the slow-request log and the access log (all off by default). */
export interface ObservabilityOptions {
  /**
   * Answer a request whose SCRIPT_NAME or DOCUMENT_URI is this path with the status page, in
   * PHP-FPM's fields and formats (`?json`, `?xml`, `?html`, `?openmetrics`, `&full`), instead of
   * calling a handler (PHP-FPM's `pm.status_path`). It tells where requests are: expose it to your
   * monitoring host only.
   */
  statusPath?: string;
  /** Answer a request whose SCRIPT_NAME or DOCUMENT_URI is this path with `pingResponse` (PHP-FPM's `ping.path`). */
  pingPath?: string;
  /** The ping page's body (default "pong"). While the server closes, the ping page answers 503. */
  pingResponse?: string;
  /** The pool's name on the status page (default "fcgi"). */
  poolName?: string;
  /**
   * Milliseconds after which a request still running is logged once, as slow, and counted in the
   * status page's "slow requests" (PHP-FPM's `request_slowlog_timeout`; default: off).
   */
  slowRequest?: number;
  /** Where to write one entry per finished request (default: nowhere). */
  accessLog?: AccessLogSink;
}

/** Options of {@link serve}. */
export interface ServeOptions extends Limits, ObservabilityOptions {
  /** The responder: answers HTTP requests. Without it, RESPONDER requests get UNKNOWN_ROLE. */
  fetch?: Handler;
  /** The authorizer: 200 allows (Variable-* headers pass on), any other status is the answer. */
  authorize?: Handler;
  /** The filter: reads `context.data` (the file) and answers with the filtered result. */
  filter?: Handler;
  /**
   * Where to listen (one or more). Default: the sockets systemd passed (LISTEN_FDS, when LISTEN_PID
   * is this process), else the socket inherited on file descriptor 0.
   */
  listen?: ListenAddress | readonly ListenAddress[];
  /** The runtime's socket adapter, or its name; default: the one this code runs on. */
  runtime?: Runtime | "node" | "deno" | "bun";
  /** Where log lines go; null for silence. Default: warnings and errors on stderr. */
  logger?: Logger | null;
  /**
   * Web servers allowed to connect over TCP (IPv4, IPv6, CIDR), as a comma-separated string or
   * a list. Default: the FCGI_WEB_SERVER_ADDRS environment variable; unset means any.
   */
  allow?: string | readonly string[];
  /**
   * Serve over TLS with this certificate and key (PEM). With `clientCa`, only web servers whose
   * certificate that CA signed get in (mutual TLS); `allow` still applies on top. A handshake that
   * fails (no certificate, another CA, an expired one, plaintext) closes that connection with a
   * log line. The handshake must end within `paramsTimeout`.
   */
  tls?: TlsServerOptions;
  /** Accept several requests at once on one connection (default true; false answers CANT_MPX_CONN). */
  multiplex?: boolean;
  /** File mode of Unix sockets created by listen (for example 0o660). */
  socketMode?: number;
  /**
   * Hand handlers lightweight Request objects and install the lightweight global Response
   * (as Hono's Node adapter does), so `new Response("text")` costs little and is sent without
   * a stream: 2.4x to 6x fewer microseconds per request on Node, Deno and Bun (see
   * bench/app_objects.ts). Default true. Both still pass `instanceof Request`/`Response`.
   * Set false when the same process also hands Responses to the runtime's own HTTP server
   * (Deno.serve, Bun.serve), which accepts only native ones: then no global is touched and
   * handlers get real Request objects.
   */
  overrideGlobalObjects?: boolean;
  /** Closes the server (gracefully) when aborted. */
  signal?: AbortSignal;
}

/** A running server. */
export interface Server extends AsyncDisposable {
  /** Where it listens (with the real port when 0 was asked for). */
  readonly addresses: readonly SocketAddress[];
  /** Connections open right now. */
  readonly connections: number;
  /** Requests running right now. */
  readonly activeRequests: number;
  /** This server's status page as data (what `statusPath` shows), for one process without a manager. */
  status(): PoolStatus;
  /**
   * Stops accepting, lets in-flight requests finish (up to `closeTimeout`); a connection with no
   * request running is served the one request it may still bring within a second (the web server
   * may have sent it already), and each connection closes after its last answer. Resolves when
   * everything is closed.
   */
  close(): Promise<void>;
  /** Resolves once the server has closed. */
  readonly finished: Promise<void>;
  /**
   * Replaces the TLS certificate, key and client CA for new connections (open ones keep theirs).
   * Throws, changing nothing, when the server has no TLS, the new ones cannot be used, or a client
   * CA would be added or removed (restart for that).
   */
  reloadTls(tls: TlsServerOptions): void;
}
