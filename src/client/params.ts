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
  /** SCRIPT_NAME and DOCUMENT_URI (default: the URL path, decoded, without pathInfo). */
  scriptName?: string;
  /** PATH_INFO (default: empty, as nginx's PHP snippet sends it for a script without one). */
  pathInfo?: string;
  /**
   * The request target as the client sent it, for REQUEST_URI and QUERY_STRING (default: taken
   * from `request.url`, which a URL parser may have re-encoded; see {@link targetAsSent}).
   */
  requestTarget?: string;
  /**
   * Extra params: one of a name built here (REMOTE_ADDR, SERVER_NAME, …) replaces its value where
   * it stands; other names are sent last.
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
 * The params of one request: what nginx sends with Debian's PHP site (snippets/fastcgi-php.conf,
 * fastcgi.conf), in its order, empty values included: PATH_INFO, SCRIPT_FILENAME, QUERY_STRING,
 * REQUEST_METHOD, CONTENT_TYPE, CONTENT_LENGTH, SCRIPT_NAME, REQUEST_URI, DOCUMENT_URI,
 * DOCUMENT_ROOT, SERVER_PROTOCOL, REQUEST_SCHEME, HTTPS (https only), GATEWAY_INTERFACE,
 * SERVER_SOFTWARE, REMOTE_ADDR, REMOTE_PORT, REMOTE_USER, SERVER_ADDR, SERVER_PORT, SERVER_NAME,
 * REDIRECT_STATUS, then caller params of other names. Every request header becomes `HTTP_NAME`
 * (upper case, `-` → `_`; Content-Type and Content-Length too, as nginx sends them) except
 * `Proxy` (httpoxy: a header must not be able to set HTTP_PROXY) and names with `_` (they would
 * collide with the `-` form, the reason nginx drops them too). `contentLength` is the body's
 * length (null: no body sent).
 *
 * @example
 * ```ts
 * const pairs = requestParams(new Request("http://localhost/index.php?a=1"), { documentRoot: "/srv/www" }, null);
 * // [["PATH_INFO", ""], ["SCRIPT_FILENAME", "/srv/www/index.php"], ["QUERY_STRING", "a=1"], …]
 * ```
 */
export function requestParams(
  request: { readonly method: string; readonly url: string; readonly headers: Headers | null },
  options: ParamsOptions,
  contentLength: number | null,
): Array<readonly [string, Bytesish]> {
  const url = new URL(request.url);
  const https = url.protocol === "https:";
  // $request_uri and $query_string are the target as the client sent it, where the URL has it so
  // (Deno.serve): new URL() would percent-encode ' < > and more.
  const target = options.requestTarget ?? targetAsSent(request.url);
  const question = target.indexOf("?");
  const query = question < 0 ? "" : target.slice(question + 1);
  const path = url.pathname;
  const pathInfo = options.pathInfo;
  let scriptName = options.scriptName;
  if (scriptName === undefined) {
    scriptName = decodePath(path);
    if (pathInfo && scriptName.endsWith(pathInfo)) scriptName = scriptName.slice(0, scriptName.length - pathInfo.length);
  }
  const documentRoot = options.documentRoot;
  const scriptFilename = options.scriptFilename ?? (documentRoot !== undefined ? joinPath(documentRoot, scriptName) : undefined);
  const headers = request.headers;
  const script = text(scriptName);

  // nginx's order, with the value of each of its variables: PATH_INFO from Debian's PHP snippet,
  // then fastcgi.conf line by line, then the headers. Empty ones are sent empty, as nginx does:
  // PHP code reads $_SERVER["CONTENT_TYPE"] without isset().
  const pairs: Array<readonly [string, Bytesish]> = [["PATH_INFO", text(options.pathInfo ?? "")]];
  if (scriptFilename !== undefined) pairs.push(["SCRIPT_FILENAME", text(scriptFilename)]);
  pairs.push(
    ["QUERY_STRING", text(query)],
    ["REQUEST_METHOD", request.method],
    ["CONTENT_TYPE", headers?.get("content-type") ?? ""],
    // $content_length: the header; a body sent without one (chunked, or a Request made in code) by
    // its length, as nginx counts a chunked body it has read. An empty body without either header
    // is none (node:http hands every DELETE a body stream, sent or not).
    ["CONTENT_LENGTH", contentLength !== null && (contentLength > 0 || headers?.has("content-length") || headers?.has("transfer-encoding")) ? String(contentLength) : ""],
    ["SCRIPT_NAME", script],
    ["REQUEST_URI", text(target)],
    // $document_uri: after try_files found the script, the URI is the script's name.
    ["DOCUMENT_URI", script],
  );
  if (documentRoot !== undefined) pairs.push(["DOCUMENT_ROOT", text(documentRoot)]);
  pairs.push(["SERVER_PROTOCOL", "HTTP/1.1"], ["REQUEST_SCHEME", https ? "https" : "http"]);
  if (https) pairs.push(["HTTPS", "on"]);
  pairs.push(
    ["GATEWAY_INTERFACE", "CGI/1.1"],
    ["SERVER_SOFTWARE", SERVER_SOFTWARE],
    // The request was made in this process: the caller passes the real peer and local address through params.
    ["REMOTE_ADDR", "127.0.0.1"],
    ["REMOTE_PORT", ""],
    ["REMOTE_USER", basicUser(headers?.get("authorization") ?? null)],
    ["SERVER_ADDR", "127.0.0.1"],
    ["SERVER_PORT", url.port || (https ? "443" : "80")],
    ["SERVER_NAME", url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname],
    // PHP built with --enable-force-cgi-redirect refuses to run without it.
    ["REDIRECT_STATUS", "200"],
  );
  if (headers !== null) {
    for (const [name, value] of headers) {
      const param = httpName(name);
      if (param !== null) pairs.push([param, value]);
    }
  }
  const extra = options.params;
  if (extra === undefined) return pairs;
  const entries = Symbol.iterator in extra ? extra as Iterable<readonly [string, string | Uint8Array]> : Object.entries(extra);
  const overridden = new Map<string, string | Uint8Array>();
  for (const [name, value] of entries) overridden.set(name, value);
  const bytes = (value: string | Uint8Array): Bytesish => (typeof value === "string" ? text(value) : value);
  // Overriding means replacing, in place: the backend sees one value, the caller's, where nginx sends it.
  const out = pairs.map(([name, value]): readonly [string, Bytesish] => {
    const given = overridden.get(name);
    if (given === undefined) return [name, value];
    overridden.delete(name);
    return [name, bytes(given)];
  });
  for (const [name, value] of overridden) out.push([name, bytes(value)]);
  return out;
}

/**
 * $remote_user: the user name of a Basic Authorization header, whether or not anything checked
 * it, or "" (nginx: base64 up to the first "=", a user name before a ":", else nothing).
 */
function basicUser(authorization: string | null): Bytesish {
  const m = authorization === null ? null : /^basic +([A-Za-z0-9+/]*)/i.exec(authorization);
  if (m === null || m[1]!.length % 4 === 1 || !/^(=|$)/.test(authorization!.slice(m[0].length))) return "";
  const decoded = atob(m[1]!);
  const colon = decoded.indexOf(":");
  if (colon <= 0) return "";
  const user = decoded.slice(0, colon);
  return /^[\x00-\x7f]*$/.test(user) ? user : Uint8Array.from(user, (c) => c.charCodeAt(0));
}

/**
 * The request target (path and query) in a URL string, as the string has it: some servers
 * (Deno.serve) keep the target unresolved and unescaped in `request.url`, and new URL() would
 * resolve dot segments and percent-encode before anyone could look.
 */
export function targetAsSent(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  const hash = url.indexOf("#", start);
  return hash < 0 ? url.slice(start) : url.slice(start, hash);
}

/** The HTTP_ param for a request header name (lower case, as Headers iterates), or null to skip it. */
function httpName(name: string): string | null {
  let param = httpNames.get(name);
  if (param !== undefined) return param;
  param = name === "proxy" || name.includes("_")
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
