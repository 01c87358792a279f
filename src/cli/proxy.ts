/**
 * `fcgi proxy`: an HTTP front for a FastCGI backend (PHP-FPM, or an app run by `fcgi serve`),
 * configured as a common nginx PHP site is. Argument parsing and wiring only: the gateway does
 * the routing and path safety, the runtime's HTTP server the HTTP.
 * @module
 */
import { statSync } from "node:fs";
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { formatAddress, parseAddress } from "../address.ts";
import type { Command } from "./command.ts";
import type { BackendAddress, ClientOptions } from "../client/client.ts";
import { gateway, type Gateway, type GatewayOptions } from "../client/gateway.ts";
import { listenHttp } from "../runtime/http.ts";
import { runProxyWorkers } from "./proxy_workers.ts";
import { stopOnSignals } from "./signals.ts";
import { addressArg, CLIENT_TLS, clientTlsArgs, clientTlsHelp, eachArg, paramArg, type TlsFiles, tlsFlag, timeoutArg, UsageError, usageFailure } from "./args.ts";

const DEFAULT_LISTEN = "127.0.0.1:8080";

const help = `Usage: fcgi proxy --upstream ADDR [--upstream ADDR ...] --root DIR [options]

An HTTP server in front of a FastCGI backend (or several): PHP-FPM, or an application run
with 'fcgi serve'. It routes requests as a common nginx PHP site does:

  try_files $uri $uri/ /index.php?$query_string;   # the front controller
  fastcgi_split_path_info ^(.+?\\.php)(/.*)$;        # /app.php/extra: PATH_INFO=/extra

A request for a script (a file under DIR with the script extension) goes to the backend
with the params nginx's Debian PHP site sends, SCRIPT_FILENAME set to it; any other path goes to the front controller (--index),
or, with --static, is served from DIR when such a file exists. Nothing outside DIR can be
reached: '..', %2e%2e, %00, backslashes and symlinks pointing out of DIR are refused, and
no request reaches the backend with a script name that is not a file under DIR.

Options:
  --listen HOST:PORT       where to serve HTTP (default ${DEFAULT_LISTEN}); :PORT listens on
                           every IPv4 interface, [::1]:PORT on IPv6 loopback. HOST is
                           sent as SERVER_ADDR (127.0.0.1 for every interface).
  --upstream ADDR          the FastCGI backend (required): HOST:PORT, [IPv6]:PORT or
                           unix:/PATH (a path starting with / is a Unix socket).
                           Repeat it for several backends; ADDR,weight=N gives one N
                           times the share of a backend of weight 1 (the default).
  --balance MODE           how requests are spread over several backends: least (the
                           default: fewest requests in flight, per weight) or round-robin.
  --backoff MS             how long a backend that refused or reset a connection or timed
                           out is left out (default 1000); doubled each time it fails
                           again when tried, up to --max-backoff MS (default 30000).
  --health-check MS        ask each backend GET_VALUES every MS milliseconds: one that does
                           not answer is left out, one that answers is used again
                           (default: off; a left-out backend is tried with a request).
  --root DIR               the document root (required): where scripts and static files
                           are looked up; DOCUMENT_ROOT.
  --index NAME             the front controller and directory index (default index.php).
  --script-extension EXT   what makes a file a script for the backend (default: the
                           extension of --index, .php).
  --static                 serve files under DIR that are not scripts directly, as nginx
                           does with try_files (default: every request goes to the backend).
  --no-try-files           no front controller: a path that is no script is answered 404.
  --lookup-cache MS        how long a path's lookup under DIR (real path, file or not)
                           is reused (default 1000; 0: every request looks afresh).
  --backend-root DIR       DIR as the backend sees it, when it differs (PHP-FPM in a
                           container): SCRIPT_FILENAME and DOCUMENT_ROOT use this path.
  -p, --param K=V          a param sent with every request; it overrides the one the
                           gateway builds (HTTPS=on, SERVER_NAME, ...). Repeatable.
  --max-connections N      FastCGI connections at most, per backend (default 8; lowered
                           to the backend's FCGI_MAX_CONNS when it tells one).
  --timeout MS             connect timeout, and the longest the backend may stay silent
                           (default 10000 to connect, 60000 for the response).
  --no-keep-conn           one FastCGI connection per request (no FCGI_KEEP_CONN).
  --workers N              run N proxy processes on the one --listen port (N or auto: one
                           per CPU), as nginx's worker_processes: each is this command with
                           --reuse-port, the kernel spreads connections among them, and
                           one that dies is started again. Linux; Node 22.12 or later.
  --reuse-port             listen with SO_REUSEPORT, so that other processes may serve the
                           same port (what --workers uses; Linux; Node 22.12 or later).
  --raw-target             REQUEST_URI and QUERY_STRING exactly as the client sent them.
                           Node and Deno always do so; on Bun this serves HTTP through
                           node:http, about 0.6x as fast, where Bun.serve percent-encodes
                           ' < > in the query.
${clientTlsHelp(27)}

When the backend cannot be reached or fails, the answer is 502 (504 on a timeout). With
several backends, a request that never reached its backend goes on to the next one, and so
does a GET, HEAD, OPTIONS, TRACE, PUT or DELETE that a backend lost before answering (unless
its body was streamed: a request with Content-Length is never sent twice); when every
backend is left out, the answer is 502 at once. A single backend is never left out.
Output: "fcgi: listening on http://HOST:PORT" and every log line go to stderr.
SIGINT or SIGTERM closes gracefully (no new connections, in-flight requests finish, then
the FastCGI connections close) and exits with status 0; a second signal exits at once with
status 1. Exit status 1 when it cannot listen; 2 for a usage error.

Examples:
  fcgi proxy --listen 127.0.0.1:8080 --upstream unix:/run/php/php8.2-fpm.sock --root /var/www/html
  fcgi proxy --listen :8080 --upstream 127.0.0.1:9000 --root ./public --static
  fcgi proxy --upstream 10.0.0.2:9000 --upstream 10.0.0.3:9000,weight=2 --root ./public`;

/** Parsed `fcgi proxy` arguments. */
interface ProxyArgs {
  hostname: string;
  port: number;
  options: GatewayOptions;
  rawTarget: boolean;
  reusePort: boolean;
  workers: number | undefined;
}

function positiveArg(flag: string, text: string): number {
  if (!/^[1-9][0-9]*$/.test(text)) throw new UsageError(`${flag}: '${text}' is not a positive whole number`);
  return Number(text);
}

function directoryArg(flag: string, text: string): string {
  const dir = resolve(text);
  let isDirectory = false;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    // reported below, with the flag's name
  }
  if (!isDirectory) throw new UsageError(`${flag}: '${text}' is not a directory`);
  return dir;
}

function parse(args: string[]): ProxyArgs {
  let listen = DEFAULT_LISTEN;
  const upstreams: BackendAddress[] = [];
  let root: string | undefined;
  let rawTarget = false;
  let reusePort = false;
  let workers: number | undefined;
  const options: Partial<GatewayOptions> = {};
  const client: Omit<ClientOptions, "address"> = {};
  const params: Record<string, string> = {};
  const tlsFiles: TlsFiles = {};
  eachArg(args, (flag, take) => {
    if (tlsFlag(tlsFiles, CLIENT_TLS, flag, take)) return true;
    switch (flag) {
      case "--listen":
        listen = take();
        return true;
      case "--upstream":
        upstreams.push(upstreamArg(take()));
        return true;
      case "--balance": {
        const mode = take();
        if (mode !== "least" && mode !== "round-robin") throw new UsageError(`--balance: '${mode}' is not least or round-robin`);
        client.balance = mode;
        return true;
      }
      case "--backoff":
        client.backoff = positiveArg(flag, take());
        return true;
      case "--max-backoff":
        client.maxBackoff = positiveArg(flag, take());
        return true;
      case "--health-check":
        client.healthCheck = positiveArg(flag, take());
        return true;
      case "--root":
        root = take();
        return true;
      case "--index": {
        const index = take();
        if (index === "" || /[/\\\0]/.test(index)) throw new UsageError(`--index: '${index}' must be a file name, without a folder`);
        options.index = index;
        return true;
      }
      case "--script-extension": {
        const extension = take();
        if (!/^\.?[A-Za-z0-9_-]+$/.test(extension)) throw new UsageError(`--script-extension: '${extension}' is not an extension such as .php`);
        options.scriptExtension = extension.startsWith(".") ? extension : "." + extension;
        return true;
      }
      case "--static":
        options.staticFiles = true;
        return true;
      case "--no-try-files":
        options.tryFiles = false;
        return true;
      case "--lookup-cache": {
        const text = take();
        options.lookupCache = text === "0" ? 0 : positiveArg(flag, text);
        return true;
      }
      case "--backend-root": {
        const dir = take();
        if (!dir.startsWith("/")) throw new UsageError(`--backend-root: '${dir}' must be an absolute path`);
        options.backendRoot = dir;
        return true;
      }
      case "-p":
      case "--param": {
        const [name, value] = paramArg(take());
        params[name] = value;
        return true;
      }
      case "--max-connections":
        client.maxConnections = positiveArg(flag, take());
        return true;
      case "--timeout": {
        const timeout = timeoutArg(flag, take());
        client.connectTimeout = timeout;
        client.responseTimeout = timeout;
        return true;
      }
      case "--no-keep-conn":
        client.keepConn = false;
        return true;
      case "--raw-target":
        rawTarget = true;
        return true;
      case "--reuse-port":
        reusePort = true;
        return true;
      case "--workers": {
        const text = take();
        workers = text === "auto" ? availableParallelism() : positiveArg(flag, text);
        return true;
      }
      default:
        return false;
    }
  }, (arg) => {
    throw new UsageError(`unexpected argument '${arg}'`);
  });
  if (upstreams.length === 0) throw new UsageError("--upstream is missing (the FastCGI backend's address)");
  if (root === undefined) throw new UsageError("--root is missing (the document root)");
  const { hostname, port } = listenArg(listen);
  if (workers !== undefined && port === 0) throw new UsageError("--workers needs a --listen port other than 0 (every worker listens on the same one)");
  // $server_addr is the address a request came in on: a specific --listen address is it. A
  // wildcard leaves the gateway's 127.0.0.1 (the runtimes' HTTP servers do not tell the local address).
  if (isIP(hostname) !== 0 && hostname !== "0.0.0.0" && hostname !== "::") params.SERVER_ADDR ??= hostname;
  if (Object.keys(params).length > 0) options.params = params;
  const tls = clientTlsArgs(tlsFiles);
  if (tls) client.tls = tls;
  if (Object.keys(client).length > 0) options.client = client;
  return {
    hostname,
    port,
    rawTarget,
    reusePort,
    workers,
    options: { ...options, upstream: upstreams.length === 1 ? upstreams[0]! : upstreams, documentRoot: directoryArg("--root", root) },
  };
}

/** --upstream ADDR, or ADDR,weight=N. */
function upstreamArg(text: string): BackendAddress {
  const m = /^(.*),weight=([^,]*)$/.exec(text);
  if (m === null) return addressArg(text);
  return { address: addressArg(m[1]!), weight: positiveArg("--upstream: weight", m[2]!) };
}

/** --listen: TCP only, as HTTP is served here; "localhost" is 127.0.0.1, the same on every runtime. */
function listenArg(text: string): { hostname: string; port: number } {
  let address;
  try {
    address = parseAddress(text);
  } catch (error) {
    throw new UsageError(`--listen: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (address.transport !== "tcp") throw new UsageError(`--listen: '${text}' is not HOST:PORT (HTTP is served over TCP)`);
  return { hostname: address.hostname === "localhost" ? "127.0.0.1" : address.hostname, port: address.port };
}

async function run(args: string[]): Promise<number> {
  let parsed: ProxyArgs;
  try {
    parsed = parse(args);
  } catch (error) {
    return usageFailure("proxy", error);
  }
  if (parsed.workers !== undefined) return await runProxyWorkers(parsed.workers, args);
  const handler: Gateway = gateway(parsed.options);
  const upstream = handler.client.addresses.map(formatAddress).join(", ");

  const stopping = stopOnSignals();
  try {
    let server;
    try {
      server = await listenHttp(handler, { hostname: parsed.hostname, port: parsed.port, signal: stopping.signal, rawTarget: parsed.rawTarget, reusePort: parsed.reusePort });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const why = code === "EADDRINUSE" ? "the address is in use" : code === "EACCES" ? "permission denied" : error instanceof Error ? error.message : String(error);
      console.error(`fcgi proxy: cannot listen on ${parsed.hostname}:${parsed.port}: ${why}`);
      return 1;
    }
    console.error(`fcgi: listening on ${server.url} (FastCGI upstream${handler.client.addresses.length > 1 ? "s" : ""} ${upstream}, root ${parsed.options.documentRoot})`);
    await server.finished;
    console.error("fcgi: stopped");
    return 0;
  } finally {
    // The HTTP server is closed (or never opened) first, so no request is left to need the backend.
    await handler.close();
    stopping.release();
  }
}

/** The 'fcgi proxy' command. */
export const command: Command = {
  summary: "an HTTP front (gateway) for a FastCGI backend such as PHP-FPM",
  help,
  run,
};
