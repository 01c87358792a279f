/**
 * The Bun socket adapter, on `Bun.listen` / `Bun.connect` (TCP and Unix). fd 0 is accepted on
 * through Bun's `node:net`, since `Bun.listen` cannot adopt an inherited socket.
 *
 * Behaviour: Bun's `socket.write` takes what the kernel takes and returns that count, so the rest
 * waits here in an ordered queue (small chunks merged) and is flushed on Bun's `drain`; `write()`
 * returns false while anything waits, then `onDrain`. `pause()` calls Bun's `socket.pause()` (reading
 * stops, TCP pushes back on the peer) and holds any chunk Bun had already read until `resume()`.
 * Reads over 64 KiB are handed on in 64 KiB slices, one per turn of the event loop.
 * TCP_NODELAY on; a connection whose peer ends is ended too, once queued bytes are out.
 * @module
 */
import type { Connection, ConnectionHandlers, SocketAddress } from "../socket.ts";
import { AdapterConnection, asError, cannotConnectToFd0, handOver, listenWith, NO_HANDLERS, probeUnix, socketError, WriteQueue } from "./common.ts";
import type { ConnectOptions, FetchHandler, HttpAddress, NativeHttpServer, RuntimeAdapter, RuntimeListener, RuntimeListenOptions, WorkerSocket } from "./types.ts";
import { inheritedSocket, listenAndKeepDuplicate, spawnWithChildProcess } from "./workers.ts";

// The slice of Bun's API this file uses (no Bun type package is installed).
interface BunSocket {
  data: BunConnection | undefined;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  pause?(): void;
  resume?(): void;
  setNoDelay?(noDelay: boolean): boolean;
}
interface BunSocketHandlers {
  binaryType: "uint8array";
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  error(socket: BunSocket, error: Error): void;
  close(socket: BunSocket, error?: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
}
type BunTarget = { hostname: string; port: number } | { unix: string };
interface BunListener {
  readonly hostname?: string;
  readonly port?: number;
  stop(closeActiveConnections?: boolean): void;
}
interface BunHttpServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
  requestIP(request: Request): { address: string; port: number } | null;
}
declare const Bun: {
  listen(options: BunTarget & { socket: BunSocketHandlers; allowHalfOpen?: boolean }): BunListener;
  connect(options: BunTarget & { socket: BunSocketHandlers; allowHalfOpen?: boolean }): Promise<BunSocket>;
  serve(options: { hostname: string; port: number; reusePort?: boolean; fetch: (request: Request, server: BunHttpServer) => Response | Promise<Response> }): BunHttpServer;
  readonly env: Record<string, string | undefined>;
};

/**
 * The most bytes handed to `onData` at once. Bun reads up to megabytes in one go; Node and Deno
 * hand over 64 KiB reads, and the server expects as much: a megabyte of pipelined requests in one
 * call would start thousands of them before any could finish.
 */
const SLICE = 64 * 1024;

class BunConnection extends AdapterConnection {
  readonly #socket: BunSocket;
  #handlers: ConnectionHandlers = NO_HANDLERS;
  readonly #queue = new WriteQueue();
  #needDrain = false;
  #paused = false;
  /** Chunks Bun delivered while paused (or before held ones were handed on), in order. */
  #held: Uint8Array[] = [];
  #delivering = false;
  /** The peer's FIN came while input was held: end once it is handed on. */
  #peerEnded = false;
  #ending = false;
  #closed = false;
  #error: Error | undefined;

  constructor(socket: BunSocket, unixPath: string | undefined) {
    super(unixPath, socket);
    this.#socket = socket;
    if (unixPath === undefined) {
      try {
        socket.setNoDelay?.(true);
      } catch {
        // Not a TCP socket after all: nothing to set.
      }
    }
  }

  attach(handlers: ConnectionHandlers): void {
    this.#handlers = handlers;
  }

  /** Bun's `data` event. */
  received(chunk: Uint8Array): void {
    if (this.#closed) return;
    if (this.#paused || this.#held.length > 0) {
      this.#holdSlices(chunk);
      this.#deliverHeld();
      return;
    }
    if (chunk.length <= SLICE) {
      this.#deliver(chunk);
      return;
    }
    this.#deliver(chunk.subarray(0, SLICE));
    this.#holdSlices(chunk.subarray(SLICE));
    this.#deliverHeld();
  }

  #holdSlices(chunk: Uint8Array): void {
    for (let at = 0; at < chunk.length; at += SLICE) this.#held.push(chunk.subarray(at, at + SLICE));
    // Bun reads no more while input waits here: what waits is at most one read, not the peer's flood.
    this.#socket.pause?.();
  }

  // Held chunks go out asynchronously, as Node's resume() does (never from inside resume() itself),
  // one per turn of the event loop, as Node's and Deno's reads come: what one slice starts (a
  // pipelining peer's requests) runs, and mostly ends, before the next slice's requests arrive.
  #deliverHeld(): void {
    if (this.#held.length === 0 || this.#delivering || this.#paused) return;
    this.#delivering = true;
    setImmediate(() => {
      this.#delivering = false;
      if (this.#paused || this.#closed) return;
      const chunk = this.#held.shift();
      if (chunk !== undefined) this.#deliver(chunk);
      if (this.#held.length > 0) this.#deliverHeld();
      else if (this.#peerEnded) this.end();
      else if (!this.#paused && !this.#closed) this.#socket.resume?.();
    });
  }

  #deliver(chunk: Uint8Array): void {
    try {
      this.#handlers.onData(chunk);
    } catch (error) {
      // A throwing handler is a bug in this connection's code; it must not take the process down.
      this.destroy(asError(error));
    }
  }

  freeWritten(buffer: ArrayBufferLike): void {
    // Detaching gives the memory back at once (JSC frees the store), not at some later collection.
    (buffer as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
  }

  get bufferedAmount(): number {
    return this.#queue.bytes;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.#closed || this.#ending) return false;
    this.#queue.push(chunks);
    this.#flush();
    if (this.#queue.empty) return true;
    this.#needDrain = true;
    return false;
  }

  /** Writes queued bytes until the kernel takes less than offered. */
  #flush(): void {
    const queue = this.#queue;
    while (!queue.empty) {
      const chunk = queue.peek();
      const written = this.#socket.write(chunk);
      if (written <= 0) return;
      queue.consume(written);
      if (written < chunk.byteLength) return;
    }
  }

  /** Bun's `drain` event: the kernel takes bytes again. */
  drained(): void {
    if (this.#closed) return;
    this.#flush();
    if (!this.#queue.empty) return;
    if (this.#ending) {
      this.#socket.end();
      return;
    }
    if (this.#needDrain) {
      this.#needDrain = false;
      this.#handlers.onDrain();
    }
  }

  pause(): void {
    if (this.#paused || this.#closed) return;
    this.#paused = true;
    this.#socket.pause?.();
  }

  resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    if (this.#held.length === 0) this.#socket.resume?.();
    else this.#deliverHeld();
  }

  /** Bun's `end` event: the peer sent FIN. Ends too, after the held input is handed on. */
  peerEnded(): void {
    if (this.#held.length === 0) this.end();
    else this.#peerEnded = true;
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (this.#queue.empty) this.#socket.end();
  }

  destroy(error?: Error): void {
    if (this.#closed) return;
    if (error !== undefined) this.#error ??= error;
    this.#socket.terminate();
    // terminate() normally reports close itself; this covers a socket Bun had already let go of.
    this.closed(undefined);
  }

  /** Bun's `error` event (close follows). */
  failed(error: Error): void {
    this.#error ??= error;
  }

  /** Bun's `close` event. */
  closed(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.clear();
    this.#held = [];
    const reason = this.#error ?? error;
    // Never from inside write()/end()/destroy(), and after accept() has returned the handlers.
    queueMicrotask(() => this.#handlers.onClose(reason));
  }
}

function handlers(open: (socket: BunSocket) => void): BunSocketHandlers {
  return {
    binaryType: "uint8array",
    open,
    data: (socket, data) => socket.data?.received(data),
    drain: (socket) => socket.data?.drained(),
    // The peer sent FIN: end too, once the queue is out (allowHalfOpen is on so Bun does not cut it short).
    end: (socket) => socket.data?.peerEnded(),
    error: (socket, error) => socket.data?.failed(error),
    close: (socket, error) => socket.data?.closed(error),
    connectError: () => {},
  };
}

function bunTarget(address: SocketAddress): BunTarget {
  if (address.transport === "tcp") return { hostname: address.hostname, port: address.port };
  if (address.transport === "unix") return { unix: address.path };
  throw new TypeError("unreachable: fd addresses are handled before");
}

function probe(path: string): Promise<boolean> {
  return probeUnix(async () => {
    const socket = await Bun.connect({ unix: path, socket: handlers(() => {}) });
    return { close: () => socket.terminate() };
  });
}

async function listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: RuntimeListenOptions): Promise<RuntimeListener> {
  // Bun.listen cannot adopt a file descriptor; Bun's node:net can. Bun.listen's tls refuses clients
  // without a good certificate, but its reload() keeps the old certificate: Bun's node:tls replaces it.
  if (address.transport === "fd" || options?.tls !== undefined) return (await import("./node.ts")).nodeRuntime.listen(address, accept, options);
  const unixPath = address.transport === "unix" ? address.path : undefined;
  return listenWith(address, options, probe, () => {
    const server = Bun.listen({
      ...bunTarget(address),
      allowHalfOpen: true,
      socket: handlers((socket) => {
        // A TCP peer whose address is already unknown is gone; never let it pass as a Unix peer ("").
        if (unixPath === undefined && !socket.remoteAddress) {
          socket.terminate();
          return;
        }
        const connection = new BunConnection(socket, unixPath);
        socket.data = connection;
        handOver(connection, accept);
      }),
    });
    return {
      address: address.transport === "tcp" ? { transport: "tcp", hostname: server.hostname ?? address.hostname, port: server.port ?? address.port } : address,
      close(): Promise<void> {
        // false: established connections stay open.
        server.stop(false);
        return Promise.resolve();
      },
    };
  });
}

async function connect(address: SocketAddress, connectionHandlers: ConnectionHandlers, options?: ConnectOptions): Promise<Connection> {
  if (address.transport === "fd") throw cannotConnectToFd0(address.fd);
  // One TLS implementation on every runtime (see node.ts): the same checks, errors and options.
  if (options?.tls !== undefined) return (await import("./node.ts")).nodeRuntime.connect(address, connectionHandlers, options);
  const unixPath = address.transport === "unix" ? address.path : undefined;
  let connection: BunConnection | undefined;
  try {
    await Bun.connect({
      ...bunTarget(address),
      allowHalfOpen: true,
      socket: handlers((socket) => {
        connection = new BunConnection(socket, unixPath);
        connection.attach(connectionHandlers);
        socket.data = connection;
      }),
    });
  } catch (error) {
    throw socketError("connect", address, error);
  }
  if (!connection) throw socketError("connect", address, new Error("Bun reported the connection without opening it"));
  return connection;
}

/**
 * Serves a fetch handler with `Bun.serve`, giving it the peer as `Deno.serve` does; with
 * `rawTarget`, with Bun's node:http, whose `req.url` is the target as sent (Bun.serve's URL has
 * ' < > percent-encoded, and keeps the raw one nowhere).
 */
async function serveHttp(handler: FetchHandler, address: HttpAddress): Promise<NativeHttpServer> {
  if (address.rawTarget) {
    const { serveNodeHttp } = await import("./node_http_server.ts");
    return serveNodeHttp(handler, address);
  }
  const server = Bun.serve({
    hostname: address.hostname,
    port: address.port,
    reusePort: address.reusePort ?? false,
    fetch: (request, bun) => {
      const peer = bun.requestIP(request);
      return handler(request, { remoteAddr: { hostname: peer?.address ?? "", port: peer?.port ?? 0 } });
    },
  });
  return {
    port: server.port,
    shutdown: async () => void (await server.stop(false)),
    abort: () => void server.stop(true),
  };
}

function env(name: string): string | undefined {
  return Bun.env[name];
}

function unsetEnv(name: string): void {
  delete Bun.env[name];
}

function pid(): number {
  return process.pid;
}

/**
 * The Bun runtime adapter (`Bun.listen` / `Bun.connect`, `Bun.serve` for HTTP).
 *
 * @example
 * ```ts
 * import { bunRuntime } from "./bun.ts";
 * const listener = await bunRuntime.listen({ transport: "unix", path: "/tmp/app.sock" }, (connection) => ({
 *   onData: (chunk) => connection.write([chunk]), onDrain: () => {}, onClose: () => {},
 * }), { mode: 0o660 });
 * ```
 */
export const bunRuntime: RuntimeAdapter = { name: "bun", listen, connect, serveHttp, env, unsetEnv, pid, listenForWorkers, spawnWorker: spawnWithChildProcess, commandFor, workerListenFd: 3 };

// ---------------------------------------------------------------------------------------------
// The process manager's needs: node:child_process hands a descriptor to a child as its fd 0; libc's
// dup (bun:ffi) keeps the socket open once the node:net server that opened it stops accepting.

interface BunFfi {
  dlopen(path: string, symbols: Record<string, { args: string[]; returns: string }>): { symbols: Record<string, (...args: number[]) => number> };
}

async function listenForWorkers(address: SocketAddress, options?: { socketMode?: number }): Promise<WorkerSocket> {
  if (address.transport === "fd") return inheritedSocket(address);
  const ffi = (await import("bun:ffi" as string)) as BunFfi;
  const library = process.platform === "darwin" ? "libc.dylib" : "libc.so.6";
  const { symbols } = ffi.dlopen(library, { dup: { args: ["i32"], returns: "i32" }, close: { args: ["i32"], returns: "i32" } });
  return await listenAndKeepDuplicate(address, options?.socketMode, probe, (server) => {
    const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) throw new Error("Bun did not expose the listening socket's descriptor");
    return fd;
  }, { dup: (fd) => symbols.dup!(fd), close: (fd) => symbols.close!(fd) });
}

function commandFor(path: string): string[] {
  return [process.execPath, path];
}
