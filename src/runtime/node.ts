/**
 * The Node socket adapter, on `node:net` (and `node:http` for HTTP). Also runs on Deno and Bun
 * (their `node:net`), which is how those adapters accept on the inherited fd 0.
 *
 * Behaviour: TCP_NODELAY on; a connection whose peer ends is ended too (no half-open connections);
 * multi-chunk writes are corked into one `writev`; chunks handed to `onData` are fresh `Uint8Array`
 * views of the Buffers Node read into (plain views, so `slice()` copies as usual).
 *
 * TLS (`node:tls`, loaded only when asked for) is this file's on all three runtimes: Deno's and
 * Bun's `node:tls` verify client certificates and replace a server's certificate in place
 * (`setSecureContext`), which `Deno.listenTls` (no client certificates) and `Bun.listen` (its
 * `reload()` keeps the old certificate) do not.
 * @module
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { FastCGIError } from "../errors.ts";
import type { Connection, ConnectionHandlers, SocketAddress } from "../socket.ts";
import { AdapterConnection, adoptUnixPath, asError, cannotConnectToFd0, claimUnixPath, handOver, listenWith, NO_HANDLERS, probeUnix, socketError } from "./common.ts";
import type { TLSSocket } from "node:tls";
import type { ConnectOptions, FetchHandler, HttpAddress, NativeHttpServer, RuntimeAdapter, RuntimeListener, RuntimeListenOptions, TlsClientOptions, TlsServerOptions, WorkerSocket } from "./types.ts";
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
    // on, not once: "close" comes once anyway, and once() wraps the listener in three more objects per connection.
    socket.on("close", () => this.#handlers.onClose(this.#error));
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

async function listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: RuntimeListenOptions): Promise<RuntimeListener> {
  // The socket path for Unix listeners, undefined for TCP (an inherited fd may be either: decided once listening).
  let unixPath: string | undefined = address.transport === "unix" ? address.path : undefined;
  const tls = options?.tls === undefined ? undefined : await tlsServer(options.tls, options);
  const onSocket = (socket: Socket): void => {
    // A TCP peer whose address is already unknown is gone; never let it pass as a Unix peer ("").
    if (unixPath === undefined && socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    if (tls && !tls.admits(socket as TLSSocket)) return;
    handOver(new NodeConnection(socket, unixPath), accept);
  };
  const listener = await listenWith(address, options, probe, async () => {
    const server: Server = tls ? tls.create(onSocket) : createServer({ allowHalfOpen: false }, onSocket);
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
  if (tls === undefined) return listener;
  return Object.assign(listener, { reloadTls: (next: TlsServerOptions) => tls.reload(next) });
}

/** PEM as the text node:tls takes. */
function pem(value: string | Uint8Array): string {
  return typeof value === "string" ? value : new TextDecoder().decode(value);
}

/**
 * The certificate, key and client CA as a secure context takes them, checked now: Deno's node:tls
 * takes any text and fails each handshake later, so a bad file would start a server nobody can
 * reach. Each part is parsed, and the key must be the certificate's.
 */
function secureContextOptions(crypto: typeof import("node:crypto"), tls: TlsServerOptions): { cert: string; key: string; ca?: string } {
  if (tls === null || typeof tls !== "object") throw new TypeError("tls: expected { cert, key, clientCa? }");
  for (const name of ["cert", "key", "clientCa"] as const) {
    const value = tls[name];
    if (value === undefined && name === "clientCa") continue;
    if (typeof value !== "string" && !(value instanceof Uint8Array)) throw new TypeError(`tls: ${name} must be PEM text (a string or bytes)`);
  }
  const context = { cert: pem(tls.cert), key: pem(tls.key), ...(tls.clientCa === undefined ? {} : { ca: pem(tls.clientCa) }) };
  const parse = <T>(what: string, read: () => T): T => {
    try {
      return read();
    } catch (error) {
      throw new TypeError(`tls: the certificate, key or client CA cannot be used: the ${what} is not valid PEM (${asError(error).message})`, { cause: error });
    }
  };
  const certificate = parse("certificate", () => new crypto.X509Certificate(context.cert));
  const key = parse("private key", () => crypto.createPrivateKey(context.key));
  if (context.ca !== undefined) parse("client CA", () => new crypto.X509Certificate(context.ca!));
  if (!certificate.checkPrivateKey(key)) throw new TypeError("tls: the certificate, key or client CA cannot be used: the private key is not the certificate's");
  return context;
}

/** The TLS side of one listening socket: its server, who gets in, and reloading its certificate. */
async function tlsServer(tls: TlsServerOptions, options: RuntimeListenOptions): Promise<{
  create(onSocket: (socket: Socket) => void): Server;
  admits(socket: TLSSocket): boolean;
  reload(next: TlsServerOptions): void;
}> {
  const tlsModule = await import("node:tls");
  const crypto = await import("node:crypto");
  const context = secureContextOptions(crypto, tls);
  const mutual = context.ca !== undefined;
  const failed = (peer: string | undefined, error: Error): void => options.onTlsError?.(peer ?? "", error);
  let server: import("node:tls").Server | undefined;
  return {
    create(onSocket) {
      server = tlsModule.createServer({
        ...context,
        requestCert: mutual,
        rejectUnauthorized: mutual,
        handshakeTimeout: options.handshakeTimeout ?? 10_000,
        allowHalfOpen: false,
      }, onSocket);
      // The peer's address, taken when the TCP connection comes: once node:tls has closed a
      // refused socket it no longer knows it, and Deno's TLSSocket never does. The "connection"
      // event gives the TCP socket under the TLSSocket (Node, Deno) or the TLSSocket (Bun).
      const peers = new WeakMap<object, string>();
      // A handshake is counted from its first byte: serve()'s maxConnections sees a connection only
      // once its handshake is done, and peers that connect and never finish one would otherwise hold
      // sockets without limit (each for up to handshakeTimeout).
      const limit = options.maxTlsConnections ?? Infinity;
      let open = 0;
      server.on("connection", (socket: Socket) => {
        if (open >= limit) {
          const peer = socket.remoteAddress;
          socket.destroy();
          failed(peer, new FastCGIError("LIMIT_EXCEEDED", `${limit} connections are open or in their handshake (maxConnections)`, { limit: "maxConnections" }));
          return;
        }
        open++;
        socket.on("close", () => open--);
        if (socket.remoteAddress !== undefined) peers.set(socket, socket.remoteAddress);
      });
      // No certificate, a wrong CA, an expired one, plaintext, a handshake timeout: that connection
      // is closed (node:tls leaves a timed-out one open). Node refuses a certificate by closing the
      // socket, which it then reports as "socket hang up": the reason is in authorizationError.
      server.on("tlsClientError", (error: Error, socket: TLSSocket & { _parent?: object | null }) => {
        const peer = peers.get(socket._parent ?? socket) ?? peers.get(socket) ?? socket.remoteAddress;
        const refused = socket.authorizationError;
        socket.destroy();
        failed(peer, refused ? new Error(`client certificate not accepted: ${String(refused)}`, { cause: error }) : error);
      });
      return server;
    },
    admits(socket) {
      // node:tls refused these already (rejectUnauthorized); checked again because a refusal that
      // slipped through would let in a web server nobody vouched for.
      if (!mutual || socket.authorized) return true;
      failed(socket.remoteAddress, new Error(`client certificate not accepted: ${String(socket.authorizationError ?? "none given")}`));
      socket.destroy();
      return false;
    },
    reload(next) {
      const replacement = secureContextOptions(crypto, next);
      // Whether a client certificate is asked for was fixed when the server started.
      if ((replacement.ca !== undefined) !== mutual) throw new TypeError(`tls: a reload cannot ${mutual ? "remove" : "add"} the client CA; restart the server for that`);
      server?.setSecureContext(replacement);
    },
  };
}

async function connect(address: SocketAddress, handlers: ConnectionHandlers, options?: ConnectOptions): Promise<Connection> {
  if (address.transport === "fd") throw cannotConnectToFd0(address.fd);
  const target = address.transport === "tcp" ? { host: address.hostname, port: address.port, allowHalfOpen: false } : { path: address.path, allowHalfOpen: false };
  const tls = options?.tls;
  const tlsConnect = tls === undefined ? undefined : (await import("node:tls")).connect;
  return new Promise((resolve, reject) => {
    const socket = tlsConnect ? tlsConnect({ ...target, ...clientTls(tls!) }) : netConnect(target);
    const failed = (error: Error) => {
      socket.destroy();
      reject(socketError("connect", address, error));
    };
    socket.once("error", failed);
    // Over TLS, connected means the handshake is done and the server's certificate checked.
    socket.once(tlsConnect ? "secureConnect" : "connect", () => {
      socket.off("error", failed);
      const connection = new NodeConnection(socket, address.transport === "unix" ? address.path : undefined);
      connection.attach(handlers);
      resolve(connection);
    });
  });
}

/** The node:tls connect options of `tls`. */
function clientTls(tls: TlsClientOptions): { ca?: string; cert?: string; key?: string; servername?: string; rejectUnauthorized: boolean } {
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("tls: a client certificate needs its key, and a key its certificate");
  return {
    ...(tls.ca === undefined ? {} : { ca: pem(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: pem(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: pem(tls.key) }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
  };
}

/** Whether node:net's listen() takes `reusePort`: Node 22.12+ on the 22 line, 23.1+ after it. */
export function nodeHasReusePort(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** Serves a fetch handler on a `node:http` server (loaded on first use: FastCGI servers never need it). */
async function serveHttp(handler: FetchHandler, address: HttpAddress): Promise<NativeHttpServer> {
  // Older Node ignores reusePort: a second process would fail with EADDRINUSE, not share the port.
  if (address.reusePort && !nodeHasReusePort(process.versions.node)) {
    throw new Error(`SO_REUSEPORT needs Node 22.12 or later (this is ${process.versions.node})`);
  }
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
