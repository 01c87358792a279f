/**
 * The Node socket adapter, on `node:net` (and `node:http` for HTTP). Also runs on Deno and Bun
 * (their `node:net`), which is how those adapters accept on the inherited fd 0.
 *
 * Behaviour: TCP_NODELAY on; a connection whose peer ends is ended too (no half-open connections);
 * multi-chunk writes are corked into one `writev`; chunks handed to `onData` are fresh `Uint8Array`
 * views of the Buffers Node read into (plain views, so `slice()` copies as usual).
 * @module
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Connection, ConnectionHandlers, Listener, ListenOptions, SocketAddress } from "../socket.ts";
import { AdapterConnection, adoptUnixPath, asError, cannotConnectToFd0, claimUnixPath, handOver, listenWith, NO_HANDLERS, probeUnix, socketError } from "./common.ts";
import type { FetchHandler, HttpAddress, NativeHttpServer, RuntimeAdapter, WorkerSocket } from "./types.ts";
import { inheritedSocket, numericHost, spawnWithChildProcess } from "./workers.ts";

class NodeConnection extends AdapterConnection {
  readonly #socket: Socket;
  #handlers: ConnectionHandlers = NO_HANDLERS;
  #error: Error | undefined;

  constructor(socket: Socket, unixPath: string | undefined) {
    super(unixPath, socket);
    this.#socket = socket;
    if (unixPath === undefined) socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.#handlers.onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (error) {
        // A throwing handler is a bug in this connection's code; it must not take the process down.
        this.destroy(asError(error));
      }
    });
    socket.on("drain", () => this.#handlers.onDrain());
    socket.on("error", (error: Error) => {
      this.#error ??= error;
    });
    socket.once("close", () => this.#handlers.onClose(this.#error));
  }

  attach(handlers: ConnectionHandlers): void {
    this.#handlers = handlers;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    const socket = this.#socket;
    // Writing after end or destroy would make Node raise an error event: drop the bytes instead.
    if (socket.destroyed || socket.writableEnded) return false;
    if (chunks.length === 1) return socket.write(chunks[0]!);
    let ok = true;
    socket.cork();
    for (const chunk of chunks) if (chunk.byteLength > 0) ok = socket.write(chunk);
    socket.uncork();
    return ok && !socket.writableNeedDrain;
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  end(): void {
    this.#socket.end();
  }

  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.#socket.destroy();
  }
}

function probe(path: string): Promise<boolean> {
  return probeUnix(
    () =>
      new Promise((resolve, reject) => {
        const socket = netConnect({ path });
        socket.once("connect", () => resolve({ close: () => socket.destroy() }));
        socket.once("error", reject);
      }),
  );
}

function listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: ListenOptions): Promise<Listener> {
  // The socket path for Unix listeners, undefined for TCP (an inherited fd may be either: decided once listening).
  let unixPath: string | undefined = address.transport === "unix" ? address.path : undefined;
  return listenWith(address, options, probe, async () => {
    const server: Server = createServer({ allowHalfOpen: false }, (socket) => {
      // A TCP peer whose address is already unknown is gone; never let it pass as a Unix peer ("").
      if (unixPath === undefined && socket.remoteAddress === undefined) {
        socket.destroy();
        return;
      }
      handOver(new NodeConnection(socket, unixPath), accept);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        const target = address.transport === "tcp" ? { host: address.hostname, port: address.port } : address.transport === "unix" ? { path: address.path } : { fd: address.fd };
        server.listen(target, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      server.close();
      throw error;
    }
    // Accept errors (EMFILE) are retried by libuv; without a listener Node would crash on them.
    server.on("error", () => {});
    let actual: SocketAddress = address;
    const bound = server.address();
    if (address.transport === "unix") {
      // As asked.
    } else if (bound !== null && typeof bound === "object" && typeof (bound as AddressInfo).port === "number") {
      actual = { transport: "tcp", hostname: (bound as AddressInfo).address, port: (bound as AddressInfo).port };
    } else {
      // An inherited fd holding a Unix socket: the runtime cannot tell its path (Node says null, Bun {}).
      unixPath = typeof bound === "string" ? bound : "";
      actual = { transport: "fd", fd: address.transport === "fd" ? address.fd : 0 };
    }
    return {
      address: actual,
      close(): Promise<void> {
        server.close();
        return Promise.resolve();
      },
    };
  });
}

function connect(address: SocketAddress, handlers: ConnectionHandlers): Promise<Connection> {
  if (address.transport === "fd") return Promise.reject(cannotConnectToFd0(address.fd));
  return new Promise((resolve, reject) => {
    const socket = address.transport === "tcp" ? netConnect({ host: address.hostname, port: address.port, allowHalfOpen: false }) : netConnect({ path: address.path, allowHalfOpen: false });
    const failed = (error: Error) => {
      socket.destroy();
      reject(socketError("connect", address, error));
    };
    socket.once("error", failed);
    socket.once("connect", () => {
      socket.off("error", failed);
      const connection = new NodeConnection(socket, address.transport === "unix" ? address.path : undefined);
      connection.attach(handlers);
      resolve(connection);
    });
  });
}

/** Serves a fetch handler on a `node:http` server (loaded on first use: FastCGI servers never need it). */
async function serveHttp(handler: FetchHandler, address: HttpAddress): Promise<NativeHttpServer> {
  const { serveNodeHttp } = await import("./node_http_server.ts");
  return serveNodeHttp(handler, address);
}

function env(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    // Deno's node:process without permission to read the environment.
    return undefined;
  }
}

function unsetEnv(name: string): void {
  try {
    delete process.env[name];
  } catch {
    // Deno's node:process without permission to write the environment: nothing to unset.
  }
}

function pid(): number {
  return process.pid;
}

/**
 * The `node:net` runtime adapter, with `node:http` for HTTP.
 *
 * @example
 * ```ts
 * import { nodeRuntime } from "./node.ts";
 * const listener = await nodeRuntime.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   onData: (chunk) => connection.write([chunk]),
 *   onDrain: () => {},
 *   onClose: () => {},
 * }));
 * ```
 */
export const nodeRuntime: RuntimeAdapter = { name: "node", listen, connect, serveHttp, env, unsetEnv, pid, listenForWorkers, spawnWorker: spawnWithChildProcess, commandFor, workerListenFd: 3 };

// ---------------------------------------------------------------------------------------------
// The process manager's needs. Node's cluster module opens a shared socket with
// net._createServerHandle: bound but not yet listening, so this process's event loop never
// accepts on it; each worker's listen({ fd: 0 }) makes it listen.

interface ServerHandle {
  readonly fd: number;
  getsockname?(out: { address?: string; port?: number }): number;
  close(): void;
}
type CreateServerHandle = (address: string, port: number, addressType: number, fd: undefined, flags: number) => ServerHandle | number;

async function listenForWorkers(address: SocketAddress, options?: { socketMode?: number }): Promise<WorkerSocket> {
  if (address.transport === "fd") return inheritedSocket(address);
  const net = (await import("node:net")) as unknown as { _createServerHandle: CreateServerHandle };
  const { getSystemErrorName } = await import("node:util");
  let handle: ServerHandle | number;
  if (address.transport === "unix") {
    await claimUnixPath(address.path, probe);
    handle = net._createServerHandle(address.path, -1, -1, undefined, 0);
  } else {
    const host = await numericHost(address.hostname);
    handle = net._createServerHandle(host.address, address.port, host.family, undefined, 0);
  }
  if (typeof handle === "number") throw socketError("listen", address, { code: getSystemErrorName(handle) });
  const opened = handle;
  let bound: SocketAddress = address;
  if (address.transport === "unix") {
    adoptUnixPath(address.path, options?.socketMode);
  } else {
    const out: { address?: string; port?: number } = {};
    opened.getsockname?.(out);
    bound = { transport: "tcp", hostname: out.address ?? address.hostname, port: out.port ?? address.port };
  }
  // Closing the handle removes a Unix socket file (libuv unlinks it).
  return { fd: opened.fd, address: bound, close: () => opened.close() };
}

function commandFor(path: string): string[] {
  // Flags such as --experimental-strip-types carry over; the test runner's own do not.
  return [process.execPath, ...process.execArgv.filter((flag) => !flag.startsWith("--test")), path];
}
