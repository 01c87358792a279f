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
  /** Listen; `accept` is called for each new connection and returns that connection's handlers. */
  listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: ListenOptions): Promise<Listener>;
  /** Connect; resolves once connected. */
  connect(address: SocketAddress, handlers: ConnectionHandlers): Promise<Connection>;
}

/** What the handler learns about the connection, in the shape `Deno.serve` gives it. */
export interface HttpConnInfo {
  /** The client's address and port. */
  remoteAddr: { hostname: string; port: number };
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

/** A runtime adapter this package ships: the sockets, plus what else the layers above need from the runtime. */
export interface RuntimeAdapter extends Runtime {
  /** Serves `handler` over HTTP/1.1 on `hostname:port`; resolves once listening. */
  serveHttp(handler: FetchHandler, address: { hostname: string; port: number }): Promise<NativeHttpServer>;
  /** The environment variable `name`, or undefined when it is unset or the process may not read it. */
  env(name: string): string | undefined;
  /** Removes the environment variable `name` from this process (and so from its future children); no-op without permission. */
  unsetEnv(name: string): void;
  /** This process's id. */
  pid(): number;
}
