/**
 * One request through the Client, from the pool's queue to its last byte: it begins the request
 * on a socket, hands each job to its module (input.ts sends the input streams, response_body.ts
 * makes the Response, stderr.ts logs STDERR, response_timer.ts watches for silence), and decides
 * how it ends: END_REQUEST, a refusal, a lost connection, abort, timeout, or once more elsewhere.
 *
 * Named ClientRequest, not Exchange: `Exchange` is the public type of accept() on the app side.
 * @module
 */
import type { Bytesish } from "../codec/types.ts";
import { FastCGIError, RequestRefusedError } from "../errors.ts";
import { ProtocolStatus, Role } from "../protocol/constants.ts";
import { InputPump, sendInputBytes, type InputSource } from "./input.ts";
import { ResponseBody } from "./response_body.ts";
import { ResponseTimer } from "./response_timer.ts";
import type { BackendSocket, SocketRequest } from "./socket.ts";
import { StderrLog, type StderrInfo } from "./stderr.ts";

/**
 * What a request needs of what fetch() was given: a Request, or just a URL (fetch("…") makes no
 * Request object: on Node a Request and its AbortSignal cost more than the rest of the client's work).
 */
export interface RequestHead {
  readonly method: string;
  readonly url: string;
  /** The request headers; null for a bare URL. */
  readonly headers: Headers | null;
  readonly signal: AbortSignal | null;
  /** The Request given to fetch(), or null for a bare URL. */
  readonly request: Request | null;
}

/** The client-wide settings a request follows. */
export interface RequestSettings {
  keepConn: boolean;
  /** Milliseconds the backend may stay silent (0: no limit). */
  responseTimeout: number;
  maxHeaderBytes: number;
  maxResponseBuffer: number;
  onStderr: (message: string, info: StderrInfo) => void;
}

/** What a request needs from the pool. */
export interface RequestHost {
  readonly settings: RequestSettings;
  /** The request is over and no longer needs its socket (END_REQUEST or given up). */
  finished(request: ClientRequest, socket: BackendSocket, reuse: boolean): void;
  /** Sends the request again, on another connection (a refusal or a stale kept connection). */
  retry(request: ClientRequest): void;
  /**
   * The backend lost the request (connection closed or reset) or stayed silent past
   * responseTimeout: true when another backend took the request over (see `resendable`).
   */
  failed(request: ClientRequest, error: unknown): boolean;
  /** The request is over (or leaves this host for another). */
  ended(request: ClientRequest): void;
  /** The backend answered CANT_MPX_CONN: it does not multiplex, whatever was assumed. */
  multiplexRefused(): void;
}

/** Idempotent methods (RFC 9110 9.2.2), which nginx's fastcgi_next_upstream sends again. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** One request and its response, from the queue to the last byte, across its attempts. */
export class ClientRequest implements SocketRequest {
  readonly head: RequestHead;
  readonly role: number;
  readonly params: Array<readonly [string, Bytesish]>;
  readonly #stdin: InputSource;
  readonly #data: InputSource;
  /** The pool it is on; another backend's when it fails over. */
  host: RequestHost;
  /** The fetch() promise. */
  readonly response: Promise<Response>;
  #resolve!: (response: Response) => void;
  #reject!: (error: unknown) => void;
  /** The fetch() promise is settled. */
  #settled = false;

  /** The request is over for this side (response complete, failed or given up). */
  finished = false;
  /** Waiting in the pool's queue since (Date.now()), for the queue timeout. */
  queuedAt = 0;
  /** How many times it was sent again. */
  retries = 0;

  // The current attempt: its socket, requestId and the job modules working for it.
  #socket: BackendSocket | null = null;
  #requestId = 0;
  #body: ResponseBody | null = null;
  #pump: InputPump | null = null;
  #stderr: StderrLog | null = null;
  #timer: ResponseTimer | null = null;
  #gotOutput = false;
  #inputDone = false;
  readonly #onAbort: (() => void) | null = null;

  constructor(host: RequestHost, head: RequestHead, role: number, params: Array<readonly [string, Bytesish]>, stdin: InputSource, data: InputSource) {
    this.host = host;
    this.head = head;
    this.role = role;
    this.params = params;
    this.#stdin = stdin;
    this.#data = data;
    this.response = new Promise<Response>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const signal = head.signal;
    if (signal !== null) {
      this.#onAbort = () => this.giveUp(abortReason(signal));
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** Whether it could be sent again as is: no input stream was consumed. */
  get replayable(): boolean {
    return this.#stdin.kind !== "stream" && this.#data.kind !== "stream";
  }

  /**
   * Whether it may go to another backend after one may have started it: an idempotent method,
   * no response handed out yet, and no input streamed from the caller (buffered bytes are resent).
   */
  get resendable(): boolean {
    return !this.#settled && this.replayable && IDEMPOTENT.has(this.head.method);
  }

  /** The response body's queue is over its high-water mark: its consumer is not keeping up. */
  get full(): boolean {
    return this.#body !== null && this.#body.full;
  }

  // ---- sending ----------------------------------------------------------------------------

  /** Begins the request on `socket`: BEGIN_REQUEST, PARAMS, then the input streams. */
  start(socket: BackendSocket): void {
    if (this.finished) return;
    const settings = this.host.settings;
    this.#socket = socket;
    this.#gotOutput = false;
    this.#inputDone = false;
    const core = socket.core;
    let requestId: number;
    try {
      requestId = core.beginRequest(this.params, { role: this.role, keepConn: settings.keepConn });
    } catch (error) {
      this.#socket = null;
      this.fail(error);
      return;
    }
    this.#requestId = requestId;
    this.#body = new ResponseBody(this, requestId, settings.maxHeaderBytes, settings.maxResponseBuffer);
    socket.add(requestId, this);
    if (settings.responseTimeout > 0) this.#timer = new ResponseTimer(this, settings.responseTimeout);
    if (this.role === Role.AUTHORIZER) {
      this.#inputDone = true;
      socket.flush();
      return;
    }
    // Bytes in hand go out with BEGIN_REQUEST and PARAMS in one write.
    if (this.#stdin.kind !== "stream" && this.#data.kind !== "stream") {
      sendInputBytes(core, requestId, this.#stdin, false);
      if (this.role === Role.FILTER) sendInputBytes(core, requestId, this.#data, true);
      this.#inputDone = true;
      socket.flush();
      return;
    }
    socket.flush();
    void this.#sendInput(socket, requestId);
  }

  /** Streams STDIN (then DATA) as fast as the socket takes it, never faster. */
  async #sendInput(socket: BackendSocket, requestId: number): Promise<void> {
    const pump = new InputPump(this, socket, requestId);
    this.#pump = pump;
    try {
      await pump.send(this.#stdin, false);
      if (this.role === Role.FILTER) await pump.send(this.#data, true);
      if (this.sendsOn(socket)) this.#inputDone = true;
    } catch (error) {
      if (this.sendsOn(socket)) this.giveUp(error);
    }
  }

  /** For the InputPump: the request is still on `socket` and still wants to send. */
  sendsOn(socket: BackendSocket): boolean {
    return this.#socket === socket && !this.finished;
  }

  /** For the InputPump: a piece of input went out. */
  sent(): void {
    this.#timer?.touch();
  }

  // ---- receiving (SocketRequest) ------------------------------------------------------------

  onStdout(data: Uint8Array): void {
    if (this.finished) return;
    this.#gotOutput = true;
    this.#timer?.touch();
    const body = this.#body!;
    let headDone: boolean;
    try {
      headDone = body.push(data);
    } catch (error) {
      return this.giveUp(error);
    }
    // The Response is made at the end of this turn: if END_REQUEST is in the same socket read
    // (the usual case for a small page), its body is bytes in hand, not a stream.
    if (headDone) queueMicrotask(() => this.#respond(body));
  }

  onStderr(data: Uint8Array): void {
    if (this.finished) return;
    this.#gotOutput = true;
    this.#timer?.touch();
    (this.#stderr ??= new StderrLog(this.host.settings.onStderr, this.head, this.#requestId)).write(data);
  }

  onEnd(appStatus: number, protocolStatus: number): void {
    if (this.finished) return;
    const socket = this.#socket!;
    if (protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
      const refused = new RequestRefusedError(this.#requestId, protocolStatus, appStatus);
      // CANT_MPX_CONN on a connection thought multiplexed: stop multiplexing, and try once more alone.
      if (protocolStatus === ProtocolStatus.CANT_MPX_CONN) this.host.multiplexRefused();
      const again = protocolStatus === ProtocolStatus.CANT_MPX_CONN && !this.#settled && this.replayable && this.retries === 0;
      this.#release(socket, this.#inputDone);
      if (again) return this.#again();
      return this.fail(refused);
    }
    const body = this.#body!;
    try {
      body.end();
    } catch (error) {
      this.#release(socket, this.#inputDone);
      return this.fail(error);
    }
    this.#flushStderr();
    this.#release(socket, this.#inputDone);
    this.#finish();
    body.close();
  }

  onLost(error: FastCGIError): void {
    if (this.finished) return;
    const socket = this.#socket!;
    // A kept connection the backend closed while idle: nothing of this request was seen, and the
    // request is safe to repeat, so send it again once on a fresh connection.
    const stale = socket.served > 1 && !this.#gotOutput && this.retries === 0 && this.resendable;
    this.#release(socket, false);
    if (stale) return this.#again();
    if (!this.#elsewhere(error)) this.fail(error);
  }

  // ---- response (ResponseBody's owner) --------------------------------------------------------

  #respond(body: ResponseBody): void {
    if (this.#settled || body !== this.#body) return; // failed or aborted in the meantime
    let response: Response | null;
    try {
      response = body.respond(this.head.method, this.finished);
    } catch (error) {
      return this.giveUp(error);
    }
    if (response === null) return; // failed in the meantime
    this.#settled = true;
    this.#resolve(response);
    body.deliverEarly();
  }

  /** For the ResponseBody: whether the socket keeps reading for a full consumer. */
  get multiplexed(): boolean {
    return this.#socket?.multiplex ?? false;
  }

  /** For the ResponseBody: its consumer fell behind (or caught up): the socket re-decides. */
  flowChanged(resumed: boolean): void {
    if (resumed) this.#timer?.touch();
    this.#socket?.updateFlow();
  }

  /** For the ResponseTimer: the backend was silent for responseTimeout. */
  timedOut(): void {
    if (this.finished) return;
    const timeout = this.host.settings.responseTimeout;
    const error = new FastCGIError(
      "TIMEOUT",
      `the FastCGI application sent nothing for ${timeout} ms (responseTimeout)`,
      { requestId: this.#requestId, limit: "responseTimeout" },
    );
    this.#abandon();
    if (!this.#elsewhere(error)) this.fail(error);
  }

  // ---- ending -----------------------------------------------------------------------------

  /**
   * Gives up on the request: ABORT_REQUEST if it is on a connection, and the fetch promise or
   * the response body fails with `error` (null: the body's consumer cancelled; nobody to tell).
   */
  giveUp(error: unknown): void {
    if (this.finished) return;
    this.#abandon();
    this.fail(error);
  }

  /** ABORT_REQUEST, if it is on a connection, and the connection is released. */
  #abandon(): void {
    const socket = this.#socket;
    if (socket !== null && this.#requestId !== 0 && socket.requests.get(this.#requestId) === this) {
      socket.abandon(this.#requestId);
      this.#socket = null;
      this.host.finished(this, socket, false);
    }
  }

  /** Asks the host to send it to another backend after `error`; false when it must fail. */
  #elsewhere(error: unknown): boolean {
    this.#timer?.stop();
    this.#flushStderr();
    // A head parsed but not yet handed out (its microtask pending) is this attempt's, not the next one's.
    const body = this.#body;
    this.#body = null;
    if (this.host.failed(this, error)) return true;
    this.#body = body;
    return false;
  }

  /** Ends the request with an error (the socket side is already settled). */
  fail(error: unknown): void {
    if (this.finished) return;
    this.#finish();
    const body = this.#body;
    body?.dropEarly();
    this.#flushStderr();
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(error);
    } else {
      body?.fail(error);
    }
    this.#pump?.cancel(error);
  }

  /** Puts the request back in the queue for another connection. */
  #again(): void {
    this.retries++;
    this.#timer?.stop();
    this.#stderr = null;
    this.host.retry(this);
  }

  #release(socket: BackendSocket, reuse: boolean): void {
    this.#socket = null;
    this.host.finished(this, socket, reuse);
  }

  #finish(): void {
    this.finished = true;
    this.host.ended(this);
    this.#timer?.stop();
    if (this.#onAbort !== null) this.head.signal!.removeEventListener("abort", this.#onAbort);
  }

  #flushStderr(): void {
    const log = this.#stderr;
    if (log === null) return;
    this.#stderr = null;
    log.flush();
  }
}

/** What fetch() rejects with when the signal fires: its reason, or an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}
