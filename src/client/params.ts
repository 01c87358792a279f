/**
 * The CGI/1.1 meta-variables (RFC 3875 §4.1) a web server sends in PARAMS, built from a
 * Web-standard Request and what the caller knows about the script.
 * @module
 */
import type { Bytesish } from "../codec/types.ts";

/** What the caller tells about the script and the request, beyond the Request itself. */
export interface ParamsOptions {
  /** SCRIPT_FILENAME: the script's absolute path on the backend (default: documentRoot + scriptName). */
  scriptFilename?: string;
  /** DOCUMENT_ROOT (sent only when given). */
  documentRoot?: string;
  /** SCRIPT_NAME (default: the URL path, decoded, without pathInfo). */
  scriptName?: string;
  /** PATH_INFO (sent only when given). */
  pathInfo?: string;
  /**
   * Extra params, sent last: they override every param built here (REMOTE_ADDR, HTTPS, …).
   * Strings are sent as UTF-8 (ASCII as is); pass Uint8Array for exact bytes.
   */
  params?: Record<string, string | Uint8Array> | Iterable<readonly [string, string | Uint8Array]>;
}

/** SERVER_SOFTWARE, as this client introduces itself. */
export const SERVER_SOFTWARE: string = "fcgi";

const utf8 = new TextEncoder();
/** Header name → HTTP_ param name, for the names seen so far (a handful in practice). */
const httpNames = new Map<string, string | null>();

/**
 * The params of one request, in the order nginx's fastcgi_params sends them, caller params last.
 * Every request header becomes `HTTP_NAME` (upper case, `-` → `_`) except Content-Type and
 * Content-Length (sent as CONTENT_TYPE, CONTENT_LENGTH), `Proxy` (httpoxy: a header must not be
 * able to set HTTP_PROXY) and names with `_` (they would collide with the `-` form, the reason
 * nginx drops them too). `contentLength` is the body's length (null: no body sent).
 *
 * @example
 * ```ts
 * const pairs = requestParams(new Request("http://localhost/index.php?a=1"), { documentRoot: "/srv/www" }, null);
 * // [["REQUEST_METHOD", "GET"], ["REQUEST_URI", "/index.php?a=1"], ["QUERY_STRING", "a=1"], …]
 * ```
 */
export function requestParams(
  request: { readonly method: string; readonly url: string; readonly headers: Headers | null },
  options: ParamsOptions,
  contentLength: number | null,
): Array<readonly [string, Bytesish]> {
  const url = new URL(request.url);
  const https = url.protocol === "https:";
  const query = url.search.length > 1 ? url.search.slice(1) : "";
  const path = url.pathname;
  const pathInfo = options.pathInfo;
  let scriptName = options.scriptName;
  if (scriptName === undefined) {
    scriptName = decodePath(path);
    if (pathInfo && scriptName.endsWith(pathInfo)) scriptName = scriptName.slice(0, scriptName.length - pathInfo.length);
  }
  const documentRoot = options.documentRoot;
  const scriptFilename = options.scriptFilename ?? (documentRoot !== undefined ? joinPath(documentRoot, scriptName) : undefined);

  const pairs: Array<readonly [string, Bytesish]> = [
    ["GATEWAY_INTERFACE", "CGI/1.1"],
    ["SERVER_SOFTWARE", SERVER_SOFTWARE],
    ["SERVER_PROTOCOL", "HTTP/1.1"],
    ["REQUEST_SCHEME", https ? "https" : "http"],
    ["REQUEST_METHOD", request.method],
    ["REQUEST_URI", path + url.search],
    ["QUERY_STRING", query],
    ["SCRIPT_NAME", text(scriptName)],
  ];
  if (scriptFilename !== undefined) pairs.push(["SCRIPT_FILENAME", text(scriptFilename)]);
  if (documentRoot !== undefined) pairs.push(["DOCUMENT_ROOT", text(documentRoot)]);
  if (pathInfo !== undefined) pairs.push(["PATH_INFO", text(pathInfo)]);
  pairs.push(
    ["SERVER_NAME", url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname],
    ["SERVER_PORT", url.port || (https ? "443" : "80")],
    // The request was made in this process: the caller passes the real peer through params.
    ["REMOTE_ADDR", "127.0.0.1"],
  );
  if (https) pairs.push(["HTTPS", "on"]);
  const headers = request.headers;
  const contentType = headers === null ? null : headers.get("content-type");
  if (contentType !== null) pairs.push(["CONTENT_TYPE", contentType]);
  if (contentLength !== null) pairs.push(["CONTENT_LENGTH", String(contentLength)]);
  if (headers !== null) {
    for (const [name, value] of headers) {
      const param = httpName(name);
      if (param !== null) pairs.push([param, value]);
    }
  }
  const extra = options.params;
  if (extra !== undefined) {
    const entries = Symbol.iterator in extra ? extra as Iterable<readonly [string, string | Uint8Array]> : Object.entries(extra);
    const overridden = new Map<string, string | Uint8Array>();
    for (const [name, value] of entries) overridden.set(name, value);
    // Overriding means replacing: a backend that reads the first duplicate must see the caller's value.
    const kept = pairs.filter(([name]) => !overridden.has(name));
    kept.push(...[...overridden].map(([name, value]) => [name, typeof value === "string" ? text(value) : value] as const));
    return kept;
  }
  return pairs;
}

/** The HTTP_ param for a request header name (lower case, as Headers iterates), or null to skip it. */
function httpName(name: string): string | null {
  let param = httpNames.get(name);
  if (param !== undefined) return param;
  param = name === "content-type" || name === "content-length" || name === "proxy" || name.includes("_")
    ? null
    : "HTTP_" + name.toUpperCase().replaceAll("-", "_");
  if (httpNames.size < 1024) httpNames.set(name, param);
  return param;
}

/** A text value as UTF-8 bytes; ASCII stays a string (the encoder writes it byte for byte). */
function text(value: string): Bytesish {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return utf8.encode(value);
  return value;
}

function decodePath(path: string): string {
  if (!path.includes("%")) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function joinPath(root: string, name: string): string {
  if (root.endsWith("/")) root = root.slice(0, -1);
  return root + (name.startsWith("/") ? name : "/" + name);
}
