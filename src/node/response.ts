/**
 * The response half of a node:http exchange over FastCGI: an `http.ServerResponse` look-alike
 * that turns into the Response serve() writes as CGI output. The head goes out when node:http
 * would send it (writeHead, the first write, flushHeaders, end); the body follows as FCGI_STDOUT,
 * pulled by serve() only as fast as the web server reads, and write()'s return value and `drain`
 * follow that pull.
 * @module
 */
import { Buffer } from "node:buffer";
import http from "node:http";
import { Writable } from "node:stream";
import { REASON } from "../app/cgi.ts";
import { LightResponse } from "../app/response.ts";
import type { FastCGIIncomingMessage } from "./incoming.ts";
import type { FastCGIRequestSocket } from "./socket.ts";
import { ownBehaviour } from "./own_behaviour.ts";

/** A header value as node:http takes it. */
export type OutgoingHeaderValue = number | string | readonly string[];

/** What a response needs from the exchange it belongs to. */
export interface ResponseSink {
  /** Hands serve() the Response once the head is known. */
  respond(response: Response): void;
  /** The app failed before a head went out: serve() answers 500. */
  fail(error: unknown): void;
  /** A line for the server's log (rate-limited per kind). */
  warn(kind: string, message: string): void;
}

/** The limits a response works within. */
export interface ResponseLimits {
  /** Bytes write() takes before it returns false (and `drain` follows). */
  highWaterMark: number;
  /** Bytes a response may hold unsent; a write past them ends it (an app that ignores backpressure). */
  maxResponseBufferBytes: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
// Statuses and methods whose responses have no body in HTTP (node:http drops what is written).
const NO_BODY_STATUS = new Set([204, 304]);
// Hop-by-hop headers describe node:http's own connection; over CGI the web server makes its own.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);

function nodeError(Kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): Error {
  return Object.assign(new Kind(message), { code });
}

function headersSentError(action: string): Error {
  return nodeError(Error, "ERR_HTTP_HEADERS_SENT", `Cannot ${action} headers after they are sent to the client`);
}

function checkHeader(name: string, value: unknown): void {
  if (typeof name !== "string" || !TOKEN.test(name)) throw nodeError(TypeError, "ERR_INVALID_HTTP_TOKEN", `Header name must be a valid HTTP token ["${String(name)}"]`);
  if (value === undefined) throw nodeError(TypeError, "ERR_HTTP_INVALID_HEADER_VALUE", `Invalid value "undefined" for header "${name}"`);
  for (const item of Array.isArray(value) ? value : [value]) {
    if (INVALID_VALUE.test(String(item))) throw nodeError(TypeError, "ERR_INVALID_CHAR", `Invalid character in header content ["${name}"]`);
  }
}

/** One cached Date header per second, as node:http does. */
let dateCache = { second: -1, value: "" };
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateCache.second) dateCache = { second, value: new Date(now).toUTCString() };
  return dateCache.value;
}

/**
 * What an app gets as `res`: `http.ServerResponse`'s header methods, `writeHead`, `write` (false
 * once `highWaterMark` bytes wait, `drain` when the web server has read them), `end`,
 * `flushHeaders`, and the events `finish` and `close`.
 */
export class FastCGIServerResponse extends Writable {
  /** The status code to send (200 unless set). */
  statusCode = 200;
  /** The reason phrase; the standard one for the code unless set. */
  statusMessage: string | undefined = undefined;
  /** Add a Date header unless the app sets one (as node:http does). */
  sendDate = true;
  /** Always false: CGI output has no chunked encoding (the web server picks the framing). */
  chunkedEncoding = false;
  /** node:http's field, for apps that read it; the web server decides keep-alive. */
  shouldKeepAlive = true;
  /** node:http's field, for apps that read it. */
  useChunkedEncodingByDefault = true;
  /** The request this response answers. */
  readonly req: FastCGIIncomingMessage;
  /** The request's socket stand-in. */
  readonly socket: FastCGIRequestSocket;
  readonly #sink: ResponseSink;
  readonly #limits: ResponseLimits;
  readonly #headers = new Map<string, { name: string; value: OutgoingHeaderValue }>();
  #headersSent = false;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** A write the stream has no room for: released when serve() pulls (that is the backpressure). */
  #held: (() => void) | undefined;
  /** The body goes nowhere (HEAD, 204, 304, or serve() stopped reading): writes are dropped. */
  #dropping = false;

  /** A response for `req`; `sink` takes the Response once its head is known. */
  constructor(req: FastCGIIncomingMessage, sink: ResponseSink, limits: ResponseLimits) {
    super({ highWaterMark: limits.highWaterMark });
    this.req = req;
    this.socket = req.socket;
    this.#sink = sink;
    this.#limits = limits;
    ownBehaviour(this, http.ServerResponse.prototype);
  }

  /** The same object as `socket` (node:http's older name). */
  get connection(): FastCGIRequestSocket {
    return this.socket;
  }

  /** True once the head is fixed (writeHead, a write, flushHeaders or end). */
  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** node:http's older name for writableEnded. */
  get finished(): boolean {
    return this.writableEnded;
  }

  /** Sets a header (an array gives one line each, as for set-cookie). */
  setHeader(name: string, value: OutgoingHeaderValue): this {
    if (this.#headersSent) throw headersSentError("set");
    checkHeader(name, value);
    this.#headers.set(name.toLowerCase(), { name, value });
    return this;
  }

  /** Adds a value to a header (making it a list). */
  appendHeader(name: string, value: OutgoingHeaderValue): this {
    if (this.#headersSent) throw headersSentError("append");
    checkHeader(name, value);
    const key = name.toLowerCase();
    const old = this.#headers.get(key);
    const added = Array.isArray(value) ? value : [String(value)];
    if (!old) this.#headers.set(key, { name, value: Array.isArray(value) ? [...value] : value });
    else old.value = [...(Array.isArray(old.value) ? old.value : [String(old.value)]), ...added];
    return this;
  }

  /** A header's value as set, or undefined. */
  getHeader(name: string): OutgoingHeaderValue | undefined {
    return this.#headers.get(name.toLowerCase())?.value;
  }

  /** Every header, by lower-case name. */
  getHeaders(): Record<string, OutgoingHeaderValue> {
    const headers: Record<string, OutgoingHeaderValue> = Object.create(null);
    for (const [key, { value }] of this.#headers) headers[key] = value;
    return headers;
  }

  /** The lower-case names of the headers set. */
  getHeaderNames(): string[] {
    return [...this.#headers.keys()];
  }

  /** The names of the headers set, as they were set. */
  getRawHeaderNames(): string[] {
    return [...this.#headers.values()].map((header) => header.name);
  }

  /** True when the header is set. */
  hasHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  /** Removes a header. */
  removeHeader(name: string): void {
    if (this.#headersSent) throw headersSentError("remove");
    this.#headers.delete(name.toLowerCase());
  }

  /**
   * Fixes the status and headers (the head goes out now). `headers` is an object, a list of
   * [name, value] pairs, or a flat list of names and values.
   */
  writeHead(statusCode: number, statusMessage?: string | Record<string, OutgoingHeaderValue> | readonly unknown[], headers?: Record<string, OutgoingHeaderValue> | readonly unknown[]): this {
    if (this.#headersSent) throw headersSentError("write");
    if (typeof statusMessage === "string") this.statusMessage = statusMessage;
    else headers = statusMessage;
    const code = Number(statusCode);
    if (!Number.isInteger(code) || code < 100 || code > 999) throw nodeError(RangeError, "ERR_HTTP_INVALID_STATUS_CODE", `Invalid status code: ${statusCode}`);
    this.statusCode = code;
    if (Array.isArray(headers)) {
      const pairs = headers.length > 0 && Array.isArray(headers[0]) ? headers as [string, string][] : [...pairsOf(headers as string[])];
      for (const [name, value] of pairs) this.appendHeader(name, value);
    } else if (headers) {
      for (const name of Object.keys(headers)) {
        const value = (headers as Record<string, OutgoingHeaderValue>)[name];
        if (value !== undefined) this.setHeader(name, value);
      }
    }
    this.#sendHead(null);
    return this;
  }

  /** Sends the head now, before any body. */
  flushHeaders(): void {
    if (!this.#headersSent) this.#sendHead(null);
  }

  /** Accepted and ignored: FastCGI has no interim responses (the web server sends 100 Continue). */
  writeContinue(): void {}

  /** Accepted and ignored: FastCGI has no interim responses. */
  writeProcessing(): void {}

  /** Accepted and ignored: FastCGI has no interim responses. */
  writeEarlyHints(_hints: Record<string, unknown>, callback?: () => void): void {
    callback?.();
  }

  /** Accepted and ignored: CGI output has no trailers. */
  addTrailers(_headers: Record<string, string>): void {}

  /** Accepted and ignored: the web server times its client out (nginx's send_timeout). */
  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once("timeout", callback);
    return this;
  }

  /** Queues body bytes; false once `highWaterMark` bytes wait unsent (`drain` follows). */
  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    // A loop that ignores false and `drain` would grow this response's buffer without bound while
    // the web server reads slowly; past the limit the response is ended here instead.
    const limit = this.#limits.maxResponseBufferBytes;
    if (this.writableLength > limit && !this.#dropping && !this.destroyed) {
      this.#sink.warn("maxResponseBufferBytes", `a response (${this.req.method} ${this.req.url}) holds over maxResponseBufferBytes (${limit}) unsent: the app writes without waiting for 'drain'; the response is cut short`);
      this.destroy(new Error(`the response holds over maxResponseBufferBytes (${limit}) unsent bytes`));
    }
    return super.write(chunk, encoding as BufferEncoding, callback as (error: Error | null | undefined) => void);
  }

  /** Ends the response (with a last piece of body); `callback` runs on `finish`. */
  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    if (typeof chunk === "function") [chunk, encoding, callback] = [undefined, undefined, chunk];
    else if (typeof encoding === "function") [encoding, callback] = [undefined, encoding];
    // node:http calls it as a `finish` listener, after those added before (Writable calls it first).
    if (typeof callback === "function" && !this.writableEnded) this.once("finish", callback as () => void);
    if (!this.#headersSent && !this.destroyed && !this.writableEnded) {
      // The whole body is known: it goes out in one piece with its Content-Length, as node:http does.
      const body = chunk === undefined || chunk === null ? Buffer.alloc(0) : typeof chunk === "string" ? Buffer.from(chunk, (encoding as BufferEncoding | undefined) ?? "utf8") : chunk as Uint8Array;
      this.#sendHead(body);
      return super.end();
    }
    if (chunk === undefined || chunk === null) return super.end();
    return super.end(chunk, encoding as BufferEncoding);
  }

  /** Writable's hook: hands a piece to the body stream, holding the callback while it is full. */
  override _write(chunk: Uint8Array, _encoding: string, callback: (error?: Error | null) => void): void {
    if (!this.#headersSent) this.#sendHead(null);
    const controller = this.#controller;
    if (this.#dropping || !controller) {
      callback();
      return;
    }
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) > 0) callback();
    else this.#held = callback;
  }

  /** Writable's hook: ends the body stream. */
  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#headersSent) this.#sendHead(null);
    if (!this.#dropping) this.#controller?.close();
    this.#controller = undefined;
    callback();
  }

  /** Writable's hook: a response destroyed before its head is a 500, after it a body cut short. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.#sink.fail(error ?? new Error("the response was destroyed before it was sent"));
    } else if (this.#controller && !this.#dropping) {
      // The body stops here: serve() ends the request with appStatus 1 (the web server sees it cut short).
      this.#controller.error(error ?? new Error("the response was destroyed before it ended"));
    }
    this.#controller = undefined;
    this.#release();
    // As node:http: destroying a response emits `close`, not `error`.
    callback(null);
  }

  /** serve() stopped reading the body (HEAD, or the request ended): later writes are dropped. */
  #stopped(): void {
    this.#dropping = true;
    this.#controller = undefined;
    this.#release();
  }

  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    held?.();
  }

  /** Fixes the head and hands serve() the Response: with `body` whole, or a stream the writes feed. */
  #sendHead(body: Uint8Array | null): void {
    this.#headersSent = true;
    const status = this.statusCode;
    this.statusMessage ||= REASON[status] ?? "unknown";
    const headers: [string, string][] = [];
    for (const { name, value } of this.#headers.values()) {
      if (HOP_BY_HOP.has(name.toLowerCase())) continue;
      if (Array.isArray(value)) for (const item of value) headers.push([name, String(item)]);
      else headers.push([name, String(value)]);
    }
    if (this.sendDate && !this.#headers.has("date")) headers.push(["Date", httpDate()]);
    const bodiless = this.req.method === "HEAD" || NO_BODY_STATUS.has(status) || status < 200;
    let content: Uint8Array | ReadableStream<Uint8Array> | null = null;
    if (bodiless) this.#dropping = true;
    else if (body) content = body;
    else {
      content = new ReadableStream<Uint8Array>({
        start: (controller) => void (this.#controller = controller),
        pull: () => this.#release(),
        cancel: () => this.#stopped(),
      }, { highWaterMark: this.#limits.highWaterMark, size: (chunk) => chunk.byteLength });
    }
    let response: Response;
    try {
      response = new LightResponse(content as BodyInit | null, { status, statusText: this.statusMessage, headers }) as unknown as Response;
    } catch (error) {
      this.#dropping = true;
      this.#controller = undefined;
      this.#sink.fail(error);
      return;
    }
    this.#sink.respond(response);
  }
}

function* pairsOf(flat: readonly string[]): Generator<[string, string]> {
  for (let i = 0; i + 1 < flat.length; i += 2) yield [flat[i]!, flat[i + 1]!];
}
