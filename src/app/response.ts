/**
 * A lightweight Response that keeps its `body` and `init` as given, so the CGI writer can send
 * a string or byte body without a stream, and builds a real Response only when asked for
 * something exotic (`body` as a stream, `formData()`, ...). Installed as the global `Response`
 * by {@link installGlobalObjects} (the `overrideGlobalObjects` option of `serve()`).
 * @module
 */
import { NativeResponse } from "../native.ts";
import { bodyPool } from "./body_pool.ts";
import { FastCGIGlobalRequest, LightRequest } from "./request.ts";

export { NativeResponse };

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** What the CGI writer reads from a lightweight response that never became a real one. */
export interface LightParts {
  status: number;
  statusText: string;
  /** The headers as given (not validated yet), or the Headers object once someone asked for it. */
  headers: HeadersInit | undefined;
  /** Content-Type to add when the headers have none (a string body is text/plain). */
  defaultContentType: string | undefined;
  /** A Uint8Array here is the response's own copy of the bytes it was given. */
  body: string | Uint8Array | ReadableStream<Uint8Array> | null;
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * A Response that defers everything it can. Behaves like Response (and passes `instanceof
 * Response`); string, byte and stream bodies are kept as given.
 */
export class LightResponse {
  #body: string | Uint8Array | ReadableStream<Uint8Array> | null;
  #init: ResponseInit | undefined;
  #status: number;
  #headers: Headers | undefined;
  #native: Response | undefined;
  #used = false;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const status = init?.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`Response: status ${status} is not in the range 200 to 599`);
    }
    if (init?.statusText !== undefined && !REASON_PHRASE.test(init.statusText)) {
      throw new TypeError("Response: invalid statusText");
    }
    this.#status = status;
    this.#init = init;
    if (body === undefined || body === null) {
      this.#body = null;
    } else if (typeof body === "string") {
      this.#body = body;
    } else if (body instanceof Uint8Array) {
      // Response copies its source bytes; so do we, or a later change to them would show.
      this.#body = bodyPool.copy(body);
    } else if (body instanceof ArrayBuffer) {
      this.#body = bodyPool.copy(new Uint8Array(body));
    } else if (ArrayBuffer.isView(body)) {
      this.#body = bodyPool.copy(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    } else if (body instanceof ReadableStream) {
      this.#body = body as ReadableStream<Uint8Array>;
    } else {
      // Blob, FormData, URLSearchParams: let the real Response work out type and bytes.
      this.#body = null;
      this.#native = new NativeResponse(body, init);
      return;
    }
    if (this.#body !== null && NULL_BODY_STATUS.has(status)) {
      throw new TypeError(`Response: status ${status} cannot have a body`);
    }
  }

  /** The status code. */
  get status(): number {
    return this.#native ? this.#native.status : this.#status;
  }

  /** The status message, "" unless given. */
  get statusText(): string {
    return this.#native ? this.#native.statusText : this.#init?.statusText ?? "";
  }

  /** True for 2xx statuses. */
  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  /** The response headers (built on first access). */
  get headers(): Headers {
    if (this.#native) return this.#native.headers;
    if (!this.#headers) {
      this.#headers = new Headers(this.#init?.headers);
      if (typeof this.#body === "string" && !this.#headers.has("content-type")) {
        this.#headers.set("content-type", "text/plain;charset=UTF-8");
      }
    }
    return this.#headers;
  }

  /** Always false: a Response made by a handler was not redirected. */
  get redirected(): boolean {
    return this.#native ? this.#native.redirected : false;
  }

  /** Always "default" for a constructed Response. */
  get type(): ResponseType {
    return this.#native ? this.#native.type : "default";
  }

  /** Always "" for a constructed Response. */
  get url(): string {
    return this.#native ? this.#native.url : "";
  }

  /** The body as a stream (this makes the response a real one underneath). */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#body instanceof ReadableStream && !this.#native) return this.#body;
    return this.#real().body as ReadableStream<Uint8Array> | null;
  }

  /** True once the body was read. */
  get bodyUsed(): boolean {
    if (this.#native) return this.#native.bodyUsed;
    if (this.#body instanceof ReadableStream) return this.#used || this.#body.locked;
    return this.#used;
  }

  /** The body decoded as UTF-8. */
  text(): Promise<string> {
    const body = this.#body;
    if (this.#native || body instanceof ReadableStream) return this.#real().text();
    if (this.#used) return unusable();
    this.#used = true;
    return Promise.resolve(body === null ? "" : typeof body === "string" ? body : textDecoder.decode(body));
  }

  /** The body parsed as JSON. */
  json(): Promise<unknown> {
    return this.text().then(JSON.parse);
  }

  /** The body bytes in a new ArrayBuffer. */
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.bytes().then((b) => b.buffer as ArrayBuffer);
  }

  /** The body bytes in a new Uint8Array. */
  bytes(): Promise<Uint8Array> {
    const body = this.#body;
    if (this.#native || body instanceof ReadableStream) return this.#real().arrayBuffer().then((b) => new Uint8Array(b));
    if (this.#used) return unusable();
    this.#used = true;
    return Promise.resolve(body === null ? new Uint8Array(0) : typeof body === "string" ? textEncoder.encode(body) : body.slice());
  }

  /** The body as a Blob. */
  blob(): Promise<Blob> {
    return this.#real().blob();
  }

  /** The body parsed as form data. */
  formData(): Promise<FormData> {
    return this.#real().formData();
  }

  /** A copy of this response (a real one when the body is a stream). */
  clone(): Response {
    if (this.bodyUsed) throw new TypeError("Response.clone: body is unusable");
    const body = this.#body;
    if (this.#native || body instanceof ReadableStream) return this.#real().clone();
    return new LightResponse(body as BodyInit | null, { status: this.#status, statusText: this.statusText, headers: new Headers(this.headers) }) as unknown as Response;
  }

  /** True for a LightResponse proper (`instanceof` also says yes to real Responses). */
  static is(value: unknown): value is LightResponse {
    return typeof value === "object" && value !== null && #native in value;
  }

  /** The parts the CGI writer needs, or undefined once a real Response stands behind this one. */
  static parts(response: LightResponse): LightParts | undefined {
    if (response.#native) return undefined;
    return {
      status: response.#status,
      statusText: response.#init?.statusText ?? "",
      headers: response.#headers ?? response.#init?.headers,
      defaultContentType: typeof response.#body === "string" && !response.#headers ? "text/plain;charset=UTF-8" : undefined,
      body: response.#body,
    };
  }

  /** Marks the body as taken by the CGI writer; false when it was taken or read before. */
  static take(response: LightResponse): boolean {
    const first = !response.#used;
    response.#used = true;
    return first;
  }

  /** Real and lightweight responses both count as instances. */
  static [Symbol.hasInstance](value: unknown): boolean {
    return Object.prototype.isPrototypeOf.call(NativeResponse.prototype, value as object);
  }

  #real(): Response {
    if (!this.#native) {
      if (this.#used) throw new TypeError("Body is unusable: it was already read");
      this.#native = new NativeResponse(this.#body as BodyInit as BodyInit | null, {
        status: this.#status,
        statusText: this.#init?.statusText,
        headers: this.#headers ?? this.#init?.headers,
      });
      this.#body = null;
    }
    return this.#native;
  }
}

function unusable(): Promise<never> {
  return Promise.reject(new TypeError("Body is unusable: it was already read"));
}

// Statics (Response.json, Response.redirect, Response.error) come from the real Response.
Object.setPrototypeOf(LightResponse, NativeResponse);
Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
for (const key of [Symbol.for("nodejs.util.inspect.custom"), Symbol.for("Deno.customInspect")]) {
  Object.defineProperty(LightResponse.prototype, key, {
    configurable: true,
    value(this: LightResponse) {
      return `Response { status: ${this.status} }`;
    },
  });
}

let installed = false;

/**
 * Replaces the global `Request` and `Response` with the lightweight-aware versions, as Hono's
 * Node adapter does: `new Response("hi")` in a handler then builds a {@link LightResponse}
 * that the CGI writer sends without a stream, and `new Request(request)` accepts the
 * lightweight requests handlers receive, and so does `fetch(request)`. Idempotent; never undone
 * (other code may hold them).
 */
export function installGlobalObjects(): void {
  if (installed) return;
  installed = true;
  const define = (name: string, value: unknown) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define("Request", FastCGIGlobalRequest);
  define("Response", LightResponse);
  // fetch(request) with a lightweight request (a proxying handler) must reach fetch as a real one.
  const fetch = globalThis.fetch;
  if (typeof fetch === "function") {
    define("fetch", function (this: unknown, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      return fetch.call(this, input instanceof LightRequest ? LightRequest.toNative(input) : input, init);
    });
  }
}
