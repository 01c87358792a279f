/**
 * A Response as CGI output: a `Status:` line, header lines, a blank line, then the body. Header
 * names and values are checked here, because a CR, LF or NUL written to the web server would
 * let a handler's data forge headers or responses.
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { LightResponse } from "./response.ts";

/** Thrown when a response cannot be written as CGI output; the request gets a 500 instead. */
export class CgiHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CgiHeaderError";
  }
}

/** The CGI form of a response: the header block, and the body still to send. */
export interface CgiOutput {
  status: number;
  /** `Status: ...\r\n` + headers + `\r\n`, latin1-encoded. */
  head: Uint8Array;
  /** Bytes to send after the head, a stream to pump, or null. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  /**
   * True when `body` is bytes fcgi made itself (an encoded string, a Response's own copy of the
   * handler's bytes): nothing else can reach them, so they may be freed once written.
   */
  owned: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// After trimming, a value may hold tabs, visible latin1 and inner spaces: never CR, LF or NUL.
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/;
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** Reason phrases for the `Status:` line when the response has no statusText. */
export const REASON: Readonly<Record<number, string>> = {
  200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information", 204: "No Content",
  205: "Reset Content", 206: "Partial Content", 207: "Multi-Status", 208: "Already Reported", 226: "IM Used",
  300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
  305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
  400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
  405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
  409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed", 413: "Content Too Large",
  414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable", 417: "Expectation Failed",
  418: "I'm a Teapot", 421: "Misdirected Request", 422: "Unprocessable Content", 423: "Locked",
  424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required",
  429: "Too Many Requests", 431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
  504: "Gateway Timeout", 505: "HTTP Version Not Supported", 506: "Variant Also Negotiates",
  507: "Insufficient Storage", 508: "Loop Detected", 510: "Not Extended", 511: "Network Authentication Required",
};

const textEncoder = new TextEncoder();

/**
 * Builds the CGI output of a response. With `omitBody` (HEAD requests) the body is dropped
 * (a stream body is cancelled) but a known Content-Length is still sent.
 * Throws {@link CgiHeaderError} for a header the web server must not see.
 */
export function cgiOutput(response: Response, omitBody: boolean): CgiOutput {
  if (LightResponse.is(response)) {
    const parts = LightResponse.parts(response);
    if (parts) {
      // Its bytes are freed once sent (see owned): a second send would find them gone.
      if (!LightResponse.take(response) && parts.body instanceof Uint8Array) throw new TypeError("the Response's body was already used");
      return fromParts(parts.status, parts.statusText, parts.headers, parts.defaultContentType, parts.body, omitBody, true);
    }
  } else if (response === null || typeof response !== "object" || typeof (response as { status?: unknown }).status !== "number") {
    throw new CgiHeaderError("the handler did not return a Response");
  }
  const body = omitBody ? null : (response.body as ReadableStream<Uint8Array> | null);
  if (omitBody) response.body?.cancel().catch(() => {});
  return fromParts(response.status, response.statusText, response.headers, undefined, body, omitBody, false);
}

function fromParts(
  status: number,
  statusText: string,
  headers: HeadersInit | undefined,
  defaultContentType: string | undefined,
  body: string | Uint8Array | ReadableStream<Uint8Array> | null,
  omitBody: boolean,
  ownBytes: boolean,
): CgiOutput {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new CgiHeaderError(`invalid status ${status}`);
  if (BAD_VALUE.test(statusText)) throw new CgiHeaderError("invalid statusText");
  let head = `Status: ${status} ${statusText || REASON[status] || "Unknown"}\r\n`;
  let hasLength = false;
  let hasType = false;
  const add = (name: string, value: string, checked: boolean): void => {
    if (!checked) {
      if (!TOKEN.test(name)) throw new CgiHeaderError(`invalid header name ${JSON.stringify(name)}`);
      value = value.replace(EDGE_WHITESPACE, "");
      if (BAD_VALUE.test(value)) throw new CgiHeaderError(`invalid value for header ${name}`);
    }
    const lower = name.length === 6 || name.length === 12 || name.length === 14 ? name.toLowerCase() : "";
    // Our Status line is the one that counts; a second one would be ambiguous.
    if (lower === "status") return;
    if (lower === "content-length") hasLength = true;
    else if (lower === "content-type") hasType = true;
    head += `${name}: ${value}\r\n`;
  };
  if (headers instanceof Headers) {
    // A Headers object has validated its names and values already.
    for (const [name, value] of headers) if (name !== "set-cookie") add(name, value, true);
    for (const cookie of headers.getSetCookie()) add("set-cookie", cookie, true);
  } else if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (pair.length !== 2) throw new CgiHeaderError("a header pair must have two elements");
      add(String(pair[0]), String(pair[1]), false);
    }
  } else if (headers !== undefined && headers !== null) {
    for (const name of Object.keys(headers)) add(name, String((headers as Record<string, string>)[name]), false);
  }
  if (!hasType && defaultContentType !== undefined) head += `content-type: ${defaultContentType}\r\n`;
  let bytes: Uint8Array | ReadableStream<Uint8Array> | null = null;
  if (typeof body === "string") bytes = textEncoder.encode(body);
  else if (body !== null) bytes = body;
  if (bytes instanceof Uint8Array && !hasLength) head += `content-length: ${bytes.byteLength}\r\n`;
  head += "\r\n";
  if (omitBody) {
    if (bytes instanceof ReadableStream) bytes.cancel().catch(() => {});
    bytes = null;
  }
  return { status, head: latin1(head), body: bytes, owned: ownBytes && bytes instanceof Uint8Array };
}

/** Encodes a string whose code units are all <= 0xFF, one byte each. */
export function latin1(text: string): Uint8Array {
  // Mostly ASCII: let the native encoder do it.
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return textEncoder.encode(text);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** A plain-text error response as CGI output (used for 500, 413, 503 written by the server itself). */
export function errorOutput(status: number, message: string = REASON[status] ?? "Error"): Uint8Array {
  const body = textEncoder.encode(message + "\n");
  return concatBytes([
    latin1(`Status: ${status} ${REASON[status] ?? "Error"}\r\ncontent-type: text/plain;charset=UTF-8\r\ncontent-length: ${body.byteLength}\r\n\r\n`),
    body,
  ]);
}
