/**
 * One accepted socket: feeds its bytes to the sans-IO AppConnection, turns the events into
 * request tasks, writes their output, and decides when to stop reading (backpressure), when
 * to time out, and when to close.
 *
 * Flow control: the socket is paused only when some request holds too much unread input AND
 * no other request on the connection still needs input to arrive. Otherwise it keeps being
 * read, so one request that does not read its body never stalls the others; such a request
 * is ended once its unread input passes maxBufferedBytes (see RequestTask).
 *
 * The other way, output: once more than maxUnsentBytes wait for the peer to read them, or requests
 * wait to write theirs, the socket is paused too, whatever the requests need. A peer that writes
 * requests (or management records) and never reads the answers then holds about that much of this
 * process's memory, not one answer per request it sent; it is cut off after sendTimeout without
 * draining.
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { bodyPool } from "./body_pool.ts";
import { FastCGIError } from "../errors.ts";
import { IdMap } from "../id_map.ts";
import { AppConnection, type AppConnectionOptions, type AppEvent } from "../protocol/app_connection.ts";
import { ProtocolStatus, ROLE_BY_NAME } from "../protocol/constants.ts";
import type { Connection, ConnectionHandlers } from "../socket.ts";
import type { ResolvedOptions, ServerLog } from "./options.ts";
import { refusalOutput, refusalStatus } from "./refusal.ts";
import { RequestTask, type TaskHost } from "./task.ts";
import type { Handler, SocketInfo } from "./types.ts";
import type { Params } from "../codec/pairs.ts";

/** What a connection needs from its server. */
export interface ConnectionServer {
  readonly options: ResolvedOptions;
  readonly log: ServerLog;
  /** No new requests: connections close once idle (see AppSocket.closeWhenIdle). */
  readonly closing: boolean;
  /**
   * Counts a request in; false when FCGI_MAX_REQS are running, or when the server is closing,
   * unless `late`: the one request a connection may still bring while the server closes, which is served.
   */
  admit(late?: boolean): boolean;
  /** Counts a request out. */
  release(): void;
  /** The connection closed. */
  closed(connection: AppSocket): void;
  /** A request's handler is about to be called (it counts as running until `ended`). */
  began(task: RequestTask): void;
  /** A request ended (END_REQUEST, or its connection is gone). */
  ended(task: RequestTask): void;
  /** Counts a refusal by a limit. */
  refuse(limit: string): void;
  /** The core refused a request in its PARAMS; `limit` names the limit it broke, if one did. */
  refuseParams(limit: string | undefined): void;
  /** See {@link TaskHost.internalHandler}. */
  internalHandler(params: Params): Handler | undefined;
}

/** What a params refusal's log line adds: the pair that broke the limit, and the answer sent. */
function refusalNote(limit: string | undefined, param: string | undefined): string {
  if (limit === undefined) return "";
  return `${param === undefined ? "" : ` (at param ${JSON.stringify(param)})`}: answered ${refusalStatus(limit, param)}`;
}

/** Why a connection has a deadline, if it has one. */
type Deadline = "params" | "idle" | "drain" | "closing" | "late" | null;

/** How long a closing connection may wait for the peer to close its side before it is cut. */
const CLOSING_GRACE = 5000;
/** Waiting output up to this size is merged into one block (see #flush). */
const MERGE_MAX = 64 * 1024;
/**
 * While the server closes, how long a connection with no request running may take to bring one
 * more (see closeWhenIdle): one accepted meanwhile, or one open and idle when the close began.
 */
const LATE_GRACE = 1000;

/** What every connection of one server gives its core alike: made once per server, not per connection. */
type SharedCoreOptions = Omit<AppConnectionOptions, "admit">;
const sharedCoreOptions = new WeakMap<ConnectionServer, SharedCoreOptions>();

function coreOptions(server: ConnectionServer): SharedCoreOptions {
  let shared = sharedCoreOptions.get(server);
  if (shared !== undefined) return shared;
  const options = server.options;
  shared = {
    multiplex: options.multiplex,
    roles: {
      // The status and ping pages are answered in the responder role, with or without a fetch handler.
      responder: options.handlers[ROLE_BY_NAME.responder] !== undefined || options.statusPath !== undefined || options.pingPath !== undefined,
      authorizer: options.handlers[ROLE_BY_NAME.authorizer] !== undefined,
      filter: options.handlers[ROLE_BY_NAME.filter] !== undefined,
    },
    release: () => server.release(),
    values: { FCGI_MAX_CONNS: options.maxConnections, FCGI_MAX_REQS: options.maxRequests, FCGI_MPXS_CONNS: options.multiplex },
    pairLimits: { maxTotalBytes: options.maxParamsBytes, maxValueLength: options.maxParamsBytes },
    refusalOutput,
  };
  sharedCoreOptions.set(server, shared);
  return shared;
}

/**
 * The application side of one socket. It is also the socket's handlers (onData, onDrain, onClose):
 * what an idle kept connection holds is counted in thousands, so no closures or objects beside it
 * that a method or a getter can stand for.
 */
export class AppSocket implements TaskHost, ConnectionHandlers {
  readonly options: ResolvedOptions;
  readonly log: ServerLog;
  /** When the current deadline expires (Date.now() ms), 0 for none. */
  deadline = 0;
  deadlineKind: Deadline = null;

  readonly #server: ConnectionServer;
  readonly #core: AppConnection;
  readonly #tasks = new IdMap<RequestTask>();
  /** The socket's addresses: the connection itself, which keeps them after it closed. */
  readonly #endpoints: SocketInfo;
  #socketInfo: SocketInfo | undefined;
  #connection: Connection | undefined;
  #closed = false;
  #ending = false;
  #paused = false;
  #writable = true;
  /** Over maxUnsentBytes: input waits until the peer drains the output (the "drain" deadline). */
  #outputFull = false;
  #drainWaiters: (() => void)[] | undefined;
  /** Buffers to give back (to the body pool, or Connection.freeWritten) once the socket has written everything handed to it. */
  #toFree: ArrayBufferLike[] = [];
  #processing = false;
  #flushQueued = false;
  /** The server is closing and this connection's next request is still served (see closeWhenIdle). */
  #lateAdmission = false;

  constructor(server: ConnectionServer, connection: Connection) {
    this.#server = server;
    this.options = server.options;
    this.log = server.log;
    this.#connection = connection;
    this.#endpoints = connection;
    this.#core = new AppConnection({
      ...coreOptions(server),
      // While the server closes, a connection with requests running takes the peer's next ones
      // too: a multiplexing web server (HAProxy's mpxs-conns) keeps sending on it until its health
      // check notices, and OVERLOADED there fails the client's request; the connection ends
      // once idle (or at closeTimeout).
      admit: () => server.admit(this.#takeLateAdmission() || (server.closing && this.#tasks.size > 0)),
    });
    this.#setDeadline("params");
    if (server.closing) this.#allowLateRequest();
  }

  /** True once, for the one request a connection may still bring while the server closes. */
  #takeLateAdmission(): boolean {
    const late = this.#lateAdmission;
    this.#lateAdmission = false;
    return late;
  }

  /** The socket's addresses (made when first asked for: most requests never ask). */
  get socket(): SocketInfo {
    const endpoints = this.#endpoints;
    return (this.#socketInfo ??= {
      remoteAddress: endpoints.remoteAddress,
      remotePort: endpoints.remotePort,
      localAddress: endpoints.localAddress,
      localPort: endpoints.localPort,
    });
  }

  /** The peer, for log lines. */
  get peer(): string {
    const endpoints = this.#endpoints;
    return endpoints.remoteAddress ? `${endpoints.remoteAddress}:${endpoints.remotePort}` : "unix socket peer";
  }

  /** The handlers to give the runtime adapter: this connection itself. */
  handlers(): ConnectionHandlers {
    return this;
  }

  /** Requests running on this connection. */
  get activeRequests(): number {
    return this.#tasks.size;
  }

  /**
   * The server closes gracefully. A connection with requests running (or one still in its PARAMS)
   * closes once they are answered (#flush). One without is not closed at once: the web server may
   * have just sent a request on it (the first on a connection it has just opened, or the next on a
   * kept one) that this process has not read yet, and a connection closed under a request is a 502
   * that nginx cannot retry on a new connection, nor for a POST. So it gets LATE_GRACE to bring one
   * more request, which is served, and closes right after the answer; one that brings nothing
   * closes after the grace.
   */
  closeWhenIdle(): void {
    if (this.#closed || this.#ending || this.#busy) return;
    // Output the peer does not read: it is not about to send a request.
    if (this.deadlineKind === "drain") this.#end();
    else this.#allowLateRequest();
  }

  /** A request runs here, or one is still in its PARAMS (the core holds it, no task yet). */
  get #busy(): boolean {
    return this.#tasks.size > 0 || this.#core.activeRequests > 0;
  }

  #allowLateRequest(): void {
    this.#lateAdmission = true;
    this.deadlineKind = "late";
    this.deadline = Math.min(this.deadline || Infinity, Date.now() + LATE_GRACE);
  }

  /** Closes now: running requests are aborted. */
  destroy(reason: string): void {
    if (this.#closed) return;
    this.#connection?.destroy(new FastCGIError("CONNECTION_CLOSED", reason));
    // Adapters report onClose; this makes sure the tasks are let go even if one does not.
    this.onClose();
  }

  /** Called by the server's sweeper when the deadline has passed. */
  expire(): void {
    if (this.#closed || this.deadline === 0) return;
    if (this.deadlineKind === "params") {
      this.#server.refuse("paramsTimeout");
      this.log.warn("paramsTimeout", `${this.peer}: no complete PARAMS within paramsTimeout (${this.options.paramsTimeout} ms): closing`);
      this.destroy("paramsTimeout");
    } else if (this.deadlineKind === "closing") {
      this.destroy("the peer did not close its side");
    } else if (this.deadlineKind === "late") {
      // The server is closing and no request came: an ordinary end, nothing to warn about.
      this.#end();
    } else if (this.deadlineKind === "drain") {
      this.#server.refuse("sendTimeout");
      const unsent = this.#connection?.bufferedAmount ?? 0;
      this.log.warn("sendTimeout", `${this.peer}: ${unsent} bytes of output unread for sendTimeout (${this.options.sendTimeout} ms): closing`);
      this.destroy("sendTimeout");
    } else {
      this.log.warn("idleTimeout", `${this.peer}: idle for idleTimeout (${this.options.idleTimeout} ms): closing`);
      this.#end();
    }
  }

  /** Called by the server's sweeper (`now` in performance.now() ms): ends the requests that have run past requestTimeout. */
  expireRequests(now: number): void {
    const timeout = this.options.requestTimeout;
    // A task that times out leaves the map during the loop; Map iteration allows that.
    for (const task of this.#tasks.values()) {
      if (now - task.startedAt >= timeout) task.timeOut(now);
    }
  }

  // ---- TaskHost ------------------------------------------------------------------------------

  stdout(requestId: number, data: Uint8Array): void {
    if (this.#closed) return;
    this.#core.stdout(requestId, data);
    this.#flushSoon();
  }

  stderr(requestId: number, data: Uint8Array): void {
    if (this.#closed) return;
    this.#core.stderr(requestId, data);
    this.#flushSoon();
  }

  freeWhenWritten(data: Uint8Array): void {
    if (!this.#closed) this.#toFree.push(data.buffer);
  }

  endRequest(task: RequestTask, appStatus: number): void {
    if (task.ended) return;
    task.ended = true;
    this.#tasks.delete(task.requestId);
    this.#server.ended(task);
    if (this.#closed) return;
    this.#core.endRequest(task.requestId, appStatus);
    this.#flushSoon();
    if (this.#tasks.size === 0 && !this.#ending) this.#setDeadline("idle");
    this.updateFlow();
  }

  refuse(limit: string): void {
    this.#server.refuse(limit);
  }

  internalHandler(params: Params): Handler | undefined {
    return this.#server.internalHandler(params);
  }

  writable(): Promise<void> | undefined {
    if (this.#writable || this.#closed) return undefined;
    const wait = new Promise<void>((resolve) => (this.#drainWaiters ??= []).push(resolve));
    this.updateFlow();
    return wait;
  }

  updateFlow(): void {
    if (this.#closed || !this.#connection) return;
    let blocked = false;
    let flowing = false;
    for (const task of this.#tasks.values()) {
      if (task.blocked) blocked = true;
      else if (task.needsInput) flowing = true;
    }
    // Output waits for the peer: over maxUnsentBytes, or requests wait to write theirs (new ones
    // would only wait behind them, unless a request still needs its body: a web server may send
    // all of it before it reads). Input waits too, for sendTimeout at most.
    const backedUp = this.#outputFull || (!this.#writable && this.#drainWaiters !== undefined && !flowing);
    if (backedUp && this.deadlineKind !== "drain" && !this.#ending) {
      this.deadlineKind = "drain";
      this.deadline = Date.now() + this.options.sendTimeout;
    } else if (!backedUp && this.deadlineKind === "drain") {
      this.deadlineKind = null;
      this.deadline = 0;
      if (this.#tasks.size === 0) this.#setDeadline("idle");
    }
    const pause = backedUp || (blocked && !flowing);
    if (pause !== this.#paused) {
      this.#paused = pause;
      if (pause) this.#connection.pause();
      else this.#connection.resume();
    }
  }

  othersNeedInput(task: RequestTask): boolean {
    for (const other of this.#tasks.values()) {
      if (other !== task && other.needsInput && !other.blocked) return true;
    }
    return false;
  }

  // ---- socket events -------------------------------------------------------------------------

  /** The runtime adapter's onData. */
  onData(chunk: Uint8Array): void {
    if (this.#closed || this.#ending) return;
    // The first bytes after an idle spell (or a late one's) start a request: its PARAMS now have a deadline.
    if (this.deadlineKind === "idle" || this.deadlineKind === "late") this.#setDeadline("params");
    this.#processing = true;
    try {
      this.#core.receive(chunk);
      this.#drainEvents();
    } finally {
      this.#processing = false;
    }
    this.#flush();
    this.updateFlow();
  }

  /** The runtime adapter's onDrain. */
  onDrain(): void {
    this.#writable = true;
    this.#outputFull = false;
    this.#freeWritten();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = undefined;
    if (waiters !== undefined) for (const wake of waiters) wake();
    this.updateFlow();
  }

  /** The runtime adapter's onClose. */
  onClose(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline = 0;
    this.deadlineKind = null;
    this.#connection = undefined;
    if (this.#tasks.size > 0) {
      const reason = new FastCGIError("CONNECTION_CLOSED", error ? `the connection closed: ${error.message}` : "the connection closed", { cause: error });
      for (const task of this.#tasks.values()) task.abort(reason);
      this.#tasks.clear();
    }
    // Every request the core still holds (running, or still in PARAMS) is counted out.
    this.#core.dispose();
    this.onDrain();
    this.#server.closed(this);
  }

  #drainEvents(): void {
    for (let event = this.#core.nextEvent(); event !== null; event = this.#core.nextEvent()) {
      this.#event(event);
    }
  }

  #event(event: AppEvent): void {
    switch (event.type) {
      case "request": {
        const task = new RequestTask(this, event.requestId, event.role, event.keepConn, event.params);
        this.#tasks.set(event.requestId, task);
        this.#clearDeadline();
        this.#server.began(task);
        task.start();
        return;
      }
      case "stdin":
        return this.#tasks.get(event.requestId)?.onStdin(event.data);
      case "stdinEnd":
        return this.#tasks.get(event.requestId)?.onStdinEnd();
      case "data":
        return this.#tasks.get(event.requestId)?.onData(event.data);
      case "dataEnd":
        return this.#tasks.get(event.requestId)?.onDataEnd();
      case "abort": {
        const task = this.#tasks.get(event.requestId);
        if (task) task.abort(new FastCGIError("ABORTED", "the web server aborted the request (ABORT_REQUEST)", { requestId: event.requestId }));
        else this.#core.endRequest(event.requestId, 0);
        return;
      }
      case "rejected":
        if (event.protocolStatus === ProtocolStatus.REQUEST_COMPLETE) this.#server.refuseParams(event.limit);
        else if (event.protocolStatus === ProtocolStatus.CANT_MPX_CONN) this.#server.refuse("multiplex");
        else if (event.protocolStatus === ProtocolStatus.UNKNOWN_ROLE) this.#server.refuse("role");
        // OVERLOADED is maxRequests, counted where it is decided (admit).
        this.log.warn(`rejected:${event.protocolStatus}`, `${this.peer} request ${event.requestId} refused: ${event.reason}${refusalNote(event.limit, event.param)}`);
        return;
      case "error":
        this.log.warn("protocol", `${this.peer}: ${event.error.message}: closing`);
        return;
    }
  }

  #flushSoon(): void {
    if (this.#processing || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /** Writes what the core queued; closes when the core wants it closed. */
  #flush(): void {
    const connection = this.#connection;
    if (this.#closed || !connection) return;
    let output = this.#core.takeOutput();
    // Output that has to wait (the peer is not reading) waits as one block, not as thousands of
    // small records: those cost several times their size in memory. (Large bodies stay uncopied.)
    if (!this.#writable && output.length > 1) {
      let bytes = 0;
      for (const record of output) bytes += record.length;
      if (bytes <= MERGE_MAX) output = [concatBytes(output)];
    }
    if (output.length > 0 && !connection.write(output)) this.#writable = false;
    this.#freeWritten();
    if (!this.#writable && !this.#outputFull && connection.bufferedAmount > this.options.maxUnsentBytes) {
      this.#outputFull = true;
      this.updateFlow();
    }
    if (this.#core.closeWanted) this.#end();
    // Closing: done once nothing runs, nothing is in its PARAMS, and no late request is still expected.
    else if (this.#server.closing && !this.#busy && !this.#lateAdmission) this.#end();
  }

  /**
   * Frees the buffers queued by freeWhenWritten once nothing is left unsent: the socket (and the
   * kernel call under it) no longer reads them. Buffers queued before a close are left to the
   * collector, as a closing socket may still hold them.
   */
  #freeWritten(): void {
    const connection = this.#connection;
    if (this.#toFree.length === 0 || this.#closed || !connection || connection.bufferedAmount !== 0) return;
    for (const buffer of this.#toFree) if (!bodyPool.give(buffer)) connection.freeWritten?.(buffer);
    this.#toFree = [];
  }

  #end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    // A peer that never closes its side must not hold the connection (and its count) forever.
    this.deadlineKind = "closing";
    this.deadline = Date.now() + CLOSING_GRACE;
    // Anything still queued goes out first; end() flushes before closing.
    const output = this.#core.takeOutput();
    if (output.length > 0) this.#connection?.write(output);
    for (const task of this.#tasks.values()) {
      task.abort(new FastCGIError("CONNECTION_CLOSED", "the connection is closing", { requestId: task.requestId }));
    }
    const rest = this.#core.takeOutput();
    if (rest.length > 0) this.#connection?.write(rest);
    this.#connection?.end();
  }

  #clearDeadline(): void {
    // The drain deadline stays until the output drains, whatever the requests do meanwhile.
    if (this.deadlineKind === "drain") return;
    this.deadline = 0;
    this.deadlineKind = null;
  }

  #setDeadline(kind: "params" | "idle"): void {
    if (this.deadlineKind === "drain") return;
    this.deadlineKind = kind;
    this.deadline = Date.now() + (kind === "params" ? this.options.paramsTimeout : this.options.idleTimeout);
  }
}
