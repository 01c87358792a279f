/**
 * The Request a handler receives: a lightweight object that answers `method`, `url`, `headers`,
 * `signal` and the body readers itself, and passes `instanceof Request`. Only what it does not
 * know (`cache`, `mode`, ...) goes to a real Request, built on first use. Building real Requests
 * (with their Headers, AbortSignal and body stream) for every request costs more than the whole
 * protocol path on some runtimes; see bench/app_objects.ts.
 * @module
 */
import { InputBody } from "./body.ts";
import { NativeRequest, NativeResponse } from "../native.ts";

/** The params a request is built from; a structural view of the codec's Params. */
export interface RequestParams {
  get(name: string): string | undefined;
  entries(): IterableIterator<[string, string]>;
}

const textDecoder = new TextDecoder();

/**
 * The global Request replacement installed by `overrideGlobalObjects`: a real Request subclass
 * that accepts a lightweight request as its input, so `new Request(request, init)` keeps working.
 */
export class FastCGIGlobalRequest extends NativeRequest {
  constructor(input: RequestInfo | URL, init?: RequestInit) {
    if (input instanceof LightRequest) input = LightRequest.toNative(input);
    if (init instanceof LightRequest) {
      // `new Request(url, request)`: its members live on the prototype, so spell them out.
      init = LightRequest.asInit(init);
    } else if (init?.body != null && typeof (init.body as ReadableStream).getReader === "function" && !("duplex" in init)) {
      // A stream body needs duplex "half", which plain init objects usually lack.
      init = { ...init, duplex: "half" } as RequestInit;
    }
    super(input, init);
  }

  /** Real and lightweight requests both count as instances. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Object.prototype.isPrototypeOf.call(NativeRequest.prototype, value as object);
  }
}

// Methods the Fetch standard refuses in `new Request()`; a FastCGI request may still carry them.
const FORBIDDEN_METHOD = /^(?:CONNECT|TRACE|TRACK)$/i;

/** What a lightweight request is built from. */
export interface LightRequestInit {
  method: string;
  url: string;
  params: RequestParams;
  /** The body, or null when the request has none (GET, HEAD, CONTENT_LENGTH 0). */
  body: InputBody | null;
}

/**
 * A Request stand-in. Its prototype chain runs through Request.prototype, so `instanceof
 * Request` holds; every member of Request is answered here or by a real Request built on demand.
 */
export class LightRequest {
  #method: string;
  #url: string;
  #params: RequestParams;
  #input: InputBody | null;
  // After clone() the body is one half of a tee.
  #stream: ReadableStream<Uint8Array> | null | undefined;
  #headers: Headers | undefined;
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown = undefined;
  #shadow: Request | undefined;
  #transferred = false;

  constructor(init: LightRequestInit) {
    this.#method = init.method;
    this.#url = init.url;
    this.#params = init.params;
    this.#input = init.body;
  }

  /** The request method, as REQUEST_METHOD gave it (GET, POST, ... upper-cased like Request does). */
  get method(): string {
    return this.#method;
  }

  /** The absolute URL, rebuilt from HTTPS/REQUEST_SCHEME, HTTP_HOST and REQUEST_URI. */
  get url(): string {
    return this.#url;
  }

  /** The HTTP request headers, from the HTTP_* params plus CONTENT_TYPE and CONTENT_LENGTH. */
  get headers(): Headers {
    return (this.#headers ??= headersFromParams(this.#params));
  }

  /** Aborts when the web server sends ABORT_REQUEST or the connection is lost. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** The body as a stream of STDIN bytes, or null. */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream !== undefined) return this.#stream;
    return this.#input ? this.#input.stream() : null;
  }

  /** True once the body has been read (or handed to another Request). */
  get bodyUsed(): boolean {
    if (this.#transferred) return true;
    if (this.#stream !== undefined) return this.#stream !== null && isDisturbed(this.#stream);
    return this.#input !== null && this.#input.disturbed;
  }

  /** The whole body, decoded as UTF-8. */
  text(): Promise<string> {
    return this.#readAll().then((bytes) => textDecoder.decode(bytes));
  }

  /** The whole body, parsed as JSON. */
  json(): Promise<unknown> {
    return this.text().then(JSON.parse);
  }

  /** The whole body, in a new ArrayBuffer. */
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#readAll().then((bytes) => copy(bytes).buffer as ArrayBuffer);
  }

  /** The whole body, in a new Uint8Array. */
  bytes(): Promise<Uint8Array> {
    return this.#readAll().then(copy);
  }

  /** The whole body as a Blob typed by Content-Type. */
  blob(): Promise<Blob> {
    return this.#readAll().then((bytes) => new Blob([copy(bytes) as Uint8Array<ArrayBuffer>], { type: this.headers.get("content-type") ?? "" }));
  }

  /** The body parsed as multipart/form-data or application/x-www-form-urlencoded. */
  formData(): Promise<FormData> {
    return this.#readAll().then((bytes) => {
      const type = this.headers.get("content-type");
      return new NativeResponse(copy(bytes) as Uint8Array<ArrayBuffer>, { headers: type === null ? {} : { "content-type": type } }).formData();
    });
  }

  /** A real Request with the same method, URL, headers and signal, and a tee of the body. */
  clone(): Request {
    if (this.bodyUsed || this.body?.locked) throw new TypeError("Request.clone: body is unusable");
    const body = this.body;
    let copyBody: ReadableStream<Uint8Array> | null = null;
    if (body) [this.#stream, copyBody] = body.tee();
    return nativeRequest(this.#method, this.#url, new Headers(this.headers), copyBody, this.signal);
  }

  // Static, so that handlers do not see these as members of their Request.

  /** A real Request for a lightweight one; the body moves to it, as `new Request(request)` does. */
  static toNative(request: LightRequest): Request {
    if (request.bodyUsed || request.body?.locked) throw new TypeError("Request: body is unusable");
    const body = request.body;
    request.#transferred = body !== null;
    return nativeRequest(request.#method, request.#url, request.headers, body, request.signal);
  }

  /** A lightweight request as a RequestInit (for `new Request(url, request)`); the body moves. */
  static asInit(request: LightRequest): RequestInit {
    if (request.bodyUsed || request.body?.locked) throw new TypeError("Request: body is unusable");
    const body = request.body;
    request.#transferred = body !== null;
    const forbidden = FORBIDDEN_METHOD.test(request.#method);
    return { method: forbidden ? "GET" : request.#method, headers: request.headers, body: forbidden ? null : body, signal: request.signal, duplex: "half" } as RequestInit;
  }

  /** Marks the request aborted; the signal fires now if it was handed out, else when it is. */
  static abort(request: LightRequest, reason: unknown): void {
    if (request.#aborted) return;
    request.#aborted = true;
    request.#reason = reason;
    request.#controller?.abort(reason);
  }

  /** A real Request without the body, for the members only a real one knows (cache, mode, ...). */
  static shadow(request: LightRequest): Request {
    return (request.#shadow ??= new NativeRequest(request.#url, { headers: request.headers }));
  }

  #readAll(): Promise<Uint8Array> {
    if (this.bodyUsed || this.body?.locked) return Promise.reject(new TypeError("Body is unusable: it was already read"));
    if (this.#stream !== undefined) {
      return this.#stream === null ? Promise.resolve(new Uint8Array(0)) : new NativeResponse(this.#stream).arrayBuffer().then((b) => new Uint8Array(b));
    }
    return this.#input === null ? Promise.resolve(new Uint8Array(0)) : this.#input.readAll();
  }
}

/** A real Request; methods `new Request()` refuses (TRACE, ...) are built as GET and then relabelled. */
export function nativeRequest(method: string, url: string, headers: Headers, body: ReadableStream<Uint8Array> | null, signal: AbortSignal): Request {
  const forbidden = FORBIDDEN_METHOD.test(method);
  const init = { method: forbidden ? "GET" : method, headers, signal, body: forbidden ? null : body, duplex: "half" } as RequestInit;
  const request = new NativeRequest(url, init);
  if (forbidden) Object.defineProperty(request, "method", { value: method });
  return request;
}

// A stream handed out by `body` counts as used once it is locked by a reader that read;
// a ReadableStream has no public "disturbed" flag, so locked is the best available sign.
function isDisturbed(stream: ReadableStream): boolean {
  return stream.locked;
}

function copy(bytes: Uint8Array): Uint8Array {
  // A body of one chunk is a view of a socket buffer that may hold other requests' bytes.
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

// Every member of Request that LightRequest does not answer itself goes to the shadow request,
// whatever this runtime's Request has (cache, mode, credentials, keepalive, duplex, ...).
Object.setPrototypeOf(LightRequest.prototype, FastCGIGlobalRequest.prototype);
for (const name of Object.getOwnPropertyNames(NativeRequest.prototype)) {
  if (name === "constructor" || Object.hasOwn(LightRequest.prototype, name)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(NativeRequest.prototype, name)!;
  if (descriptor.get) {
    Object.defineProperty(LightRequest.prototype, name, {
      configurable: true,
      enumerable: descriptor.enumerable,
      get(this: LightRequest) {
        return (LightRequest.shadow(this) as unknown as Record<string, unknown>)[name];
      },
    });
  } else if (typeof descriptor.value === "function") {
    Object.defineProperty(LightRequest.prototype, name, {
      configurable: true,
      writable: true,
      value(this: LightRequest, ...args: unknown[]) {
        return (LightRequest.shadow(this) as unknown as Record<string, (...a: unknown[]) => unknown>)[name](...args);
      },
    });
  }
}
// Node's and Deno's inspectors would otherwise call Request's own inspect hooks, which expect a real one.
for (const key of [Symbol.for("nodejs.util.inspect.custom"), Symbol.for("Deno.customInspect")]) {
  Object.defineProperty(LightRequest.prototype, key, {
    configurable: true,
    value(this: LightRequest) {
      return `Request { method: ${JSON.stringify(this.method)}, url: ${JSON.stringify(this.url)} }`;
    },
  });
}

/**
 * Calls `visit` with each request header a CGI gateway passed, in the order of the params:
 * `HTTP_ACCEPT_LANGUAGE` becomes `accept-language`; CONTENT_TYPE and CONTENT_LENGTH become
 * `content-type` and `content-length` (not when empty: nginx sends them so on every request).
 */
export function forEachHeader(params: RequestParams, visit: (name: string, value: string) => void): void {
  const contentType = params.get("CONTENT_TYPE");
  const contentLength = params.get("CONTENT_LENGTH");
  for (const [name, value] of params.entries()) {
    if (name.startsWith("HTTP_")) {
      // The CGI variables win over a duplicate HTTP_CONTENT_* some servers also send.
      if (name === "HTTP_CONTENT_TYPE" && contentType !== undefined) continue;
      if (name === "HTTP_CONTENT_LENGTH" && contentLength !== undefined) continue;
      visit(name.slice(5).toLowerCase().replaceAll("_", "-"), value);
    } else if ((name === "CONTENT_TYPE" || name === "CONTENT_LENGTH") && value !== "") {
      visit(name === "CONTENT_TYPE" ? "content-type" : "content-length", value);
    }
  }
}

/**
 * The request headers a CGI gateway passed (see {@link forEachHeader}). Names or values a
 * Headers object would refuse are skipped.
 */
export function headersFromParams(params: RequestParams): Headers {
  const headers = new Headers();
  forEachHeader(params, (name, value) => {
    try {
      headers.append(name, value);
    } catch {
      // Not a valid header name or value: a web server would not have sent it.
    }
  });
  return headers;
}

/** Request methods the Fetch standard upper-cases; others keep their case (like `new Request()`). */
export function normalizeMethod(method: string | undefined): string {
  if (method === undefined || method === "") return "GET";
  switch (method) {
    case "GET":
    case "POST":
    case "HEAD":
    case "PUT":
    case "DELETE":
    case "OPTIONS":
      return method;
  }
  const upper = method.toUpperCase();
  return /^(?:DELETE|GET|HEAD|OPTIONS|POST|PUT)$/.test(upper) ? upper : method;
}
