/**
 * `fcgi request ADDR SCRIPT`: sends one request to a FastCGI backend (PHP-FPM, say) and prints
 * the response body, like `cgi-fcgi -bind -connect` or curl for FastCGI. Argument parsing and
 * wiring only; the protocol is the Client's.
 * @module
 */
import { open } from "node:fs/promises";
import { basename, dirname, isAbsolute } from "node:path";
import { Client, type ClientOptions, type FetchOptions } from "../client/client.ts";
import { roleFromName, type RoleName } from "../protocol/constants.ts";
import type { Command } from "./command.ts";
import { addressArg, CLIENT_TLS, clientTlsArgs, clientTlsHelp, eachArg, paramArg, type TlsFiles, tlsFlag, timeoutArg, UsageError, usageFailure } from "./args.ts";
import type { TlsClientOptions } from "../runtime/types.ts";
import type { SocketAddress } from "../socket.ts";

const help = `Usage: fcgi request ADDR SCRIPT [options]

Sends one request to the FastCGI application at ADDR (PHP-FPM, say) and prints the
response body on stdout, byte for byte. What the application writes to FCGI_STDERR
(PHP's error_log()) goes to stderr.

  ADDR     HOST:PORT, [IPv6]:PORT or unix:/PATH (a path starting with / is a Unix socket).
  SCRIPT   SCRIPT_FILENAME: the script's absolute path as the backend sees it. Unless
           --uri is given, SCRIPT_NAME and REQUEST_URI are "/" and its file name, and
           DOCUMENT_ROOT is its folder.

Options:
  -X, --method M         request method (default GET, or POST with --data)
  -H, --header "K: V"    a request header, sent as HTTP_K (repeatable). "Host: name"
                         also sets SERVER_NAME.
  -d, --data DATA        the request body: @FILE (streamed from the file), - (read from
                         stdin) or the text itself. Content-Type defaults to
                         application/x-www-form-urlencoded, as with curl.
  --uri URI              REQUEST_URI, path and query (e.g. /index.php/x?a=1): SCRIPT_NAME
                         is its path, QUERY_STRING its query.
  --document-root DIR    DOCUMENT_ROOT (default: SCRIPT's folder when --uri is not given).
  --path-info P          PATH_INFO (cut from the end of SCRIPT_NAME when it ends with it).
  -p, --param K=V        a param, sent last: it overrides any param built from the options
                         (REMOTE_ADDR, HTTPS, SERVER_PORT, ...). Repeatable.
  --role ROLE            responder (default), authorizer (no body is sent) or filter.
  --filter-data DATA     the Filter role's FCGI_DATA stream: @FILE, - or text.
  -i, --include          print the status line and the response headers before the body.
  -f, --fail             exit with status 22 when the response status is 400 or more.
  --timeout MS           connect timeout, and the longest the backend may stay silent
                         (default 10000 to connect, 60000 for the response).
  --no-keep-conn         send BEGIN_REQUEST without FCGI_KEEP_CONN.
${clientTlsHelp(25)}

Exit status: 0 when a response was received, whatever its status (use --fail to have
4xx and 5xx fail); 1 when the request failed (connection refused or lost, a timeout,
a refusal by the application such as OVERLOADED, output that is not a CGI response),
with the reason on stderr; 2 for a usage error; 22 with --fail and a status >= 400.

Examples:
  fcgi request unix:/run/php/php8.2-fpm.sock /var/www/html/index.php
  fcgi request 127.0.0.1:9000 /srv/app/api.php --uri '/api.php/users?id=7' -i
  fcgi request 127.0.0.1:9000 /srv/app/upload.php -d @photo.jpg -H 'Content-Type: image/jpeg'`;

/** Parsed `fcgi request` arguments. */
interface RequestArgs {
  address: SocketAddress;
  script: string;
  method: string | undefined;
  headers: Array<[string, string]>;
  data: string | undefined;
  filterData: string | undefined;
  uri: string | undefined;
  documentRoot: string | undefined;
  pathInfo: string | undefined;
  params: Array<[string, string]>;
  role: RoleName;
  include: boolean;
  fail: boolean;
  timeout: number | undefined;
  keepConn: boolean;
  tls: TlsClientOptions | undefined;
}

function parse(args: string[]): RequestArgs {
  const positionals: string[] = [];
  const tlsFiles: TlsFiles = {};
  const parsed: Omit<RequestArgs, "address" | "script" | "tls"> = {
    method: undefined,
    headers: [],
    data: undefined,
    filterData: undefined,
    uri: undefined,
    documentRoot: undefined,
    pathInfo: undefined,
    params: [],
    role: "responder",
    include: false,
    fail: false,
    timeout: undefined,
    keepConn: true,
  };
  eachArg(args, (flag, take) => {
    if (tlsFlag(tlsFiles, CLIENT_TLS, flag, take)) return true;
    switch (flag) {
      case "-X":
      case "--method": {
        const method = take();
        if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) throw new UsageError(`--method: '${method}' is not a method name`);
        parsed.method = method.toUpperCase();
        return true;
      }
      case "-H":
      case "--header": {
        const line = take();
        const colon = line.indexOf(":");
        if (colon <= 0) throw new UsageError(`--header: '${line}' is not "Name: value"`);
        parsed.headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
        return true;
      }
      case "-d":
      case "--data":
        parsed.data = take();
        return true;
      case "--filter-data":
        parsed.filterData = take();
        return true;
      case "--uri": {
        const uri = take();
        if (!uri.startsWith("/")) throw new UsageError(`--uri: '${uri}' must start with /`);
        parsed.uri = uri;
        return true;
      }
      case "--document-root":
        parsed.documentRoot = take();
        return true;
      case "--path-info":
        parsed.pathInfo = take();
        return true;
      case "-p":
      case "--param": {
        parsed.params.push(paramArg(take()));
        return true;
      }
      case "--role": {
        const role = take();
        if (roleFromName(role) === undefined) throw new UsageError(`--role: '${role}' is not responder, authorizer or filter`);
        parsed.role = role as RoleName;
        return true;
      }
      case "-i":
      case "--include":
        parsed.include = true;
        return true;
      case "-f":
      case "--fail":
        parsed.fail = true;
        return true;
      case "--timeout":
        parsed.timeout = timeoutArg(flag, take());
        return true;
      case "--no-keep-conn":
        parsed.keepConn = false;
        return true;
      default:
        return false;
    }
  }, (arg) => positionals.push(arg));
  if (positionals.length < 2) throw new UsageError(positionals.length === 0 ? "ADDR and SCRIPT are missing" : "SCRIPT is missing");
  if (positionals.length > 2) throw new UsageError(`unexpected argument '${positionals[2]}'`);
  const script = positionals[1]!;
  if (!isAbsolute(script)) throw new UsageError(`SCRIPT must be an absolute path (SCRIPT_FILENAME), got '${script}'`);
  if (parsed.data === "-" && parsed.filterData === "-") throw new UsageError("--data and --filter-data cannot both read stdin");
  return { address: addressArg(positionals[0]!), script, ...parsed, tls: clientTlsArgs(tlsFiles) };
}

/** A body argument: @FILE streamed (its size known), - read from stdin, or the text. */
async function bodyOf(arg: string): Promise<{ body: ReadableStream<Uint8Array> | Uint8Array; length: number }> {
  if (arg === "-") {
    const bytes = await readStdin();
    return { body: bytes, length: bytes.length };
  }
  if (arg.startsWith("@")) {
    const path = arg.slice(1);
    const file = await open(path, "r");
    const { size } = await file.stat();
    let closed = false;
    const close = () => {
      if (!closed) {
        closed = true;
        void file.close();
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // A fresh buffer per chunk: the client sends views of it, uncopied.
        const buffer = new Uint8Array(64 * 1024);
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) {
          close();
          controller.close();
        } else {
          controller.enqueue(buffer.subarray(0, bytesRead));
        }
      },
      cancel: close,
    }, { highWaterMark: 0 });
    return { body: stream, length: size };
  }
  const bytes = new TextEncoder().encode(arg);
  return { body: bytes, length: bytes.length };
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array | string>) {
    chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Writes to a Node-style stream (process.stdout) and waits when it asks to. */
function write(stream: NodeJS.WritableStream, data: Uint8Array | string): Promise<void> {
  if (stream.write(data)) return Promise.resolve();
  return new Promise((resolve) => stream.once("drain", () => resolve()));
}

async function run(args: string[]): Promise<number> {
  let parsed: RequestArgs;
  try {
    parsed = parse(args);
  } catch (error) {
    return usageFailure("request", error);
  }
  const headers = new Headers();
  try {
    for (const [name, value] of parsed.headers) headers.append(name, value);
  } catch (error) {
    console.error(`fcgi request: --header: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const host = headers.get("host") ?? "localhost";
  const uri = parsed.uri ?? "/" + encodeURIComponent(basename(parsed.script)).replace(/%2F/g, "/");
  let url: string;
  try {
    url = new URL(uri, `http://${host}`).href;
  } catch {
    console.error(`fcgi request: cannot make a URL of host '${host}' and URI '${uri}'`);
    return 2;
  }

  const clientOptions: ClientOptions = {
    address: parsed.address,
    maxConnections: 1,
    keepConn: parsed.keepConn,
    multiplex: false,
    ...(parsed.tls ? { tls: parsed.tls } : {}),
    onStderr: (message) => {
      process.stderr.write(message.endsWith("\n") ? message : message + "\n");
    },
  };
  if (parsed.timeout !== undefined) {
    clientOptions.connectTimeout = parsed.timeout;
    clientOptions.responseTimeout = parsed.timeout;
  }
  const client = new Client(clientOptions);
  try {
    const init: RequestInit & { duplex?: "half" } = { method: parsed.method ?? (parsed.data !== undefined ? "POST" : "GET"), headers };
    if (parsed.data !== undefined) {
      const { body, length } = await bodyOf(parsed.data);
      init.body = body as BodyInit;
      init.duplex = "half";
      if (!headers.has("content-length")) headers.set("content-length", String(length));
      if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded");
    }
    const request = new Request(url, init);
    const options: FetchOptions = {
      scriptFilename: parsed.script,
      role: parsed.role,
      params: parsed.params,
    };
    if (parsed.uri === undefined) {
      options.documentRoot = parsed.documentRoot ?? dirname(parsed.script);
    } else if (parsed.documentRoot !== undefined) {
      options.documentRoot = parsed.documentRoot;
    }
    if (parsed.pathInfo !== undefined) options.pathInfo = parsed.pathInfo;
    if (parsed.filterData !== undefined) {
      // FCGI_DATA_LENGTH must be known up front; the file to filter is read whole.
      const { body } = await bodyOf(parsed.filterData);
      options.data = body instanceof Uint8Array ? body : new Uint8Array(await new Response(body).arrayBuffer());
    }

    const response = await client.fetch(request, options);
    if (parsed.include) {
      const reason = response.statusText || REASONS[response.status];
      let head = `HTTP/1.1 ${response.status}${reason ? " " + reason : ""}\r\n`;
      for (const [name, value] of response.headers) {
        if (name === "set-cookie") continue;
        head += `${name}: ${value}\r\n`;
      }
      for (const cookie of response.headers.getSetCookie()) head += `set-cookie: ${cookie}\r\n`;
      await write(process.stdout, head + "\r\n");
    }
    if (response.body !== null) {
      const reader = response.body.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) await write(process.stdout, r.value);
    }
    return parsed.fail && response.status >= 400 ? 22 : 0;
  } catch (error) {
    console.error(`fcgi request: ${describe(error)}`);
    return 1;
  } finally {
    await client.close();
  }
}

/** Reason phrases for --include when the application gave none (PHP sends no Status for a 200). */
const REASONS: Record<number, string> = {
  200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
  301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
  413: "Content Too Large", 422: "Unprocessable Content", 429: "Too Many Requests",
  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

/** One line saying what failed, with the error code when there is one. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

/** The 'fcgi request' command. */
export const command: Command = {
  summary: "send one request to a FastCGI backend and print the response",
  help,
  run,
};
