/**
 * The Deno socket adapter, on `Deno.listen` / `Deno.connect` (TCP and Unix). fd 0 is accepted on
 * through Deno's `node:net`, since `Deno.listen` cannot adopt an inherited socket.
 *
 * Behaviour: one read loop per connection, each read into memory the callee then owns; `pause()`
 * keeps the loop from reading (the kernel buffer fills and TCP pushes back on the peer); writes are
 * queued in order, small chunks merged, and `write()` returns false above 64 KiB queued until
 * `onDrain`; TCP_NODELAY on; a connection whose peer ends is ended too.
 * @module
 */
import type { Connection, ConnectionHandlers, SocketAddress } from "../socket.ts";
import { AdapterConnection, asError, cannotConnectToFd0, handOver, listenWith, NO_HANDLERS, probeUnix, socketError, WriteQueue } from "./common.ts";
import type { ConnectOptions, FetchHandler, HttpAddress, NativeHttpServer, RuntimeAdapter, RuntimeListener, RuntimeListenOptions, WorkerExit, WorkerProcess, WorkerSocket, WorkerSpawnOptions } from "./types.ts";
import { inheritedSocket, lineSplitter, listenAndKeepDuplicate } from "./workers.ts";

// The slice of the Deno namespace this file uses (no Deno type package is installed).
interface DenoAddr {
  transport: string;
  hostname?: string;
  port?: number;
  path?: string | null;
}
interface DenoConn {
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}
interface DenoListener {
  readonly addr: DenoAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}
declare const Deno: {
  listen(options: { hostname: string; port: number; transport?: "tcp" } | { transport: "unix"; path: string }): DenoListener;
  connect(options: { hostname: string; port: number; transport?: "tcp" } | { transport: "unix"; path: string }): Promise<DenoConn>;
  serve(
    options: { hostname: string; port: number; reusePort?: boolean; onListen?: (addr: { port: number }) => void },
    handler: FetchHandler,
  ): { addr: { port: number }; finished: Promise<void>; shutdown(): Promise<void> };
  env: { get(name: string): string | undefined; delete(name: string): void };
  readonly pid: number;
};

/**
 * Bytes per read, at most and at first. A read waits with its buffer, so an idle kept connection
 * holds one: 64 KiB each made 10 000 idle connections cost 617 MiB. Reads start small, double
 * while they fill the buffer (a body streaming in), and drop back after one that uses little.
 * A read that fills less than half of its buffer is copied out so the buffer is reused.
 */
const MAX_READ_SIZE = 64 * 1024;
// 2 KiB, not 512 B: 512-byte first reads saved idle connections ~1.5 KiB each, but split a
// multiplexed backend connection's answers across more reads on the Client side, and a CI run's
// failover test then saw a response cut by a SIGKILL between its STDOUT and its END_REQUEST.
const MIN_READ_SIZE = 2 * 1024;
/** Queued bytes above which `write()` returns false. */
const HIGH_WATER_MARK = 64 * 1024;

class DenoConnection extends AdapterConnection {
  readonly #conn: DenoConn;
  #handlers: ConnectionHandlers = NO_HANDLERS;
  readonly #queue = new WriteQueue();
  #writing = false;
  #needDrain = false;
  #paused = false;
  #wake: (() => void) | undefined;
  /** The peer ended (read returned EOF). */
  #readEnded = false;
  /** end() was called: shut down writing once the queue is flushed. */
  #ending = false;
  /** Our FIN was sent. */
  #writeEnded = false;
  #closed = false;

  constructor(conn: DenoConn, unixPath: string | undefined) {
    const { remoteAddr, localAddr } = conn;
    super(unixPath, { remoteAddress: remoteAddr.hostname, remotePort: remoteAddr.port, localAddress: localAddr.hostname, localPort: localAddr.port });
    this.#conn = conn;
    if (unixPath === undefined) conn.setNoDelay?.(true);
  }

  /** Installs the handlers and starts reading. */
  attach(handlers: ConnectionHandlers): void {
    this.#handlers = handlers;
    if (!this.#closed) void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    let buffer: Uint8Array | undefined;
    let size = MIN_READ_SIZE;
    while (!this.#closed) {
      if (this.#paused) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      if (buffer === undefined || buffer.byteLength !== size) buffer = new Uint8Array(size);
      let count: number | null;
      try {
        count = await this.#conn.read(buffer);
      } catch (error) {
        // A read cut short by our own close is not an error worth reporting.
        if (!this.#closed) this.#finish(asError(error));
        return;
      }
      if (count === null) {
        this.#readEnded = true;
        if (this.#writeEnded) this.#finish();
        else this.end();
        return;
      }
      if (count === 0) continue;
      let chunk: Uint8Array | undefined;
      if (count >= size / 2) {
        chunk = buffer.subarray(0, count);
        buffer = undefined;
      } else {
        chunk = buffer.slice(0, count);
      }
      // A full read: more is waiting, read more at once. A read that used under a quarter: the
      // peer has paused (a request's params, then nothing), so the next wait holds little.
      if (count === size) size = Math.min(size * 2, MAX_READ_SIZE);
      else if (count < size / 4) size = MIN_READ_SIZE;
      // pause() may have been called while the read was in flight: hold the chunk until resume().
      while (this.#paused && !this.#closed) await new Promise<void>((resolve) => (this.#wake = resolve));
      if (this.#closed) return;
      try {
        this.#handlers.onData(chunk);
      } catch (error) {
        // A throwing handler is a bug in this connection's code; it must not become an unhandled rejection.
        this.#finish(asError(error));
        return;
      }
      // The loop's frame outlives the iteration: without this, an idle connection's next read would
      // keep the last chunk (and the buffer under it) alive while it waits.
      chunk = undefined;
    }
  }

  get bufferedAmount(): number {
    return this.#queue.bytes;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.#closed || this.#ending) return false;
    this.#queue.push(chunks);
    if (!this.#writing && !this.#queue.empty) void this.#flush();
    if (this.#queue.bytes >= HIGH_WATER_MARK) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    const queue = this.#queue;
    try {
      while (!queue.empty && !this.#closed) queue.consume(await this.#conn.write(queue.peek()));
    } catch (error) {
      this.#writing = false;
      if (!this.#closed) this.#finish(asError(error));
      return;
    }
    this.#writing = false;
    if (this.#closed) return;
    if (this.#needDrain) {
      this.#needDrain = false;
      this.#handlers.onDrain();
    }
    if (this.#ending && queue.empty && !this.#writing) void this.#shutdownWrite();
  }

  async #shutdownWrite(): Promise<void> {
    if (this.#writeEnded || this.#closed) return;
    this.#writeEnded = true;
    try {
      await this.#conn.closeWrite();
    } catch (error) {
      // The peer may have gone already (ENOTCONN): the connection is over either way.
      this.#finish(this.#readEnded ? undefined : asError(error));
      return;
    }
    if (this.#readEnded) this.#finish();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (!this.#writing && this.#queue.empty) void this.#shutdownWrite();
  }

  destroy(error?: Error): void {
    this.#finish(error);
  }

  #finish(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.clear();
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    // Never from inside write()/end()/destroy(), and after accept() has returned the handlers.
    queueMicrotask(() => this.#handlers.onClose(error));
  }
}

function probe(path: string): Promise<boolean> {
  return probeUnix(() => Deno.connect({ transport: "unix", path }));
}

function denoTarget(address: SocketAddress): { hostname: string; port: number; transport: "tcp" } | { transport: "unix"; path: string } {
  if (address.transport === "tcp") return { transport: "tcp", hostname: address.hostname, port: address.port };
  if (address.transport === "unix") return { transport: "unix", path: address.path };
  throw new TypeError("unreachable: fd addresses are handled before");
}

async function listen(address: SocketAddress, accept: (connection: Connection) => ConnectionHandlers, options?: RuntimeListenOptions): Promise<RuntimeListener> {
  // Deno.listen cannot adopt a file descriptor (denoland/deno#14006); Deno's node:net can.
  // Deno.listenTls cannot ask for a client certificate, nor change its own: Deno's node:tls can.
  if (address.transport === "fd" || options?.tls !== undefined) return (await import("./node.ts")).nodeRuntime.listen(address, accept, options);
  const unixPath = address.transport === "unix" ? address.path : undefined;
  return listenWith(address, options, probe, () => {
    const listener = Deno.listen(denoTarget(address));
    let closed = false;
    const accepting = (async () => {
      while (!closed) {
        let conn: DenoConn;
        try {
          conn = await listener.accept();
        } catch {
          if (closed) return;
          // EMFILE and friends: back off briefly instead of spinning, then keep accepting.
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        handOver(new DenoConnection(conn, unixPath), accept);
      }
    })();
    return {
      address: address.transport === "tcp" ? { transport: "tcp", hostname: listener.addr.hostname ?? address.hostname, port: listener.addr.port ?? address.port } : address,
      async close(): Promise<void> {
        closed = true;
        try {
          listener.close();
        } catch {
          // Already closed.
        }
        // Deno frees the socket only once the pending accept() has failed: until then the kernel
        // would still complete handshakes (and reset them), so "closed" means after that.
        await accepting;
      },
    };
  });
}

async function connect(address: SocketAddress, handlers: ConnectionHandlers, options?: ConnectOptions): Promise<Connection> {
  if (address.transport === "fd") throw cannotConnectToFd0(address.fd);
  // One TLS implementation on every runtime (see node.ts): the same checks, errors and options.
  if (options?.tls !== undefined) return (await import("./node.ts")).nodeRuntime.connect(address, handlers, options);
  let conn: DenoConn;
  try {
    conn = await Deno.connect(denoTarget(address));
  } catch (error) {
    throw socketError("connect", address, error);
  }
  const connection = new DenoConnection(conn, address.transport === "unix" ? address.path : undefined);
  connection.attach(handlers);
  return connection;
}

/** Serves a fetch handler with `Deno.serve`. */
function serveHttp(handler: FetchHandler, address: HttpAddress): Promise<NativeHttpServer> {
  const server = Deno.serve({ hostname: address.hostname, port: address.port, reusePort: address.reusePort ?? false, onListen() {} }, handler);
  return Promise.resolve({
    port: server.addr.port,
    shutdown: () => server.shutdown(),
    abort: () => {}, // Deno's shutdown() already waits for in-flight requests; nothing to cut more.
  });
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // No permission to read the environment: the variable counts as unset.
    return undefined;
  }
}

function unsetEnv(name: string): void {
  try {
    Deno.env.delete(name);
  } catch {
    // No permission to write the environment: nothing to unset.
  }
}

function pid(): number {
  return Deno.pid;
}

/**
 * The Deno runtime adapter (`Deno.listen` / `Deno.connect`, `Deno.serve` for HTTP).
 *
 * @example
 * ```ts
 * import { denoRuntime } from "./deno.ts";
 * const connection = await denoRuntime.connect({ transport: "unix", path: "/run/php-fpm.sock" }, {
 *   onData: (chunk) => console.log(chunk.length), onDrain: () => {}, onClose: () => {},
 * });
 * ```
 */
export const denoRuntime: RuntimeAdapter = { name: "deno", listen, connect, serveHttp, env, unsetEnv, pid, listenForWorkers, spawnWorker, commandFor, workerListenFd: 0 };

// ---------------------------------------------------------------------------------------------
// The process manager's needs. Deno's node:child_process cannot hand a descriptor to a child (the
// child gets a pipe), so the socket is put at this process's own fd 0 with libc's dup2 (FFI) and
// the child inherits it through Deno.Command's `stdin: "inherit"`. Linux only: the libc name and
// /proc are.

// The slice of the Deno namespace the manager's part uses.
interface DenoChild {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal: string): void;
}
interface DenoProcessApi {
  readonly build: { os: string };
  execPath(): string;
  dlopen(path: string, symbols: Record<string, { parameters: string[]; result: string }>): { symbols: Record<string, (...args: number[]) => number> };
  Command: new (program: string, options: { args: string[]; env: Record<string, string>; stdin: "inherit"; stdout: "piped"; stderr: "piped" }) => { spawn(): DenoChild };
}
const denoProcess = (): DenoProcessApi => (globalThis as unknown as { Deno: DenoProcessApi }).Deno;

let libc: { dup(fd: number): number; dup2(fd: number, to: number): number; close(fd: number): number } | undefined;
function loadLibc(): NonNullable<typeof libc> {
  if (libc) return libc;
  const deno = denoProcess();
  if (deno.build.os !== "linux") throw new Error(`fcgi --workers on Deno needs Linux (this is ${deno.build.os}); run the pool on Node or Bun here`);
  const { symbols } = deno.dlopen("libc.so.6", {
    fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    dup2: { parameters: ["i32", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  // The manager's own copy is close-on-exec (F_DUPFD_CLOEXEC): Deno's Command passes every other
  // descriptor on, and a worker must hold the socket once, on fd 0, not also wherever it lay here.
  const F_DUPFD_CLOEXEC = 1030;
  libc = { dup: (fd) => symbols.fcntl!(fd, F_DUPFD_CLOEXEC, 3), dup2: (fd, to) => symbols.dup2!(fd, to), close: (fd) => symbols.close!(fd) };
  return libc;
}

/**
 * The descriptor of a node:net server: `_handle.fd` for Unix sockets; for TCP (whose handle has
 * none on Deno) the fd of this process whose socket inode is the one LISTENing on the port in
 * /proc/net/tcp or tcp6.
 */
async function denoServerFd(server: { _handle?: { fd?: number } }, address: SocketAddress): Promise<number> {
  const fd = server._handle?.fd;
  if (typeof fd === "number" && fd >= 0) return fd;
  if (address.transport !== "tcp") throw new Error("the listening socket's descriptor is unknown");
  const { readFileSync, readdirSync, readlinkSync } = await import("node:fs");
  const port = address.port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the inode.
      if (fields.length > 9 && fields[1]!.endsWith(`:${port}`) && fields[3] === "0A") inodes.add(fields[9]!);
    }
  }
  for (const entry of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${entry}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && inodes.has(inode)) return Number(entry);
    } catch {
      // Closed meanwhile.
    }
  }
  throw new Error(`no descriptor of this process listens on port ${address.port}`);
}

async function listenForWorkers(address: SocketAddress, options?: { socketMode?: number }): Promise<WorkerSocket> {
  if (address.transport === "fd") return inheritedSocket(address);
  const c = loadLibc();
  return await listenAndKeepDuplicate(address, options?.socketMode, probe, (server, bound) => denoServerFd(server as unknown as { _handle?: { fd?: number } }, bound), {
    dup: (fd) => c.dup(fd),
    close: (fd) => c.close(fd),
  });
}

function spawnWorker(options: WorkerSpawnOptions): WorkerProcess {
  // The child inherits this process's fd 0: make it the listening socket (idempotent; nothing to do
  // when the socket was inherited on fd 0).
  if (options.listenFd !== 0 && loadLibc().dup2(options.listenFd, 0) < 0) throw new Error("dup2() of the listening socket onto fd 0 failed");
  const [program, ...args] = options.command;
  const child = new (denoProcess().Command)(program!, { args, env: { ...options.env }, stdin: "inherit", stdout: "piped", stderr: "piped" }).spawn();
  const pump = async (stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> => {
    const lines = lineSplitter(onLine);
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        lines.push(decoder.decode(value, { stream: true }));
      }
    } catch {
      // The pipe broke: the worker is gone.
    }
    lines.end();
  };
  const pumps = Promise.all([pump(child.stdout, options.onStdout), pump(child.stderr, options.onStderr)]);
  let done = false;
  const exited = Promise.all([child.status, pumps]).then(([status]): WorkerExit => {
    done = true;
    return { code: status.signal ? null : status.code, signal: status.signal };
  });
  return {
    pid: child.pid,
    kill: (signal) => {
      if (done) return;
      try {
        child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    },
    exited,
  };
}

function commandFor(path: string): string[] {
  // --unstable-net: Deno.serve's reusePort (fcgi proxy --workers) is unstable in Deno 2.
  return [denoProcess().execPath(), "run", "-A", "--unstable-net", path];
}
