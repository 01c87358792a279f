/**
 * `gateway()`: an HTTP front for PHP-FPM (or any FastCGI application) as a fetch handler, routing
 * each request as a common nginx PHP site does, without letting any request out of the document root.
 * @module
 */
import { realpathSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve as resolvePath, sep } from "node:path";
import { FastCGIError } from "../errors.ts";
import { NativeResponse } from "../native.ts";
import { Client, type BackendAddress, type ClientOptions } from "./client.ts";
import { targetAsSent } from "./params.ts";

/** Options of {@link gateway}. */
export interface GatewayOptions {
  /**
   * The backend: a Client to share (the gateway does not close it), or its address, or several
   * (the gateway makes and owns a Client that balances over them and fails over, see ClientOptions.address).
   */
  upstream: Client | BackendAddress | readonly BackendAddress[];
  /** The document root on this machine, as nginx's `root`: scripts and static files are looked up here. */
  documentRoot: string;
  /** The front controller and directory index (default "index.php"). */
  index?: string;
  /**
   * `try_files $uri $uri/ /index.php?$query_string` (default true): a path that is no script goes
   * to the front controller. False: such a path is a 404 (static files aside).
   */
  tryFiles?: boolean;
  /** Serve files under the root that are not scripts directly (default false: only the backend answers). */
  staticFiles?: boolean;
  /** What makes a file a script (default: the extension of `index`, ".php"). */
  scriptExtension?: string;
  /** The document root as the backend sees it, when it differs (PHP-FPM in a container). Default: documentRoot. */
  backendRoot?: string;
  /**
   * How long (ms) a path's lookup under the root (real path, file or directory) is reused
   * (default 1000; 0 looks every request up afresh). A file made, removed or re-linked is seen
   * within this time, as with nginx's open_file_cache_valid.
   */
  lookupCache?: number;
  /** Params sent with every request; they override the ones built from the request. */
  params?: Record<string, string>;
  /** Options of the Client the gateway makes when `upstream` is an address. */
  client?: Omit<ClientOptions, "address">;
  /**
   * Where backend failures are reported (default: console.error). The HTTP client gets a 502 or
   * 504; a 502 at once when every backend is down (FastCGIError code UNAVAILABLE).
   */
  onError?: (error: unknown, request: Request) => void;
}

/** A fetch handler for `Deno.serve`, `Bun.serve` or (through `toNodeHandler`) `node:http`. */
export interface Gateway {
  /** Answers one HTTP request. `info` is what Deno.serve or Bun.serve pass: it gives REMOTE_ADDR. */
  (request: Request, info?: unknown): Promise<Response>;
  /** The Client requests go through. */
  readonly client: Client;
  /** Closes the Client, if the gateway made it. */
  close(): Promise<void>;
  /** Same as close(). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Where a request goes: a script on the backend, a static file, or an answer made here. */
type Route =
  | { kind: "script"; scriptName: string; pathInfo: string | undefined }
  | { kind: "static"; file: string; size: number; modified: Date }
  | { kind: "answer"; response: Response };

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8", htm: "text/html; charset=utf-8", css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8", mjs: "text/javascript; charset=utf-8", json: "application/json",
  txt: "text/plain; charset=utf-8", xml: "application/xml", svg: "image/svg+xml", png: "image/png",
  jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", avif: "image/avif",
  ico: "image/x-icon", woff: "font/woff", woff2: "font/woff2", ttf: "font/ttf", otf: "font/otf",
  pdf: "application/pdf", wasm: "application/wasm", map: "application/json", mp4: "video/mp4",
  webm: "video/webm", mp3: "audio/mpeg", ogg: "audio/ogg", zip: "application/zip",
};

/** What a lookup under the root found. */
interface Lookup {
  real: string;
  isFile: boolean;
  isDirectory: boolean;
}

/** Paths whose lookups are kept at most (see GatewayOptions.lookupCache). */
const MAX_LOOKUPS = 1000;

/** Bytes per read of a static file. */
const STATIC_CHUNK = 64 * 1024;

function plainResponse(status: number, text: string, headers: Record<string, string> = {}): Response {
  return new NativeResponse(text + "\n", { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });
}

function answer(status: number, text: string, headers: Record<string, string> = {}): Route {
  return { kind: "answer", response: plainResponse(status, text, headers) };
}

/**
 * The decoded path's segments, or null when the path must be refused: malformed percent-encoding,
 * an encoded slash, NUL, CR, LF (the CVE-2019-11043 pattern splits PATH_INFO at a newline), a backslash (a
 * separator on Windows backends), or a `.`/`..` segment, encoded or not.
 */
export function safeSegments(pathname: string): string[] | null {
  // An encoded slash would make one segment two after decoding: refused, as Apache does by default.
  if (/%2f/i.test(pathname)) return null;
  let path: string;
  try {
    path = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (!path.startsWith("/") || /[\0\r\n\\]/.test(path)) return null;
  const segments = path.split("/").slice(1);
  for (const s of segments) if (s === "." || s === "..") return null;
  return segments;
}

/** A request URL's path as the client sent it (see targetAsSent). */
function pathAsSent(url: string): string {
  const target = targetAsSent(url);
  const question = target.indexOf("?");
  return question < 0 ? target : target.slice(0, question);
}

/** The target as sent, when the HTTP server passed it (node:http; see HttpConnInfo). */
function requestTargetOf(info: unknown): { requestTarget?: string } {
  const target = typeof info === "object" && info !== null ? (info as { requestTarget?: unknown }).requestTarget : undefined;
  return typeof target === "string" && target.startsWith("/") ? { requestTarget: target } : {};
}

function remoteOf(info: unknown): { hostname: string; port: number } | undefined {
  if (typeof info !== "object" || info === null) return undefined;
  const remote = (info as { remoteAddr?: { hostname?: unknown; port?: unknown } }).remoteAddr;
  if (remote && typeof remote.hostname === "string") return { hostname: remote.hostname, port: Number(remote.port) || 0 };
  return undefined;
}

/**
 * A fetch handler that sends PHP requests to `upstream` as this nginx site would:
 *
 * ```nginx
 * root $documentRoot;  index index.php;
 * location / { try_files $uri $uri/ /index.php?$query_string; }
 * location ~ [^/]\.php(/|$) {
 *     fastcgi_split_path_info ^(.+?\.php)(/.*)$;
 *     try_files $fastcgi_script_name =404;
 *     fastcgi_pass $upstream;
 * }
 * ```
 *
 * The path is decoded once; `..`, `%2e%2e`, `%00`, CR/LF, backslashes are refused (400), and a
 * script or static file whose real path (symlinks resolved) is outside the root is a 404. Only an
 * existing regular file named with the script extension is ever sent as SCRIPT_FILENAME, so
 * `/uploads/evil.jpg/x.php` runs nothing. Backend unreachable or failing: 502; too slow: 504.
 * The params are the ones nginx sends with Debian's PHP site (see `requestParams`), REMOTE_ADDR
 * and REMOTE_PORT from `info`.
 *
 * @example
 * ```ts
 * import { gateway } from "fcgi";
 *
 * const php = gateway({ upstream: "unix:/run/php/php8.2-fpm.sock", documentRoot: "/var/www/html", staticFiles: true });
 * Deno.serve({ port: 8080 }, php);        // or Bun.serve({ port: 8080, fetch: php })
 * ```
 */
export function gateway(options: GatewayOptions): Gateway {
  const owned = !(options.upstream instanceof Client);
  const client = options.upstream instanceof Client
    ? options.upstream
    : new Client({ ...options.client, address: options.upstream });
  const index = options.index ?? "index.php";
  if (index.includes("/") || index === "" || index === "." || index === "..") throw new TypeError(`gateway: index must be a file name, not '${index}'`);
  const dot = index.lastIndexOf(".");
  const extension = options.scriptExtension ?? (dot > 0 ? index.slice(dot) : ".php");
  const tryFiles = options.tryFiles ?? true;
  const staticFiles = options.staticFiles ?? false;
  const root = resolvePath(options.documentRoot);
  const backendRoot = (options.backendRoot ?? root).replace(/\/+$/, "");
  const onError = options.onError ?? ((error: unknown, request: Request) => console.error(`fcgi gateway: ${request.method} ${new URL(request.url).pathname}: ${error instanceof Error ? error.message : String(error)}`));
  // Looked up synchronously: realpath(3) and stat(2) of a cached path take microseconds, while the
  // promise versions go through libuv's thread pool and cost more than the rest of a request
  // (measured: 25 % of the proxy's CPU time).
  // Even so, realpath (a readlink per path segment) and stat were 6-15 % of the proxy's CPU time
  // under load (bench/RESULTS.md, "Proxy: where the time goes"): a lookup is reused for lookupCache ms, as nginx's
  // open_file_cache_valid does. The map is emptied wholesale when it expires or fills, so a
  // stream of made-up paths cannot grow it. The root's own real path expires with it: a deploy
  // that re-points a symlinked root (`current` → the next release) is followed, not answered 404.
  const lookupTtl = options.lookupCache ?? 1000;
  const lookups = new Map<string, Lookup | null>();
  let lookupsSince = 0;
  let realRoot: string | undefined;

  /** A path under the root whose real path (symlinks resolved) is under the root too, or null. */
  function statInside(relative: string): Lookup | null {
    const now = Date.now();
    if (now - lookupsSince >= lookupTtl || lookups.size >= MAX_LOOKUPS) {
      lookups.clear();
      lookupsSince = now;
      realRoot = undefined;
    }
    if (lookupTtl > 0) {
      const known = lookups.get(relative);
      if (known !== undefined) return known;
    }
    let found: Lookup | null = null;
    try {
      realRoot ??= realpathSync.native(root);
      const real = realpathSync.native(root + relative);
      if (real === realRoot || real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)) {
        const s = statSync(real);
        found = { real, isFile: s.isFile(), isDirectory: s.isDirectory() };
      }
    } catch {
      // no such file, or not readable: null
    }
    if (lookupTtl > 0) lookups.set(relative, found);
    return found;
  }

  function script(scriptName: string, pathInfo: string | undefined): Route {
    const found = statInside(scriptName);
    // try_files $fastcgi_script_name =404: only an existing regular file is a script.
    if (found === null || !found.isFile) return answer(404, "Not Found");
    return { kind: "script", scriptName, pathInfo };
  }

  function route(request: Request): Route {
    const url = new URL(request.url);
    const sent = safeSegments(pathAsSent(request.url));
    if (sent === null) return answer(400, "Bad Request");
    // merge_slashes, on in nginx by default: "//" is "/" (a trailing slash stays: it names a directory).
    const segments = sent.filter((s, i) => s !== "" || i === sent.length - 1);
    // fastcgi_split_path_info ^(.+?\.php)(/.*)$: the first segment named *.php ends the script name.
    const at = segments.findIndex((s) => s.length > extension.length && s.endsWith(extension));
    if (at >= 0) {
      const rest = segments.slice(at + 1);
      return script("/" + segments.slice(0, at + 1).join("/"), rest.length > 0 ? "/" + rest.join("/") : undefined);
    }
    const path = "/" + segments.join("/");
    const found = statInside(path);
    if (found?.isDirectory) {
      // $uri/: a directory is answered by its index (nginx redirects to add the slash first).
      if (!path.endsWith("/")) return answer(301, "Moved Permanently", { location: url.pathname + "/" + url.search });
      const indexed = statInside(path + index);
      if (indexed?.isFile) return { kind: "script", scriptName: path + index, pathInfo: undefined };
    } else if (found?.isFile && staticFiles) {
      // Size and date from a fresh stat: a file rewritten since the lookup is sent as it is now.
      let s;
      try {
        s = statSync(found.real);
      } catch {
        return answer(404, "Not Found");
      }
      return { kind: "static", file: found.real, size: s.size, modified: s.mtime };
    }
    if (!tryFiles) return answer(found?.isDirectory ? 403 : 404, found?.isDirectory ? "Forbidden" : "Not Found");
    return script("/" + index, undefined);
  }

  const handler = async (request: Request, info?: unknown): Promise<Response> => {
    const target = route(request);
    if (target.kind === "answer") return target.response;
    if (target.kind === "static") return serveStatic(request, target.file, target.size, target.modified);
    const remote = remoteOf(info);
    const params: Record<string, string> = {};
    if (remote) {
      params.REMOTE_ADDR = remote.hostname;
      params.REMOTE_PORT = String(remote.port);
    }
    Object.assign(params, options.params);
    try {
      return await client.fetch(request, {
        documentRoot: backendRoot,
        scriptName: target.scriptName,
        scriptFilename: backendRoot + target.scriptName,
        ...(target.pathInfo === undefined ? {} : { pathInfo: target.pathInfo }),
        ...requestTargetOf(info),
        params,
      });
    } catch (error) {
      // A client that went away needs no log line; whatever is answered goes nowhere.
      if (!request.signal.aborted) onError(error, request);
      const timedOut = error instanceof FastCGIError && error.code === "TIMEOUT";
      return plainResponse(timedOut ? 504 : 502, timedOut ? "Gateway Timeout" : "Bad Gateway");
    }
  };
  const close = (): Promise<void> => (owned ? client.close() : Promise.resolve());
  return Object.assign(handler, { client, close, [Symbol.asyncDispose]: close }) as Gateway;
}

/** GET and HEAD of a static file: Content-Type, Content-Length, Last-Modified, 304 on If-Modified-Since. */
async function serveStatic(request: Request, file: string, size: number, modified: Date): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return plainResponse(405, "Method Not Allowed", { allow: "GET, HEAD" });
  }
  const dot = file.lastIndexOf(".");
  const type = (dot > file.lastIndexOf("/") && CONTENT_TYPES[file.slice(dot + 1).toLowerCase()]) || "application/octet-stream";
  const lastModified = new Date(Math.floor(modified.getTime() / 1000) * 1000);
  const headers = { "content-type": type, "last-modified": lastModified.toUTCString() };
  const since = Date.parse(request.headers.get("if-modified-since") ?? "");
  if (!Number.isNaN(since) && lastModified.getTime() <= since) return new NativeResponse(null, { status: 304, headers });
  if (request.method === "HEAD") return new NativeResponse(null, { headers: { ...headers, "content-length": String(size) } });
  const handle = await open(file, "r");
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = new Uint8Array(Math.min(STATIC_CHUNK, size - sent) || 1);
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, sent);
        sent += bytesRead;
        if (bytesRead > 0) controller.enqueue(chunk.subarray(0, bytesRead));
        if (bytesRead === 0 || sent >= size) {
          await handle.close();
          controller.close();
        }
      } catch (error) {
        await handle.close().catch(() => {});
        controller.error(error);
      }
    },
    cancel: () => handle.close(),
  });
  return new NativeResponse(body, { headers: { ...headers, "content-length": String(size) } });
}
