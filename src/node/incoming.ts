/**
 * The request half of a node:http exchange over FastCGI: an `http.IncomingMessage` look-alike
 * built from the CGI params, whose body is the request's FCGI_STDIN stream.
 * @module
 */
import { Buffer } from "node:buffer";
import http from "node:http";
import { Readable } from "node:stream";
import { forEachHeader } from "../app/request.ts";
import type { RequestContext } from "../app/types.ts";
import type { FastCGIRequestSocket } from "./socket.ts";
import { ownBehaviour } from "./own_behaviour.ts";

/** node:http's request headers: lower-case names; set-cookie as a list. */
export type IncomingHttpHeaders = Record<string, string | string[] | undefined>;

/**
 * What an app gets as `req`: `http.IncomingMessage`'s fields and a Readable body (with
 * backpressure: FCGI_STDIN is read only as fast as the app reads), plus `fastcgi`, the request's
 * FastCGI context (every param the web server sent, the role, the STDERR writer).
 */
export class FastCGIIncomingMessage extends Readable {
  /**
   * The FastCGI side of the request: `params` (every CGI param: SCRIPT_NAME, PATH_INFO,
   * DOCUMENT_ROOT, an authorizer's Variable-* values, …), `role`, `requestId`, `stderr`, and for a
   * Filter `data`. The same object `serve()` hands a fetch handler as its context.
   */
  readonly fastcgi: RequestContext;
  /** The request method (REQUEST_METHOD). */
  method: string;
  /** The request target as the client sent it (REQUEST_URI), path and query. */
  url: string;
  /** The HTTP headers, from the HTTP_* params plus CONTENT_TYPE and CONTENT_LENGTH. */
  headers: IncomingHttpHeaders;
  /** Names and values in turn, in the order the web server sent them (names lower-case: CGI keeps no case). */
  rawHeaders: string[];
  /** Always empty: CGI has no trailers. */
  trailers: Record<string, string> = {};
  /** Always empty: CGI has no trailers. */
  rawTrailers: string[] = [];
  /** "1.1", "1.0" or "2.0", from SERVER_PROTOCOL. */
  httpVersion: string;
  /** The major HTTP version. */
  httpVersionMajor: number;
  /** The minor HTTP version. */
  httpVersionMinor: number;
  /** True once the whole body was received. */
  complete = false;
  /** True when the web server gave the request up (the client went away) before it was answered. */
  aborted = false;
  /** Always false: the web server answers upgrades itself. */
  upgrade = false;
  /** null on a request, as in node:http. */
  statusCode: null = null;
  /** null on a request, as in node:http. */
  statusMessage: null = null;
  /** The client's side of the request (address, `encrypted`, `close`). */
  readonly socket: FastCGIRequestSocket;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** Set once the response is over: a body read error after that is the rest being dropped. */
  #answered = false;

  /** Builds the request from what serve() hands a fetch handler. */
  constructor(request: Request, context: RequestContext, socket: FastCGIRequestSocket, highWaterMark: number) {
    // autoDestroy off: `close` comes when the exchange is over (answered or aborted), as in
    // node:http, not as soon as the body has been read.
    super({ highWaterMark, autoDestroy: false });
    this.fastcgi = context;
    this.socket = socket;
    const params = context.params;
    this.method = request.method;
    const uri = params.get("REQUEST_URI");
    // REQUEST_URI is the raw target, as node:http gives it; else the path of the rebuilt URL.
    this.url = uri !== undefined && uri.startsWith("/") ? uri : request.url.slice(request.url.indexOf("/", request.url.indexOf("//") + 2));
    const version = /^HTTP\/(\d)\.(\d)$/.exec(params.get("SERVER_PROTOCOL") ?? "");
    this.httpVersionMajor = version ? Number(version[1]) : 1;
    this.httpVersionMinor = version ? Number(version[2]) : 1;
    this.httpVersion = `${this.httpVersionMajor}.${this.httpVersionMinor}`;
    const { headers, rawHeaders } = nodeHeaders(context);
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.#reader = request.body?.getReader();
    if (!this.#reader) this.complete = true;
    ownBehaviour(this, http.IncomingMessage.prototype);
  }

  /**
   * True if `value` was built as a FastCGIIncomingMessage, even after a framework swapped its
   * prototype (Express does, so `instanceof` says false there): private fields stay on the instance.
   */
  static isOne(value: object): value is FastCGIIncomingMessage {
    return #answered in value;
  }

  /** The same object as `socket` (node:http's older name). */
  get connection(): FastCGIRequestSocket {
    return this.socket;
  }

  /** Accepted and ignored: the web server times its client out. */
  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once("timeout", callback);
    return this;
  }

  /** Reads one FCGI_STDIN chunk per call: Readable calls again while its buffer is under the high-water mark. */
  override _read(): void {
    const reader = this.#reader;
    if (!reader) {
      this.push(null);
      return;
    }
    reader.read().then(({ done, value }) => {
      if (done) {
        this.#reader = undefined;
        this.complete = true;
        this.push(null);
      } else {
        this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      }
    }, (error: unknown) => {
      this.#reader = undefined;
      // Once answered, the rest of the body is dropped by design (node:http dumps it too).
      if (this.#answered) this.push(null);
      else this.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Readable's hook: lets the rest of the body go. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#reader?.cancel().catch(() => {});
    this.#reader = undefined;
    // As node:http: an error is emitted only to those who listen for one.
    callback(error && this.listenerCount("error") > 0 ? error : null);
  }

  /** The response is over: a read that fails from now on meets the dropped rest of the body. */
  answered(): void {
    this.#answered = true;
  }

  /** The web server gave the request up: `aborted`, then `close`. */
  abort(reason: Error): void {
    if (this.destroyed) return;
    if (!this.complete) {
      this.aborted = true;
      this.emit("aborted");
    }
    this.destroy(reason);
  }
}

/** node:http's `headers` and `rawHeaders` from the CGI params, in the order the web server sent them. */
function nodeHeaders(context: RequestContext): { headers: IncomingHttpHeaders; rawHeaders: string[] } {
  const headers: IncomingHttpHeaders = {};
  const rawHeaders: string[] = [];
  forEachHeader(context.params, (name, value) => {
    rawHeaders.push(name, value);
    // The web server has joined repeated headers already; set-cookie is a list in node:http.
    headers[name] = name === "set-cookie" ? [value] : value;
  });
  return { headers, rawHeaders };
}
