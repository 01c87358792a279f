/**
 * What the protocol layers need from a runtime: its sockets (the {@link Runtime} interface, which
 * callers may also implement themselves), and, for the adapters this package ships, an HTTP server
 * and the process environment ({@link RuntimeAdapter}). Each adapter (node.ts, deno.ts, bun.ts)
 * implements these; nothing outside src/runtime/ asks which runtime it is on.
 *
 * Every adapter also guarantees: `onClose` and `onDrain` are never called from inside `write`,
 * `end` or `destroy`; `onClose` receives the error given to `destroy(error)`; `write()` after
 * `end()` or close drops the bytes and returns false; a handler that throws destroys only its own
 * connection; failures carry an errno-style `code`.
 * @module
 */
import type { Connection, ConnectionHandlers, Listener, ListenOptions, SocketAddress } from "../socket.ts";

/** The socket operations of one runtime. */
export interface Runtime {
  /** "node", "deno" or "bun". */
  readonly name: "node" | "deno" | "bun";
  /**
   * Listen; `accept` is called for each new connection and returns that connection's handlers.
   * With `options.tls`, only connections whose TLS handshake succeeded (and, with a client CA,
   * whose certificate that CA signed) reach `accept`, and the Listener has `reloadTls`: a runtime
   * that cannot do what `tls` asks must reject, never listen without it.
   */
  listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: RuntimeListenOptions): Promise<RuntimeListener>;
  /** Connect; resolves once connected (with `options.tls`, once the TLS handshake is done). */
  connect(address: SocketAddress, handlers: ConnectionHandlers, options?: ConnectOptions): Promise<Connection>;
}

/** PEM text, as a string or its bytes. */
export type Pem = string | Uint8Array;

/** TLS for a listening socket. */
export interface TlsServerOptions {
  /** The server's certificate chain (PEM). */
  readonly cert: Pem;
  /** The server's private key (PEM). */
  readonly key: Pem;
  /**
   * The CA (PEM, one or more certificates) that must have signed a client's certificate: with it,
   * a peer without a valid certificate from this CA is refused during the handshake (mutual TLS).
   */
  readonly clientCa?: Pem;
}

/** TLS for an outgoing connection. */
export interface TlsClientOptions {
  /** The CA (PEM) to trust for the server's certificate, in place of the runtime's default roots. */
  readonly ca?: Pem;
  /** This side's certificate chain (PEM), for a server that asks for one (mutual TLS). */
  readonly cert?: Pem;
  /** The private key (PEM) of `cert`. */
  readonly key?: Pem;
  /** The name sent as SNI and checked against the server's certificate (default: the address's host). */
  readonly servername?: string;
  /** Check the server's certificate (default true). False accepts any certificate: testing only. */
  readonly rejectUnauthorized?: boolean;
}

/** Options of {@link Runtime.listen}. */
export interface RuntimeListenOptions extends ListenOptions {
  /** Serve TLS on this socket. */
  tls?: TlsServerOptions;
  /** Milliseconds a TLS handshake may take before the connection is closed (default 10 000). */
  handshakeTimeout?: number;
  /** Called for each connection closed because its TLS handshake failed (with the peer's address, "" if unknown). */
  onTlsError?(peer: string, error: Error): void;
  /**
   * At most this many TCP connections open at once on a TLS socket, those still in their handshake
   * included (default: no limit): one more is closed as it comes, and reported through onTlsError
   * with a FastCGIError (LIMIT_EXCEEDED) whose `limit` is "maxConnections".
   */
  maxTlsConnections?: number;
}

/** A listening socket, as {@link Runtime.listen} opens it. */
export interface RuntimeListener extends Listener {
  /**
   * Present when it serves TLS: new handshakes use this certificate, key and client CA from now on;
   * open connections keep theirs. Throws (and changes nothing) when they cannot be used, or when a
   * client CA would be added or removed (that needs a restart).
   */
  reloadTls?(tls: TlsServerOptions): void;
}

/** Options of {@link Runtime.connect}. */
export interface ConnectOptions {
  /** Connect over TLS. */
  tls?: TlsClientOptions;
}

/** What the handler learns about the connection, in the shape `Deno.serve` gives it. */
export interface HttpConnInfo {
  /** The client's address and port. */
  remoteAddr: { hostname: string; port: number };
  /**
   * The request target as the client sent it, where the server keeps it apart from `request.url`
   * (node:http: a Request's URL is re-encoded, ' < > and more percent-escaped). Deno.serve keeps it
   * in `request.url`; Bun.serve keeps it nowhere.
   */
  requestTarget?: string;
}

/** A fetch handler as `Deno.serve` takes it. */
export type FetchHandler = (request: Request, info: HttpConnInfo) => Response | Promise<Response>;

/** An HTTP server an adapter started with its runtime's own server: what `listenHttp` needs to close it. */
export interface NativeHttpServer {
  /** The port it listens on: the real one when 0 was asked for. */
  readonly port: number;
  /** Stops accepting and resolves once in-flight requests are done. */
  shutdown(): Promise<void>;
  /** Cuts the connections still open (after `shutdown()` took too long). */
  abort(): void;
}

/** Where an adapter's HTTP server listens, and how. */
export interface HttpAddress {
  hostname: string;
  port: number;
  /**
   * The handler must get the request target as the client sent it (`info.requestTarget` or
   * `request.url`): on Bun this serves through node:http instead of Bun.serve, at a cost.
   */
  rawTarget?: boolean;
  /**
   * Listen with SO_REUSEPORT, so that several processes serve the same port and the kernel
   * spreads connections among them (Linux; on Node, 22.12 or later).
   */
  reusePort?: boolean;
}

/** A runtime adapter this package ships: the sockets, plus what else the layers above need from the runtime. */
export interface RuntimeAdapter extends Runtime, WorkerHost {
  /** Serves `handler` over HTTP/1.1 on `hostname:port`; resolves once listening. */
  serveHttp(handler: FetchHandler, address: HttpAddress): Promise<NativeHttpServer>;
  /** The environment variable `name`, or undefined when it is unset or the process may not read it. */
  env(name: string): string | undefined;
  /** Removes the environment variable `name` from this process (and so from its future children); no-op without permission. */
  unsetEnv(name: string): void;
  /** This process's id. */
  pid(): number;
}

/**
 * A listening socket the process manager holds for its workers. The manager never accepts on it
 * (its event loop does not watch it): each worker gets it as fd 0 and accepts there.
 */
export interface WorkerSocket {
  /** The descriptor to hand to each worker as its fd 0 (0 itself when the socket was inherited). */
  readonly fd: number;
  /** Where it listens: the real port when 0 was asked for; `{ transport: "fd", fd: 0 }` when inherited. */
  readonly address: SocketAddress;
  /** Closes the manager's copy, and removes the Unix socket file it created. */
  close(): void;
}

/** How to start one worker process. */
export interface WorkerSpawnOptions {
  /** The program and its arguments (see {@link RuntimeAdapter.commandFor}). */
  readonly command: readonly string[];
  /** The listening socket, given to the worker as its fd {@link WorkerHost.workerListenFd}. */
  readonly listenFd: number;
  /** Variables added to the manager's own environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Each line the worker writes to stdout, without its line break. */
  onStdout(line: string): void;
  /** Each line the worker writes to stderr, without its line break. */
  onStderr(line: string): void;
}

/** How a worker process ended: an exit status, or the signal that killed it. */
export interface WorkerExit {
  /** The exit status, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal's name (SIGKILL, …), or null. */
  readonly signal: string | null;
}

/** A running worker process. */
export interface WorkerProcess {
  /** Its process id. */
  readonly pid: number;
  /** Sends a signal; does nothing once it has exited. */
  kill(signal: "SIGTERM" | "SIGKILL" | "SIGUSR1"): void;
  /** Resolves once it has exited and its output is read. */
  readonly exited: Promise<WorkerExit>;
}

/** What the process manager (src/manager/) needs from a runtime: its socket and its children. */
export interface WorkerHost {
  /**
   * Opens `address` for workers without accepting on it, or takes an inherited socket as it is
   * (`{ transport: "fd" }`: fd 0, or systemd's from fd 3). Node, Bun, and Deno on Linux.
   */
  listenForWorkers(address: SocketAddress, options?: { socketMode?: number }): Promise<WorkerSocket>;
  /** Starts a worker with the listening socket as its fd 0 and its output piped line by line. */
  spawnWorker(options: WorkerSpawnOptions): WorkerProcess;
  /**
   * The descriptor a spawned worker finds the listening socket on. O_NONBLOCK belongs to the socket
   * that every worker shares, not to one process's descriptor: node:child_process makes a child's
   * fd 0 to 2 blocking, and Node restores fd 0 to 2 as it found them when it exits, so a socket
   * handed over as fd 0 turns blocking for every worker at each spawn and each exit, and a worker's
   * accept() then stalls its event loop. Node and Bun hand it over as fd 3; Deno's Command can only
   * pass fd 0, and neither Deno nor its children touch the flag.
   */
  readonly workerListenFd: number;
  /** The command line that runs the script `path` on this runtime, with the permissions it has. */
  commandFor(path: string): string[];
}
