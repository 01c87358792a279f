/**
 * One request through the Client: its params and input streams (STDIN, DATA) out with
 * backpressure, STDOUT parsed as a CGI response into a streaming Response, STDERR to the log,
 * and every way it can end (END_REQUEST, a refusal, a lost connection, abort, timeout).
 * @module
 */
import type { Bytesish } from "../codec/types.ts";
import { FastCGIError } from "../errors.ts";
import { ProtocolStatus, Role } from "../protocol/constants.ts";
import { CgiResponseParser } from "./cgi_response.ts";
import type { BackendSocket, SocketExchange } from "./socket.ts";
import { NativeResponse } from "../native.ts";
import { concatBytes } from "../bytes.ts";

/** Where a STDERR message came from, for {@link ExchangeSettings.onStderr}. */
export interface StderrInfo {
  /** The requestId on its connection. */
  readonly requestId: number;
  /** The request it belongs to (made from the URL when fetch() was given a string or URL). */
  readonly request: Request;
}

/**
 * What an exchange needs of its request: a Request, or just a URL (fetch("…") makes no Request
 * object: on Node a Request and its AbortSignal cost more than the rest of the client's work).
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

/** The client-wide settings an exchange follows. */
export interface ExchangeSettings {
  keepConn: boolean;
  /** Milliseconds the backend may stay silent (0: no limit). */
  responseTimeout: number;
  maxHeaderBytes: number;
  maxResponseBuffer: number;
  onStderr: (message: string, info: StderrInfo) => void;
}

/** What an exchange needs from the pool. */
export interface ExchangeHost {
  readonly settings: ExchangeSettings;
  /** The exchange is over and no longer needs its socket (END_REQUEST or given up). */
  finished(exchange: Exchange, socket: BackendSocket, reuse: boolean): void;
  /** Sends the exchange again, on another connection (a refusal or a stale kept connection). */
  retry(exchange: Exchange): void;
  /** The backend answered CANT_MPX_CONN: it does not multiplex, whatever was assumed. */
  multiplexRefused(): void;
}

/** One input stream (STDIN or DATA) to send: nothing, bytes in hand, or a stream to pump. */
export type InputSource =
  | { kind: "none" }
  | { kind: "bytes"; chunks: Uint8Array[]; length: number }
  | { kind: "stream"; stream: ReadableStream<Uint8Array>; length: number | null };

/**
 * END_REQUEST said the application would not do the request (protocolStatus CANT_MPX_CONN,
 * OVERLOADED or UNKNOWN_ROLE). Code "REQUEST_REFUSED".
 */
export class RequestRefusedError extends FastCGIError {
  /** The protocolStatus of END_REQUEST (see ProtocolStatus). */
  readonly protocolStatus: number;
  /** The appStatus of END_REQUEST. */
  readonly appStatus: number;

  /** The refusal of request `requestId`, as its END_REQUEST gave it. */
  constructor(requestId: number, protocolStatus: number, appStatus: number) {
    super("REQUEST_REFUSED", `the FastCGI application refused the request: END_REQUEST with protocolStatus ${statusName(protocolStatus)}`, { requestId, recordType: 3 });
    this.name = "RequestRefusedError";
    this.protocolStatus = protocolStatus;
    this.appStatus = appStatus;
  }
}

function statusName(status: number): string {
  switch (status) {
    case ProtocolStatus.CANT_MPX_CONN:
      return "CANT_MPX_CONN (1): it does not multiplex requests on one connection";
    case ProtocolStatus.OVERLOADED:
      return "OVERLOADED (2): it is out of a resource, such as worker processes";
    case ProtocolStatus.UNKNOWN_ROLE:
      return "UNKNOWN_ROLE (3): it does not play the role asked for";
    default:
      return `${status} (unknown)`;
  }
}

/** Methods safe to send twice when a kept connection turns out to be closed before any answer. */
const RETRY_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Response body queue size before the socket pauses (or, multiplexed, buffering starts to count). */
const BODY_HIGH_WATER_MARK = 128 * 1024;
const NULL_BODY_STATUS = new Set([204, 205, 304]);

/** One request and its response, from the queue to the last byte. */
export class Exchange implements SocketExchange {
  readonly request: RequestHead;
  readonly role: number;
  readonly params: Array<readonly [string, Bytesish]>;
  readonly #stdin: InputSource;
  readonly #data: InputSource;
  readonly #host: ExchangeHost;
  /** The fetch() promise. */
  readonly response: Promise<Response>;
  #resolve!: (response: Response) => void;
  #reject!: (error: unknown) => void;
  #settled = false;

  /** The request is over for this side (response complete, failed or given up). */
  finished = false;
  /** Waiting in the pool's queue since (Date.now()), for the queue timeout. */
  queuedAt = 0;
  /** How many times it was sent again. */
  retries = 0;
  /** The response body's queue is over its high-water mark: its consumer is not keeping up. */
  full = false;

  #socket: BackendSocket | null = null;
  #requestId = 0;
  #parser: CgiResponseParser | null = null;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Body bytes that came after the head within the same turn, before the Response was made. */
  #early: Uint8Array[] | null = null;
  #gotOutput = false;
  #inputDone = false;
  #stderr: TextDecoder | null = null;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastActivity = 0;
  readonly #onAbort: (() => void) | null = null;

  constructor(host: ExchangeHost, request: RequestHead, role: number, params: Array<readonly [string, Bytesish]>, stdin: InputSource, data: InputSource) {
    this.#host = host;
    this.request = request;
    this.role = role;
    this.params = params;
    this.#stdin = stdin;
    this.#data = data;
    this.response = new Promise<Response>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const signal = request.signal;
    if (signal !== null) {
      this.#onAbort = () => this.giveUp(abortReason(signal));
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** Whether it could be sent again as is: no input stream was consumed. */
  get replayable(): boolean {
    return this.#stdin.kind !== "stream" && this.#data.kind !== "stream";
  }

  // ---- sending ----------------------------------------------------------------------------

  /** Begins the request on `socket`: BEGIN_REQUEST, PARAMS, then the input streams. */
  start(socket: BackendSocket): void {
    if (this.finished) return;
    this.#socket = socket;
    this.#parser = new CgiResponseParser(this.#host.settings.maxHeaderBytes);
    this.#gotOutput = false;
    this.#inputDone = false;
    const core = socket.core;
    let requestId: number;
    try {
      requestId = core.beginRequest(this.params, { role: this.role, keepConn: this.#host.settings.keepConn });
    } catch (error) {
      this.#socket = null;
      this.fail(error);
      return;
    }
    this.#requestId = requestId;
    socket.add(requestId, this);
    this.#lastActivity = Date.now();
    this.#armTimer(this.#host.settings.responseTimeout);
    if (this.role === Role.AUTHORIZER) {
      this.#inputDone = true;
      socket.flush();
      return;
    }
    // Bytes in hand go out with BEGIN_REQUEST and PARAMS in one write.
    if (this.#stdin.kind !== "stream" && this.#data.kind !== "stream") {
      this.#sendBytesTo(core, requestId, this.#stdin, false);
      if (this.role === Role.FILTER) this.#sendBytesTo(core, requestId, this.#data, true);
      this.#inputDone = true;
      socket.flush();
      return;
    }
    socket.flush();
    void this.#pump(socket, requestId);
  }

  /** Streams STDIN (then DATA) as fast as the socket takes it, never faster. */
  async #pump(socket: BackendSocket, requestId: number): Promise<void> {
    try {
      await this.#pumpOne(socket, requestId, this.#stdin, false);
      if (this.role === Role.FILTER) await this.#pumpOne(socket, requestId, this.#data, true);
      if (this.#socket === socket && !this.finished) this.#inputDone = true;
    } catch (error) {
      if (this.#socket === socket && !this.finished) this.giveUp(error);
    }
  }

  async #pumpOne(socket: BackendSocket, requestId: number, source: InputSource, data: boolean): Promise<void> {
    const core = socket.core;
    const stillOurs = () => this.#socket === socket && !this.finished && core.isActive(requestId);
    if (source.kind !== "stream") {
      if (!stillOurs()) return;
      this.#sendBytesTo(core, requestId, source, data);
      socket.flush();
      return;
    }
    const name = data ? "FCGI_DATA stream" : "request body";
    const reader = source.stream.getReader();
    this.#reader = reader;
    let sent = 0;
    try {
      for (;;) {
        if (!socket.writable) await socket.drained();
        if (!stillOurs()) return;
        const { done, value } = await reader.read();
        if (!stillOurs()) return;
        if (done) break;
        if (!(value instanceof Uint8Array)) throw new TypeError(`the ${name} yielded a ${typeof value}, not a Uint8Array`);
        sent += value.length;
        if (source.length !== null && sent > source.length) {
          throw new TypeError(`the ${name} is longer than its declared length (${source.length} bytes)`);
        }
        if (data) core.data(requestId, value);
        else core.stdin(requestId, value);
        socket.flush();
        this.#lastActivity = Date.now();
      }
      if (source.length !== null && sent !== source.length) {
        throw new TypeError(`the ${name} ended after ${sent} bytes, but its declared length is ${source.length}`);
      }
      if (data) core.dataEnd(requestId);
      else core.stdinEnd(requestId);
      socket.flush();
    } finally {
      this.#reader = null;
      reader.releaseLock();
    }
  }

  #sendBytesTo(core: BackendSocket["core"], requestId: number, source: InputSource, data: boolean): void {
    if (source.kind === "bytes") for (const chunk of source.chunks) data ? core.data(requestId, chunk) : core.stdin(requestId, chunk);
    if (data) core.dataEnd(requestId);
    else core.stdinEnd(requestId);
  }

  // ---- receiving (SocketExchange) -----------------------------------------------------------

  onStdout(data: Uint8Array): void {
    if (this.finished) return;
    this.#gotOutput = true;
    this.#lastActivity = Date.now();
    const parser = this.#parser!;
    if (!parser.done) {
      let body: Uint8Array | null;
      try {
        body = parser.push(data);
      } catch (error) {
        return this.giveUp(error);
      }
      if (body === null) return;
      // The Response is made at the end of this turn: if END_REQUEST is in the same socket read
      // (the usual case for a small page), its body is bytes in hand, not a stream, which costs
      // far less to make, to read, and to send on through Bun.serve or Deno.serve.
      this.#early = body.length > 0 ? [body] : [];
      queueMicrotask(() => this.#respond());
      return;
    }
    if (this.#early !== null) this.#early.push(data);
    else this.#enqueue(data);
  }

  onStderr(data: Uint8Array): void {
    if (this.finished) return;
    this.#gotOutput = true;
    this.#lastActivity = Date.now();
    // Kept per request and streaming: a UTF-8 character may straddle two STDERR records.
    this.#stderr ??= new TextDecoder();
    const text = this.#stderr.decode(data, { stream: true });
    if (text !== "") this.#log(text);
  }

  onEnd(appStatus: number, protocolStatus: number): void {
    if (this.finished) return;
    const socket = this.#socket!;
    if (protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
      const refused = new RequestRefusedError(this.#requestId, protocolStatus, appStatus);
      // CANT_MPX_CONN on a connection thought multiplexed: stop multiplexing, and try once more alone.
      if (protocolStatus === ProtocolStatus.CANT_MPX_CONN) this.#host.multiplexRefused();
      const again = protocolStatus === ProtocolStatus.CANT_MPX_CONN && !this.#settled && this.replayable && this.retries === 0;
      this.#release(socket, this.#inputDone);
      if (again) return this.#again();
      return this.fail(refused);
    }
    try {
      this.#parser!.end();
    } catch (error) {
      this.#release(socket, this.#inputDone);
      return this.fail(error);
    }
    this.#flushStderr();
    this.#release(socket, this.#inputDone);
    this.#finish();
    if (this.#controller !== null) {
      this.#controller.close();
      this.#controller = null;
    }
  }

  onLost(error: FastCGIError): void {
    if (this.finished) return;
    const socket = this.#socket!;
    // A kept connection the backend closed while idle: nothing of this request was seen, and the
    // request is safe to repeat, so send it again once on a fresh connection.
    const stale = socket.served > 1 && !this.#gotOutput && this.retries === 0 && this.replayable && RETRY_METHODS.has(this.request.method);
    this.#release(socket, false);
    if (stale) return this.#again();
    this.fail(error);
  }

  // ---- response ---------------------------------------------------------------------------

  #respond(): void {
    const early = this.#early;
    this.#early = null;
    if (this.#settled || early === null) return; // failed or aborted in the meantime
    const head = this.#parser!.head!;
    const discard = this.request.method === "HEAD" || NULL_BODY_STATUS.has(head.status);
    let body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null = null;
    if (discard) {
      // no body, whatever the backend sent
    } else if (this.finished) {
      // Views of socket reads, whose buffers are plain ArrayBuffers.
      body = (early.length === 1 ? early[0]! : concatBytes(early)) as Uint8Array<ArrayBuffer>;
    } else {
      body = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            this.#controller = controller;
          },
          pull: () => {
            if (this.full) {
              this.full = false;
              this.#lastActivity = Date.now();
              this.#socket?.updateFlow();
            }
          },
          cancel: () => {
            this.#controller = null;
            this.giveUp(null);
          },
        },
        { highWaterMark: BODY_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
      );
    }
    let response: Response;
    try {
      response = new NativeResponse(body, { status: head.status, statusText: head.statusText, headers: head.headers });
    } catch (error) {
      return this.giveUp(new FastCGIError("BAD_RESPONSE", `the CGI response cannot be a Response: ${(error as Error).message}`, { cause: error }));
    }
    this.#settled = true;
    this.#resolve(response);
    if (this.#controller !== null) for (const chunk of early) this.#enqueue(chunk);
  }

  #enqueue(data: Uint8Array): void {
    const controller = this.#controller;
    if (controller === null) return; // a body-less status, or a cancelled body
    controller.enqueue(data);
    const desired = controller.desiredSize ?? 1;
    if (desired > 0 || this.full) {
      // Only a multiplexed socket keeps reading for a full consumer (a lone one pauses instead).
      if (this.full && this.#socket?.multiplex && BODY_HIGH_WATER_MARK - desired > this.#host.settings.maxResponseBuffer) this.#overflow();
      return;
    }
    this.full = true;
    this.#socket?.updateFlow();
  }

  /** A multiplexed response whose consumer does not read: its buffer hit the limit. */
  #overflow(): void {
    this.giveUp(new FastCGIError(
      "LIMIT_EXCEEDED",
      `the response body's consumer did not keep up: more than ${this.#host.settings.maxResponseBuffer} bytes buffered on a multiplexed connection`,
      { requestId: this.#requestId, limit: "maxResponseBuffer" },
    ));
  }

  // ---- ending -----------------------------------------------------------------------------

  /**
   * Gives up on the request: ABORT_REQUEST if it is on a connection, and the fetch promise or
   * the response body fails with `error` (null: the body's consumer cancelled; nobody to tell).
   */
  giveUp(error: unknown): void {
    if (this.finished) return;
    const socket = this.#socket;
    if (socket !== null && this.#requestId !== 0 && socket.exchanges.get(this.#requestId) === this) {
      socket.abandon(this.#requestId);
      this.#socket = null;
      this.#host.finished(this, socket, false);
    }
    this.fail(error);
  }

  /** Ends the exchange with an error (the socket side is already settled). */
  fail(error: unknown): void {
    if (this.finished) return;
    this.#finish();
    this.#early = null;
    this.#flushStderr();
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(error);
    } else if (this.#controller !== null) {
      if (error !== null) this.#controller.error(error);
      this.#controller = null;
    }
    const reader = this.#reader;
    if (reader !== null) reader.cancel(error).catch(() => {});
  }

  /** Puts the exchange back in the queue for another connection. */
  #again(): void {
    this.retries++;
    clearTimeout(this.#timer);
    this.#stderr = null;
    this.#host.retry(this);
  }

  #release(socket: BackendSocket, reuse: boolean): void {
    this.#socket = null;
    this.#host.finished(this, socket, reuse);
  }

  #finish(): void {
    this.finished = true;
    clearTimeout(this.#timer);
    if (this.#onAbort !== null) this.request.signal!.removeEventListener("abort", this.#onAbort);
  }

  #flushStderr(): void {
    const decoder = this.#stderr;
    if (decoder === null) return;
    this.#stderr = null;
    const rest = decoder.decode();
    if (rest !== "") this.#log(rest);
  }

  #log(text: string): void {
    try {
      const head = this.request;
      let request = head.request;
      this.#host.settings.onStderr(text, {
        requestId: this.#requestId,
        get request(): Request {
          return (request ??= new Request(head.url));
        },
      });
    } catch {
      // A throwing log callback must not break the response.
    }
  }

  /** One timer per request, re-armed only when it fires early: no timer churn per record. */
  #armTimer(ms: number): void {
    if (this.#host.settings.responseTimeout <= 0) return;
    this.#timer = setTimeout(() => this.#checkTimeout(), ms);
  }

  #checkTimeout(): void {
    if (this.finished) return;
    const timeout = this.#host.settings.responseTimeout;
    // A consumer that does not read is not the backend's silence.
    if (this.full) this.#lastActivity = Date.now();
    const idle = Date.now() - this.#lastActivity;
    if (idle < timeout) return this.#armTimer(timeout - idle);
    this.giveUp(new FastCGIError(
      "TIMEOUT",
      `the FastCGI application sent nothing for ${timeout} ms (responseTimeout)`,
      { requestId: this.#requestId, limit: "responseTimeout" },
    ));
  }
}

/** What fetch() rejects with when the signal fires: its reason, or an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}
