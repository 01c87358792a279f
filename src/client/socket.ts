/**
 * One connection to a FastCGI backend: the runtime's socket driven through the sans-IO
 * ClientConnection, events routed to the requests on it, writes with backpressure,
 * and reads paused when the consumers of its responses stop reading.
 * @module
 */
import type { Params } from "../codec/pairs.ts";
import { FastCGIError } from "../errors.ts";
import { ClientConnection } from "../protocol/client_connection.ts";
import type { Connection, ConnectionHandlers } from "../socket.ts";
import { concatBytes } from "../bytes.ts";

/** What a socket tells each request it carries. */
export interface SocketRequest {
  /** A response body consumer is over its high-water mark (the socket may pause for it). */
  readonly full: boolean;
  onStdout(data: Uint8Array): void;
  onStderr(data: Uint8Array): void;
  onEnd(appStatus: number, protocolStatus: number): void;
  onLost(error: FastCGIError): void;
}

/** What a socket tells its owner (the pool). */
export interface SocketOwner {
  /**
   * The socket takes no more requests: it is closing or closed, whatever the reason. Called
   * once, as soon as that is known, so the pool's slot is free at once.
   */
  socketRetired(socket: BackendSocket): void;
}

/** Output smaller than this is copied into one buffer before it is written. */
const MERGE_BELOW = 4096;

/** How long a socket given up on (after an abort) may take to close before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

/**
 * A connected backend socket. Created before the runtime connects (its handlers are what
 * `Runtime.connect` takes); {@link attach} installs the connection once it exists.
 */
export class BackendSocket implements ConnectionHandlers {
  /** The protocol state of this connection. */
  readonly core: ClientConnection = new ClientConnection();
  /** requestId → its request; null for a request given up on whose END_REQUEST is still due. */
  readonly requests: Map<number, SocketRequest | null> = new Map();
  /** Requests on this socket that still want their response. */
  live = 0;
  /** Several requests may share this socket (the backend said FCGI_MPXS_CONNS=1, and did not refuse). */
  multiplex: boolean;
  /** Requests begun on this socket so far. */
  served = 0;
  /** When it last became idle (Date.now()), for the pool's idle timeout. */
  idleSince = 0;
  /** close() or destroy() was called, or the socket closed: it takes no more requests. */
  closing = false;
  /** The socket is gone. */
  closed = false;
  /** Called with each GET_VALUES_RESULT (the pool's probe and Client.values use dedicated sockets). */
  onValues: ((values: Params) => void) | null = null;
  /** Called for UNKNOWN_TYPE: the backend did not understand a management record. */
  onUnknownType: ((recordType: number) => void) | null = null;
  /** The error the socket closed with, if any. */
  closeError: Error | undefined;
  /** When it connected (Date.now()). */
  connectedAt = 0;
  /** The backend sent something on it: a worker took it (it is not waiting in a listen backlog). */
  answered = false;

  #connection: Connection | null = null;
  readonly #owner: SocketOwner;
  #writable = true;
  #drainWaiters: Array<() => void> = [];
  #paused = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Close once no request runs here any more (one was given up on, the rest must not be). */
  #closeWhenDone = false;

  constructor(owner: SocketOwner, multiplex: boolean) {
    this.#owner = owner;
    this.multiplex = multiplex;
  }

  /** Installs the connected socket. */
  attach(connection: Connection): void {
    this.#connection = connection;
    this.connectedAt = Date.now();
  }

  /** True when the socket can take a new request now (connected, not closing, protocol usable). */
  get usable(): boolean {
    return !this.closing && this.#connection !== null && this.core.usable;
  }

  /** False while the runtime's write buffer is over its high-water mark. */
  get writable(): boolean {
    return this.#writable;
  }

  // ---- ConnectionHandlers -----------------------------------------------------------------

  onData(chunk: Uint8Array): void {
    this.answered = true;
    this.core.receive(chunk);
    this.#dispatch();
    this.flush();
  }

  onDrain(): void {
    this.#writable = true;
    this.#wake();
  }

  onClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (error !== undefined) this.closeError ??= error;
    clearTimeout(this.#graceTimer);
    this.#retire();
    // Every request still waiting learns that its response is incomplete (`lost`).
    this.core.receiveEnd();
    this.#dispatch();
    this.#writable = true;
    this.#wake();
  }

  /** Routes the protocol core's events to the requests. */
  #dispatch(): void {
    const core = this.core;
    for (let e = core.nextEvent(); e !== null; e = core.nextEvent()) {
      switch (e.type) {
        case "stdout": {
          const request = this.requests.get(e.requestId);
          if (request) request.onStdout(e.data);
          break;
        }
        case "stderr": {
          const request = this.requests.get(e.requestId);
          if (request) request.onStderr(e.data);
          break;
        }
        case "stdoutEnd":
          break;
        case "end": {
          const request = this.#take(e.requestId);
          if (request) request.onEnd(e.appStatus, e.protocolStatus);
          if (this.#closeWhenDone && this.live === 0) this.close();
          break;
        }
        case "lost": {
          const request = this.#take(e.requestId);
          if (request) request.onLost(e.error);
          break;
        }
        case "values":
          this.onValues?.(e.values);
          break;
        case "unknownType":
          this.onUnknownType?.(e.recordType);
          break;
        case "error":
          // `lost` follows for every active request; the connection is good for nothing more.
          this.closeError ??= e.error;
          this.destroy(e.error);
          break;
      }
    }
  }

  // ---- driving ----------------------------------------------------------------------------

  /** Registers a request just begun on this socket. */
  add(requestId: number, request: SocketRequest): void {
    this.requests.set(requestId, request);
    this.live++;
    this.served++;
  }

  /** Writes whatever the protocol core queued. */
  flush(): void {
    const connection = this.#connection;
    const size = this.core.pendingOutputBytes;
    if (connection === null || size === 0) return;
    let output = this.core.takeOutput();
    // A request's BEGIN_REQUEST, PARAMS and empty STDIN are a few small pieces: one copy makes
    // them one plain write, cheaper than a gathered one on every runtime.
    if (output.length > 1 && size <= MERGE_BELOW) output = [concatBytes(output, size)];
    if (!connection.write(output)) this.#writable = false;
  }

  /** Resolves once the socket can take more writes (or is closed). */
  drained(): Promise<void> {
    if (this.#writable || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * A request is given up on (abort, timeout, a bad response): ABORT_REQUEST goes out.
   * A socket carrying only this request is closed (the backend cannot be trusted to answer the
   * abort soon: PHP-FPM does not until the script ends); a multiplexed one keeps the id reserved
   * until its END_REQUEST arrives, and serves the others meanwhile.
   */
  abandon(requestId: number): void {
    if (this.requests.get(requestId) == null) return;
    this.requests.set(requestId, null);
    this.live--;
    this.core.abort(requestId);
    this.flush();
    if (this.multiplex) this.updateFlow();
    // A CANT_MPX_CONN may have turned multiplexing off under requests still running here:
    // they finish first, then the connection closes.
    else if (this.live === 0) this.close();
    else this.#closeWhenDone = true;
  }

  /**
   * Pauses reading when every request still reading from this socket has a full body queue,
   * resumes otherwise. On a multiplexed socket one slow consumer must not stall the others, so
   * it keeps reading while any consumer keeps up (the slow one buffers, up to its limit).
   */
  updateFlow(): void {
    const connection = this.#connection;
    if (connection === null || this.closed) return;
    let pause = this.live > 0;
    if (pause) {
      for (const request of this.requests.values()) {
        if (request !== null && !request.full) {
          pause = false;
          break;
        }
      }
    }
    if (pause === this.#paused) return;
    this.#paused = pause;
    if (pause) connection.pause();
    else connection.resume();
  }

  /** Ends the connection once written output is flushed; destroys it if it lingers. */
  close(): void {
    if (this.closing) return;
    this.#retire();
    const connection = this.#connection;
    if (connection === null) return;
    if (this.#paused) {
      this.#paused = false;
      connection.resume();
    }
    connection.end();
    // A peer busy elsewhere may not close its side for long: do not hold the socket for it.
    this.#graceTimer = setTimeout(() => connection.destroy(), CLOSE_GRACE_MS);
  }

  /** Closes the connection now. */
  destroy(error?: Error): void {
    this.#retire();
    this.#connection?.destroy(error);
  }

  #retire(): void {
    if (this.closing) return;
    this.closing = true;
    this.#owner.socketRetired(this);
  }

  #take(requestId: number): SocketRequest | null | undefined {
    const request = this.requests.get(requestId);
    this.requests.delete(requestId);
    if (request) this.live--;
    if (this.live === 0 && this.#paused) this.updateFlow();
    return request;
  }

  #wake(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }
}
