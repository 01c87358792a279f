/**
 * What the three socket adapters share: the steps of `listen()` around each runtime's own bind,
 * the address fields and hand-over of a new connection, error messages that name the address,
 * Unix socket file handling (stale files, mode, removal), and the write queue of the adapters
 * whose runtime reports partial writes (Deno, Bun).
 * @module
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { formatAddress } from "../address.ts";
import type { Connection, ConnectionHandlers, Listener, ListenOptions, SocketAddress } from "../socket.ts";

/** An Error with the errno-style code of the failure (ECONNREFUSED, EADDRINUSE, ENOENT, …). */
export interface SocketError extends Error {
  /** The errno-style code, or undefined if the runtime gave none. */
  code: string | undefined;
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused (nothing listens there)",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available on this machine",
  ENOENT: "no such socket file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTSOCK: "not a socket",
};

/**
 * Wraps a runtime's listen/connect failure so every adapter reports the same shape:
 * `connect ECONNREFUSED 127.0.0.1:9000: connection refused (…)`, with `code` and the original as `cause`.
 */
export function socketError(op: "listen" | "connect", address: SocketAddress, cause: unknown, reason?: string): SocketError {
  const raw = (cause as { code?: unknown } | null)?.code;
  const code = typeof raw === "string" ? raw : undefined;
  const detail = reason ?? (code !== undefined ? REASONS[code] : undefined) ?? (cause instanceof Error ? cause.message : String(cause));
  const error = new Error(`${op}${code ? " " + code : ""} ${formatAddress(address)}: ${detail}`, { cause }) as SocketError;
  error.code = code;
  return error;
}

/** The errors a listen on an inherited fd gives when it is not a listening socket. */
const NOT_A_LISTENING_SOCKET = new Set(["EINVAL", "ENOTSOCK", "EBADF", "ENOTSUP", "EOPNOTSUPP"]);

/** A runtime's listen failure as every adapter reports it (an inherited fd that is no listening socket explained). */
function listenFailure(address: SocketAddress, cause: unknown): SocketError {
  const code = (cause as { code?: string } | null)?.code;
  if (address.transport === "fd" && code !== undefined && NOT_A_LISTENING_SOCKET.has(code)) return notListeningOnFd(address.fd, cause);
  return socketError("listen", address, cause);
}

/** The message every adapter gives when an inherited fd (0, or systemd's from 3 on) is not a listening socket. */
function notListeningOnFd(fd: number, cause: unknown): SocketError {
  const why = fd === 0
    ? "the FastCGI convention (FCGI_LISTENSOCK_FILENO) needs a web server or spawn-fcgi to start the application with one"
    : "LISTEN_FDS promised one there (systemd socket activation)";
  return socketError(
    "listen",
    { transport: "fd", fd },
    cause,
    `file descriptor ${fd} is not a listening socket; ${why}. Pass a listen address instead (for example 127.0.0.1:9000 or unix:/run/app.sock)`,
  );
}

/**
 * Makes `path` free for a new Unix socket: a stale socket file (nobody accepts on it: `isLive`
 * says so) is removed; a live one, or a file that is not a socket, is an EADDRINUSE error.
 */
export async function claimUnixPath(path: string, isLive: (path: string) => Promise<boolean>): Promise<void> {
  const address: SocketAddress = { transport: "unix", path };
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return;
    throw socketError("listen", address, error);
  }
  const inUse = { code: "EADDRINUSE" };
  if (!isSocket) throw socketError("listen", address, inUse, "the path exists and is not a socket; not removing it");
  if (await isLive(path)) throw socketError("listen", address, inUse, "address in use: another process accepts connections on this socket");
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") throw socketError("listen", address, error);
  }
}

/** Probes a Unix socket with `connect`: true if something accepted, false if refused or gone. */
export async function probeUnix(connect: () => Promise<{ close(): void }>): Promise<boolean> {
  try {
    (await connect()).close();
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code ?? ((error as { cause?: { code?: string } }).cause?.code);
    // Anything but "refused"/"gone" (EACCES, say) leaves the file alone: better an error than deleting a live socket.
    return !(code === "ECONNREFUSED" || code === "ENOENT");
  }
}

/**
 * After listening on a Unix socket: applies `mode` and returns the file's inode, so closing removes
 * the file only if it is still ours (another server may have replaced it meanwhile).
 */
export function adoptUnixPath(path: string, mode: number | undefined): number | undefined {
  if (mode !== undefined) chmodSync(path, mode);
  try {
    return lstatSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Removes the socket file at `path` if it is still the one with inode `ino`. */
export function releaseUnixPath(path: string, ino: number | undefined): void {
  try {
    const stat = lstatSync(path);
    if (stat.isSocket() && (ino === undefined || stat.ino === ino)) unlinkSync(path);
  } catch {
    // Already gone (Node and Deno remove it on close): nothing to do.
  }
}

/** The error of `connect()` to an inherited fd (fd 0 or systemd's), on every adapter. */
export function cannotConnectToFd0(fd: number = 0): TypeError {
  return new TypeError(`cannot connect to fd:${fd}: it is a listening socket; connect to a TCP or Unix address`);
}

/** A listening socket as one runtime opened it, before the steps every adapter shares around it. */
export interface BoundSocket {
  /** Where it listens: the real TCP address (the real port when 0 was asked for), or the address asked for. */
  readonly address: SocketAddress;
  /** Stops accepting at once; resolves when the runtime has let the socket go. Called once. */
  close(): Promise<void>;
}

/**
 * `Runtime.listen` around an adapter's own `bind`: a Unix path is claimed first (a stale file
 * replaced, a live one refused, `probe` tells which), a bind failure names the address, `mode`
 * is applied after bind, and closing (once) removes the socket file if it is still ours.
 */
export async function listenWith(
  address: SocketAddress,
  options: ListenOptions | undefined,
  probe: (path: string) => Promise<boolean>,
  bind: () => BoundSocket | Promise<BoundSocket>,
): Promise<Listener> {
  if (address.transport === "unix") await claimUnixPath(address.path, probe);
  let bound: BoundSocket;
  try {
    bound = await bind();
  } catch (error) {
    throw listenFailure(address, error);
  }
  let ino: number | undefined;
  if (address.transport === "unix") {
    try {
      ino = adoptUnixPath(address.path, options?.mode);
    } catch (error) {
      void bound.close();
      throw socketError("listen", address, error, `cannot set the socket file mode: ${asError(error).message}`);
    }
  }
  let closing: Promise<void> | undefined;
  return {
    address: bound.address,
    close(): Promise<void> {
      if (closing === undefined) {
        closing = bound.close();
        if (address.transport === "unix") releaseUnixPath(address.path, ino);
      }
      return closing;
    },
  };
}

/** A connection's addresses as a TCP socket reports them (missing ones are "" and 0). */
export interface TcpEndpoints {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

/**
 * What every adapter's connection shares: its four address fields, set once from the Unix socket
 * path (the peer is "" and 0, this side is the path) or from the TCP socket, and `attach`, which
 * installs the handlers (after `accept` returned them, or at once for `connect`).
 */
export abstract class AdapterConnection implements Connection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;

  constructor(unixPath: string | undefined, tcp: TcpEndpoints) {
    if (unixPath !== undefined) {
      this.remoteAddress = "";
      this.remotePort = 0;
      this.localAddress = unixPath;
      this.localPort = 0;
    } else {
      this.remoteAddress = tcp.remoteAddress ?? "";
      this.remotePort = tcp.remotePort ?? 0;
      this.localAddress = tcp.localAddress ?? "";
      this.localPort = tcp.localPort ?? 0;
    }
  }

  abstract attach(handlers: ConnectionHandlers): void;
  abstract write(chunks: readonly Uint8Array[]): boolean;
  abstract get bufferedAmount(): number;
  abstract pause(): void;
  abstract resume(): void;
  abstract end(): void;
  abstract destroy(error?: Error): void;
}

/** Hands a new connection to `accept` and installs the handlers it returns; an `accept` that throws destroys that connection only. */
export function handOver(connection: AdapterConnection, accept: (connection: Connection) => ConnectionHandlers): void {
  try {
    connection.attach(accept(connection));
  } catch (error) {
    connection.destroy(asError(error));
  }
}

/** Chunks below this size are copied together so one system call sends several of them. */
const SMALL_CHUNK = 16 * 1024;
/** The most bytes one merged batch holds. */
const BATCH = 64 * 1024;
/** The chunk array of every empty queue: an idle connection's queue holds none of its own. Frozen, so a push to it would throw. */
const NO_CHUNKS: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];

/**
 * The bytes accepted by `write()` and not yet taken by the kernel, in order. Small chunks (a record
 * header, a short STDOUT record) are merged on the way out: a syscall per 8-byte header would
 * dominate; large chunks go out as they are, uncopied.
 */
export class WriteQueue {
  /** Bytes queued. */
  bytes = 0;
  #chunks: Uint8Array[] = NO_CHUNKS;
  #head = 0;

  /** True when nothing is queued. */
  get empty(): boolean {
    return this.#head === this.#chunks.length;
  }

  /** Appends chunks (the queue keeps references: callers must not change them afterwards). */
  push(chunks: readonly Uint8Array[]): void {
    for (const chunk of chunks) {
      if (chunk.byteLength === 0) continue;
      if (this.#chunks === NO_CHUNKS) this.#chunks = [];
      this.#chunks.push(chunk);
      this.bytes += chunk.byteLength;
    }
  }

  /** The next bytes to send: the head chunk, or a run of small chunks copied into one. Queue must not be empty. */
  peek(): Uint8Array {
    const chunks = this.#chunks;
    const head = this.#head;
    const first = chunks[head]!;
    if (first.byteLength >= SMALL_CHUNK || head + 1 === chunks.length || chunks[head + 1]!.byteLength >= SMALL_CHUNK) return first;
    let size = 0;
    let end = head;
    while (end < chunks.length && chunks[end]!.byteLength < SMALL_CHUNK && size + chunks[end]!.byteLength <= BATCH) size += chunks[end++]!.byteLength;
    if (end - head === 1) return first;
    const merged = new Uint8Array(size);
    let at = 0;
    for (let i = head; i < end; i++) {
      merged.set(chunks[i]!, at);
      at += chunks[i]!.byteLength;
    }
    // Replace the run by the merged copy so a partial write of it resumes in the right place.
    chunks.splice(head, end - head, merged);
    return merged;
  }

  /** Records that `count` bytes of what {@link peek} returned were sent. */
  consume(count: number): void {
    if (count <= 0) return;
    const first = this.#chunks[this.#head]!;
    this.bytes -= count;
    if (count < first.byteLength) {
      this.#chunks[this.#head] = first.subarray(count);
      return;
    }
    this.#head++;
    if (this.#head === this.#chunks.length) {
      this.#chunks = NO_CHUNKS;
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Drops everything queued. */
  clear(): void {
    this.#chunks = NO_CHUNKS;
    this.#head = 0;
    this.bytes = 0;
  }
}

/** Handlers that ignore everything: in place until `accept` has returned the real ones. */
export const NO_HANDLERS: ConnectionHandlers = {
  onData() {},
  onDrain() {},
  onClose() {},
};

/** Turns whatever was thrown into an Error. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
