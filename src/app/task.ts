/**
 * One request on its way through the application: its input streams, its Request and context,
 * the handler call, and the CGI output of the Response, pumped with backpressure.
 * @module
 */
import type { Params } from "../codec/pairs.ts";
import { FastCGIError } from "../errors.ts";
import { Role } from "../protocol/constants.ts";
import { InputBody } from "./body.ts";
import { concatBytes } from "../bytes.ts";
import { cgiOutput, errorOutput, type CgiOutput } from "./cgi.ts";
import { Context } from "./context.ts";
import type { ResolvedOptions, ServerLog } from "./options.ts";
import { headersFromParams, LightRequest, nativeRequest, normalizeMethod } from "./request.ts";
import type { Handler, SocketInfo } from "./types.ts";
import { LightResponse } from "./response.ts";
import { requestURL } from "./url.ts";

/** What a request needs from its connection. */
export interface TaskHost {
  readonly socket: SocketInfo;
  readonly options: ResolvedOptions;
  readonly log: ServerLog;
  /** Queues STDOUT bytes (not copied: they must stay unchanged). */
  stdout(requestId: number, data: Uint8Array): void;
  /** Queues STDERR bytes. */
  stderr(requestId: number, data: Uint8Array): void;
  /** Frees bytes queued with stdout once the socket has written them (fcgi's own: nothing else reads them). */
  freeWhenWritten(data: Uint8Array): void;
  /** Sends END_REQUEST and forgets the request. */
  endRequest(task: RequestTask, appStatus: number): void;
  /** Undefined when the socket takes more output now, else a promise for when it does. */
  writable(): Promise<void> | undefined;
  /** Re-decides whether the socket should be read (called when input is consumed). */
  updateFlow(): void;
  /** True when another request on the connection still waits for input the socket must bring. */
  othersNeedInput(task: RequestTask): boolean;
  /** A short name of the connection for log lines. */
  readonly peer: string;
  /** Counts a request a limit refused or ended (for the status page). */
  refuse(limit: string): void;
  /** The handler fcgi answers with itself (the status or ping page) when these params ask for one. */
  internalHandler(params: Params): Handler | undefined;
}

/** Bodies up to this size go out in the same STDOUT record as the header block. */
const INLINE_BODY = 16 * 1024;

const textEncoder = new TextEncoder();

/**
 * How a request ends. Every ending goes through RequestTask's #end, which settles the same
 * things in the same order: the signal and the input streams, then an error status if no
 * response went out yet, then END_REQUEST.
 */
type Outcome =
  /** The response went out whole: appStatus 0. */
  | { readonly kind: "complete" }
  /** The handler, its response or fcgi itself failed: status 500 if nothing went out yet; appStatus 1. */
  | { readonly kind: "failed"; readonly status: 500 }
  /** A limit ended it: the signal fires with `reason`, the input is dropped, `status` goes out if it still can; appStatus 1. */
  | { readonly kind: "limited"; readonly status: number; readonly reason: FastCGIError }
  /** ABORT_REQUEST, or the connection is gone: the signal fires with `reason`; appStatus 0. */
  | { readonly kind: "aborted"; readonly reason: unknown };

// The endings every request may take are made once, not per request.
const COMPLETE: Outcome = { kind: "complete" };
const FAILED: Outcome = { kind: "failed", status: 500 };

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

/** The life of one request, from its `request` event to its END_REQUEST. */
export class RequestTask {
  readonly requestId: number;
  readonly role: number;
  readonly keepConn: boolean;
  readonly params: Params;
  readonly stdin: InputBody = new InputBody();
  readonly data: InputBody | null;
  /** END_REQUEST was sent (or the connection is gone): nothing more is written. */
  ended = false;
  /**
   * When the request started (performance.now() ms): requestTimeout counts from here, on the
   * monotonic clock, so a wall-clock jump cannot time out every running request at once.
   */
  readonly startedAt: number = performance.now();
  /** The response status (0 until one is known: the request ended before any answer). */
  status = 0;
  /** Response body bytes handed to the connection. */
  bytesOut = 0;
  /** Answered by fcgi itself (status or ping page): not shown as the process's current request. */
  internal = false;
  /** Logged as slow once already. */
  slowLogged = false;

  readonly #host: TaskHost;
  readonly #method: string;
  #light: LightRequest | undefined;
  #controller: AbortController | undefined;
  #awaitingBody = false;
  /** CONTENT_LENGTH, when given as a number: STDIN carries at most this much (FastCGI §6.2). */
  #declared: number | undefined;
  /** Response bytes went out: a failure can no longer become a 500. */
  #started = false;
  #reader: ReadableStreamDefaultReader<unknown> | undefined;

  constructor(host: TaskHost, requestId: number, role: number, keepConn: boolean, params: Params) {
    this.#host = host;
    this.requestId = requestId;
    this.role = role;
    this.keepConn = keepConn;
    this.params = params;
    this.data = role === Role.FILTER ? new InputBody() : null;
    this.#method = normalizeMethod(params.get("REQUEST_METHOD"));
    const onConsume = () => host.updateFlow();
    this.stdin.onConsume = onConsume;
    if (this.data) this.data.onConsume = onConsume;
  }

  get socket(): SocketInfo {
    return this.#host.socket;
  }

  /** The request method (GET when the web server sent none). */
  get method(): string {
    return this.#method;
  }

  /** True while the socket must keep bringing input for this request. */
  get needsInput(): boolean {
    if (this.ended) return false;
    return (!this.stdin.ended && !this.stdin.discarding) || (this.data !== null && !this.data.ended && !this.data.discarding);
  }

  /** True when this request holds more unread input than it should, and no reader waits. */
  get blocked(): boolean {
    if (this.ended || this.stdin.waiting || this.data?.waiting) return false;
    const highWater = Math.min(64 * 1024, this.#host.options.maxBufferedBytes / 4);
    return this.stdin.buffered > highWater || (this.data !== null && this.data.buffered > highWater);
  }

  /** Decides about the body and calls the handler (now, or once STDIN shows whether there is one). */
  start(): void {
    const { maxBodyBytes } = this.#host.options;
    const length = this.params.get("CONTENT_LENGTH");
    const declared = length !== undefined && /^[0-9]+$/.test(length) ? Number(length) : undefined;
    this.#declared = declared;
    if (declared !== undefined && declared > maxBodyBytes) {
      this.#host.refuse("maxBodyBytes");
      this.#host.log.warn("maxBodyBytes", `${this.#host.peer} request ${this.requestId}: CONTENT_LENGTH ${declared} is over maxBodyBytes (${maxBodyBytes}): 413`);
      this.#end({ kind: "limited", status: 413, reason: new FastCGIError("LIMIT_EXCEEDED", "request body too large", { requestId: this.requestId, limit: "maxBodyBytes" }) });
      return;
    }
    // Request forbids a body on GET and HEAD; an Authorizer gets none (the core ends its STDIN).
    if (this.role === Role.AUTHORIZER || this.#method === "GET" || this.#method === "HEAD" || declared === 0) {
      this.stdin.discard();
      this.#dispatch(null);
    } else if (declared !== undefined) {
      this.#dispatch(this.stdin);
    } else {
      // No CONTENT_LENGTH: whether there is a body shows with the first STDIN record.
      this.#awaitingBody = true;
    }
  }

  /** A STDIN piece arrived. */
  onStdin(data: Uint8Array): void {
    if (this.ended) return;
    const declared = this.#declared;
    if (declared !== undefined && this.stdin.received + data.byteLength > declared) {
      // Bytes past CONTENT_LENGTH are not part of the body.
      data = data.subarray(0, Math.max(0, declared - this.stdin.received));
      if (data.byteLength === 0) return;
    }
    this.stdin.push(data);
    if (this.stdin.received > this.#host.options.maxBodyBytes) {
      const limit = this.#host.options.maxBodyBytes;
      this.#host.refuse("maxBodyBytes");
      this.#host.log.warn("maxBodyBytes", `${this.#host.peer} request ${this.requestId}: body over maxBodyBytes (${limit})`);
      this.#end({ kind: "limited", status: 413, reason: new FastCGIError("LIMIT_EXCEEDED", "request body too large", { requestId: this.requestId, limit: "maxBodyBytes" }) });
      return;
    }
    this.#checkBuffered(this.stdin);
    if (this.#awaitingBody && !this.ended) {
      this.#awaitingBody = false;
      this.#dispatch(this.stdin);
    }
  }

  /** The empty STDIN record arrived. */
  onStdinEnd(): void {
    if (this.ended) return;
    const declared = this.#declared;
    if (declared !== undefined && this.stdin.received < declared && !this.stdin.discarding) {
      // A body cut short (the client went away mid-upload) must not read as a complete one.
      this.stdin.fail(new FastCGIError("ABORTED", `STDIN ended after ${this.stdin.received} of the ${declared} bytes CONTENT_LENGTH announced`, { requestId: this.requestId }));
    } else {
      this.stdin.end();
    }
    if (this.#awaitingBody) {
      this.#awaitingBody = false;
      this.#dispatch(null);
    }
  }

  /** A DATA piece arrived (Filter). */
  onData(data: Uint8Array): void {
    if (this.ended || !this.data) return;
    this.data.push(data);
    this.#checkBuffered(this.data);
  }

  /** The empty DATA record arrived (Filter). */
  onDataEnd(): void {
    this.data?.end();
  }

  /** ABORT_REQUEST, or the connection is gone: the signal fires and everything is let go. */
  abort(reason: unknown): void {
    this.#end({ kind: "aborted", reason });
  }

  /**
   * Ran past requestTimeout (the server's sweeper noticed at `now`, performance.now() ms): the signal fires, 504 goes
   * out if no response head did, then END_REQUEST; whatever the handler does later is dropped.
   */
  timeOut(now: number): void {
    if (this.ended) return;
    const host = this.#host;
    const limit = host.options.requestTimeout;
    const action = this.#started ? "the response body is cut short" : "answering 504";
    host.refuse("requestTimeout");
    host.log.warn("requestTimeout", `${host.peer} request ${this.requestId} (${this.#method} ${this.params.get("REQUEST_URI") ?? ""}): ran ${Math.round(now - this.startedAt)} ms, past requestTimeout (${limit} ms): ${action}`);
    this.#end({ kind: "limited", status: 504, reason: new FastCGIError("TIMEOUT", `the request ran longer than requestTimeout (${limit} ms)`, { requestId: this.requestId, limit: "requestTimeout" }) });
  }

  /** The request's signal. */
  signal(): AbortSignal {
    if (this.#light) return this.#light.signal;
    return (this.#controller ??= new AbortController()).signal;
  }

  /** Queues STDERR bytes while the request lives. */
  writeStderr(bytes: Uint8Array): void {
    if (!this.ended) this.#host.stderr(this.requestId, bytes);
  }

  #dispatch(body: InputBody | null): void {
    const host = this.#host;
    let handler = host.options.handlers[this.role];
    if (this.role === Role.RESPONDER) {
      const internal = host.internalHandler(this.params);
      if (internal !== undefined) {
        this.internal = true;
        handler = internal;
      }
    }
    let request: Request;
    let result: Response | Promise<Response>;
    try {
      const url = requestURL(this.params);
      if (host.options.light) {
        this.#light = new LightRequest({ method: this.#method, url, params: this.params, body });
        request = this.#light as unknown as Request;
      } else {
        request = nativeRequest(this.#method, url, headersFromParams(this.params), body?.stream() ?? null, this.signal());
      }
      // The core only starts requests for roles that have a handler.
      result = handler!(request, new Context(this));
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (result !== null && typeof result === "object" && typeof (result as Promise<Response>).then === "function") {
      (result as Promise<Response>)
        .then((response) => this.#respond(response), (error) => this.#fail(error))
        // A bug here must cost this request, not the process (an unhandled rejection ends Node).
        .catch((error) => this.#broken(error));
    } else {
      try {
        this.#respond(result as Response);
      } catch (error) {
        this.#broken(error);
      }
    }
  }

  /** Something failed outside the handler: log it and end the request. */
  #broken(error: unknown): void {
    this.#host.log.error("internal", `${this.#host.peer} request ${this.requestId}: internal error: ${describe(error)}`);
    this.#end(FAILED);
  }

  #respond(response: Response): void {
    if (this.ended) {
      cancel(response);
      return;
    }
    let output: CgiOutput;
    try {
      output = cgiOutput(response, this.#method === "HEAD");
    } catch (error) {
      cancel(response);
      this.#fail(error);
      return;
    }
    this.#started = true;
    this.status = response.status;
    const { head, body, owned } = output;
    if (body === null) {
      this.#host.stdout(this.requestId, head);
      this.#end(COMPLETE);
    } else if (body instanceof Uint8Array) {
      this.bytesOut = body.byteLength;
      if (body.byteLength <= INLINE_BODY) {
        this.#host.stdout(this.requestId, concatBytes([head, body]));
      } else {
        this.#host.stdout(this.requestId, head);
        this.#host.stdout(this.requestId, body);
        // Large bodies freed as soon as they are out keep the heap from swelling until a collection.
        if (owned) this.#host.freeWhenWritten(body);
      }
      this.#end(COMPLETE);
    } else {
      this.#host.stdout(this.requestId, head);
      this.#pump(body).catch((error) => this.#broken(error));
    }
  }

  /** Streams the body as STDOUT, reading only as fast as the socket drains. */
  async #pump(body: ReadableStream<unknown>): Promise<void> {
    const reader = body.getReader();
    this.#reader = reader;
    try {
      for (;;) {
        const wait = this.#host.writable();
        if (wait) await wait;
        if (this.ended) return;
        const { done, value } = await reader.read();
        if (this.ended) return;
        if (done) break;
        let chunk: Uint8Array;
        if (value instanceof Uint8Array) chunk = value;
        else if (typeof value === "string") chunk = textEncoder.encode(value);
        else throw new TypeError("a response body chunk is not a Uint8Array");
        this.bytesOut += chunk.byteLength;
        this.#host.stdout(this.requestId, chunk);
      }
    } catch (error) {
      if (this.ended) return;
      this.#host.log.error("body", `${this.#host.peer} request ${this.requestId}: the response body failed: ${describe(error)}`);
      this.writeStderr(textEncoder.encode(`response body failed: ${describe(error)}\n`));
      reader.cancel(error).catch(() => {});
      this.#end(FAILED);
      return;
    }
    this.#end(COMPLETE);
  }

  /** The handler threw, rejected, or returned what cannot be sent: 500 if nothing went out yet. */
  #fail(error: unknown): void {
    if (this.ended) return;
    const text = describe(error);
    this.#host.log.error("handler", `${this.#host.peer} request ${this.requestId} (${this.#method} ${this.params.get("REQUEST_URI") ?? ""}): ${text}`);
    this.writeStderr(textEncoder.encode(`${text}\n`));
    this.#end(FAILED);
  }

  /** Over maxBufferedBytes while other requests keep the socket flowing: this one is ended. */
  #checkBuffered(input: InputBody): void {
    const cap = this.#host.options.maxBufferedBytes;
    if (input.buffered <= cap) return;
    // Over the cap is fine while the socket can pause for this request; it cannot when another
    // request, or this request's other stream (a Filter reading DATA first), needs input.
    const other = input === this.stdin ? this.data : this.stdin;
    if (!this.#host.othersNeedInput(this) && !(other !== null && other.waiting)) return;
    this.#host.refuse("maxBufferedBytes");
    this.#host.log.warn("maxBufferedBytes", `${this.#host.peer} request ${this.requestId}: over ${cap} unread input bytes while other requests share the connection: ended`);
    this.#end({ kind: "limited", status: 503, reason: new FastCGIError("LIMIT_EXCEEDED", "the request's unread input exceeded maxBufferedBytes", { requestId: this.requestId, limit: "maxBufferedBytes" }) });
  }

  /** The one way a request ends (see {@link Outcome}). */
  #end(outcome: Outcome): void {
    if (this.ended) return;
    // 1. The signal and the input streams.
    if (outcome.kind === "limited" || outcome.kind === "aborted") {
      const reason = outcome.reason;
      if (this.#light) LightRequest.abort(this.#light, reason);
      else if (this.#controller) this.#controller.abort(reason);
      else (this.#controller = new AbortController()).abort(reason);
      this.stdin.fail(reason);
      this.data?.fail(reason);
      this.#reader?.cancel(reason).catch(() => {});
      this.#reader = undefined;
    } else {
      // A handler that answered without reading its whole body: drop the rest, and tell a reader
      // still waiting. (The error is made only then: building Errors on every request costs.)
      for (const input of [this.stdin, this.data]) {
        if (input === null || input.ended) continue;
        if (input.discarding && !input.waiting) input.end();
        else input.fail(new FastCGIError("ABORTED", "the request has ended", { requestId: this.requestId }));
      }
    }
    // 2. An error status, if no response went out yet.
    if ((outcome.kind === "failed" || outcome.kind === "limited") && !this.#started) {
      this.#started = true;
      this.status = outcome.status;
      this.#host.stdout(this.requestId, errorOutput(outcome.status));
    }
    // 3. END_REQUEST.
    this.#host.endRequest(this, outcome.kind === "complete" || outcome.kind === "aborted" ? 0 : 1);
  }
}

function cancel(response: unknown): void {
  try {
    // A lightweight response's body getter would build a real Response just to cancel it.
    const parts = LightResponse.is(response) ? LightResponse.parts(response) : undefined;
    const body = parts ? parts.body : (response as Response | null)?.body;
    if (body instanceof ReadableStream && !body.locked) body.cancel().catch(() => {});
    return;
  } catch {
    // Not a Response, or its body getter threw: nothing to release.
  }
}
