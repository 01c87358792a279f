/**
 * The Node socket adapter, on `node:net`. Also runs on Deno and Bun (their `node:net`), which is how
 * those adapters accept on the inherited fd 0.
 *
 * Behaviour: TCP_NODELAY on; a connection whose peer ends is ended too (no half-open connections);
 * multi-chunk writes are corked into one `writev`; chunks handed to `onData` are fresh `Uint8Array`
 * views of the Buffers Node read into (plain views, so `slice()` copies as usual).
 * @module
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { adoptUnixPath, asError, claimUnixPath, NO_HANDLERS, notListeningOnFd0, probeUnix, releaseUnixPath, socketError } from "./common.ts";
import type { Connection, ConnectionHandlers, Listener, ListenOptions, Runtime, SocketAddress } from "./types.ts";

class NodeConnection implements Connection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #socket: Socket;
  #handlers: ConnectionHandlers = NO_HANDLERS;
  #error: Error | undefined;

  constructor(socket: Socket, unixPath: string | undefined) {
    this.#socket = socket;
    if (unixPath !== undefined) {
      this.remoteAddress = "";
      this.remotePort = 0;
      this.localAddress = unixPath;
      this.localPort = 0;
    } else {
      this.remoteAddress = socket.remoteAddress ?? "";
      this.remotePort = socket.remotePort ?? 0;
      this.localAddress = socket.localAddress ?? "";
      this.localPort = socket.localPort ?? 0;
      socket.setNoDelay(true);
    }
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

  /** Installs the handlers (after `accept` returned them, or at once for `connect`). */
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

async function listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: ListenOptions): Promise<Listener> {
  if (address.transport === "unix") await claimUnixPath(address.path, probe);
  // The socket path for Unix listeners, undefined for TCP (fd 0 may be either: decided once listening).
  let unixPath: string | undefined = address.transport === "unix" ? address.path : undefined;
  const server: Server = createServer({ allowHalfOpen: false }, (socket) => {
    // A TCP peer whose address is already unknown is gone; never let it pass as a Unix peer ("").
    if (unixPath === undefined && socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    const connection = new NodeConnection(socket, unixPath);
    try {
      connection.attach(accept(connection));
    } catch (error) {
      connection.destroy(asError(error));
    }
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
    const code = (error as { code?: string }).code;
    if (address.transport === "fd" && (code === "EINVAL" || code === "ENOTSOCK" || code === "EBADF" || code === "ENOTSUP" || code === "EOPNOTSUPP")) {
      throw notListeningOnFd0(error);
    }
    throw socketError("listen", address, error);
  }
  // Accept errors (EMFILE) are retried by libuv; without a listener Node would crash on them.
  server.on("error", () => {});

  let actual: SocketAddress;
  let ino: number | undefined;
  const bound = server.address();
  if (address.transport === "unix") {
    actual = address;
    try {
      ino = adoptUnixPath(address.path, options?.mode);
    } catch (error) {
      server.close();
      throw socketError("listen", address, error, `cannot set the socket file mode: ${asError(error).message}`);
    }
  } else if (bound !== null && typeof bound === "object" && typeof (bound as AddressInfo).port === "number") {
    actual = { transport: "tcp", hostname: (bound as AddressInfo).address, port: (bound as AddressInfo).port };
  } else {
    // fd 0 holding a Unix socket: the runtime cannot tell its path (Node says null, Bun {}).
    unixPath = typeof bound === "string" ? bound : "";
    actual = { transport: "fd", fd: 0 };
  }
  return {
    address: actual,
    close(): Promise<void> {
      server.close();
      if (address.transport === "unix") releaseUnixPath(address.path, ino);
      return Promise.resolve();
    },
  };
}

function connect(address: SocketAddress, handlers: ConnectionHandlers): Promise<Connection> {
  if (address.transport === "fd") return Promise.reject(new TypeError("cannot connect to fd:0: it is a listening socket; connect to a TCP or Unix address"));
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

/**
 * The `node:net` runtime adapter.
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
export const nodeRuntime: Runtime = { name: "node", listen, connect };
