/**
 * The socket vocabulary every layer shares: addresses, a connected socket and its handlers, a
 * listening socket. The runtime adapters (src/runtime/) implement these; the application and
 * client layers drive them; address parsing (src/address.ts) produces them. Types and one
 * constant, so that neither side imports the other.
 * @module
 */

/** The listening socket a web server or spawn-fcgi hands the application (file descriptor 0). */
export const FCGI_LISTENSOCK_FILENO = 0;

/**
 * Where to listen or connect: TCP (IPv4 or IPv6) or a Unix socket path, or an inherited listening
 * socket: fd 0 (FCGI_LISTENSOCK_FILENO, from a web server or spawn-fcgi) or the fds from 3 on that
 * systemd socket activation passes (LISTEN_FDS).
 */
export type SocketAddress =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string }
  | { transport: "fd"; fd: number };

/** What a connected socket reports. The adapter calls these; the protocol layer supplies them. */
export interface ConnectionHandlers {
  /** Bytes arrived. The chunk is the callee's to keep: the adapter never reuses its memory, so views of it stay valid. */
  onData(chunk: Uint8Array): void;
  /** The socket can take more writes after `write()` returned false. */
  onDrain(): void;
  /** The socket closed (cleanly or with an error). Called once. */
  onClose(error?: Error): void;
}

/** One connected socket, as the protocol layer drives it. */
export interface Connection {
  /** Queue bytes; returns false when the runtime's buffer is over its high-water mark (wait for `onDrain`). */
  write(chunks: readonly Uint8Array[]): boolean;
  /** Bytes `write()` accepted that the kernel has not taken yet. */
  readonly bufferedAmount: number;
  /**
   * Gives back the memory of a buffer whose bytes were all written (bufferedAmount was 0 since)
   * and that nothing will read again. Only where that helps the runtime: Bun's collector is slow
   * to return large buffers (the soak's RSS swung 74-160 MiB), while detaching one costs V8 (Deno)
   * 40 % of its 1 MiB download rate. Absent: the collector frees it.
   */
  freeWritten?(buffer: ArrayBufferLike): void;
  /** Stop delivering `onData` until `resume()`: backpressure toward the peer. */
  pause(): void;
  /** Deliver `onData` again. */
  resume(): void;
  /** Close after everything written so far is flushed. */
  end(): void;
  /** Close now, dropping what is unsent. */
  destroy(error?: Error): void;
  /** The peer's address ("" for Unix sockets). */
  readonly remoteAddress: string;
  /** The peer's port (0 for Unix sockets). */
  readonly remotePort: number;
  /** This side's address (the socket path for Unix sockets). */
  readonly localAddress: string;
  /** This side's port (0 for Unix sockets). */
  readonly localPort: number;
}

/** Options of a runtime's `listen()`. */
export interface ListenOptions {
  /** File mode for a Unix socket file (for example 0o660). */
  mode?: number;
}

/** A listening socket. */
export interface Listener {
  /** Where it actually listens (the real port when 0 was asked for). */
  readonly address: SocketAddress;
  /** Stop accepting; established connections are not touched. */
  close(): Promise<void>;
}
