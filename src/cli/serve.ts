/**
 * `fcgi serve <module>`: runs a module's fetch handler (the `deno serve` / Bun default-export
 * convention) as a FastCGI application. Argument parsing and wiring only.
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { formatAddress } from "../address.ts";
import { DEFAULT_LIMITS } from "../app/options.ts";
import { installGlobalObjects } from "../app/response.ts";
import { type ReportingServer, serveWith } from "../app/serve.ts";
import { AccessLog, type AccessLogFormat } from "../app/access_log.ts";
import type { Handler, Limits, ServeOptions, Server } from "../app/types.ts";
import type { Command } from "./command.ts";
import { stopOnSignals } from "./signals.ts";
import { eachArg, SERVER_TLS, serverTlsArgs, type TlsFiles, tlsFlag, UsageError, usageFailure } from "./args.ts";
import { isRequestEmitter } from "../node/emitter.ts";
import { poolFlag, type PoolFlags, runPoolCommand, trackHandlers, workerLink } from "./pool.ts";

const help = `Usage: fcgi serve <module> [options]

Runs a module as a FastCGI application behind nginx, Apache, lighttpd or spawn-fcgi.
The module's default export is an object { fetch, authorize?, filter? } (as for
'deno serve' and Bun) or a function (the fetch handler). Handlers take a Request and
a context and return a Response.
A node:http app (Express, Koa, Fastify, any (req, res) listener) is served too: export
a server that has 'request' listeners and is never listened, such as
'export default http.createServer(app)' or fcgi/node's createServer(app) (for Fastify:
'await app.ready(); export default app.server'). Its listener plays the responder and
authorizer roles; req.fastcgi has the params and the role.
The module path is resolved against the current directory; '--' ends the options (for a
path that starts with '-'), and '-' is refused: the module cannot come from standard input.

Options:
  --listen ADDR              where to listen; repeat for several: HOST:PORT, [IPv6]:PORT,
                             :PORT (all interfaces), unix:/PATH, or fd:N for a listening
                             socket inherited on descriptor N (0, or 3 and up). Without --listen the
                             application uses the sockets systemd passes (LISTEN_FDS, when
                             LISTEN_PID is this process), else the listening socket inherited
                             on file descriptor 0 (FCGI_LISTENSOCK_FILENO), as started by a
                             web server, mod_fcgid or spawn-fcgi.
  --allow LIST               web servers allowed to connect over TCP: IPv4, IPv6 or CIDR,
                             comma-separated; repeatable. Default: $FCGI_WEB_SERVER_ADDRS,
                             and when that is unset, any.
  --socket-mode MODE         octal file mode of Unix sockets created by --listen (e.g. 660).
  --no-multiplex             one request per connection; a second one on the same
                             connection gets CANT_MPX_CONN (FCGI_MPXS_CONNS=0).
  --runtime NAME             socket adapter: node, deno or bun (default: the running one).
  --no-override-globals      keep the runtime's own Request and Response globals (handlers
                             then get real Request objects; slower on Node).

TLS (see the README's "TLS" section for which runtime does what):
  --tls-cert FILE            serve over TLS with this certificate chain (PEM); needs --tls-key.
  --tls-key FILE             the private key (PEM) of --tls-cert.
  --tls-client-ca FILE       mutual TLS: only web servers presenting a certificate signed by
                             the CA in FILE (PEM) get in; --allow still applies on top. A
                             failed handshake closes that connection and is logged.
                             SIGHUP reads the three files again: new connections get the new
                             certificate, open ones keep theirs (with --workers, the rolling
                             reload's new workers read them).

Limits (each hit is logged):
  --max-connections N        simultaneous connections, FCGI_MAX_CONNS (default ${DEFAULT_LIMITS.maxConnections});
                             over TLS, those still in their handshake count too.
  --max-requests N           simultaneous requests, FCGI_MAX_REQS; more get OVERLOADED
                             (default ${DEFAULT_LIMITS.maxRequests}).
  --max-params-bytes SIZE    PARAMS of one request (default 1M).
  --max-body-bytes SIZE      request body; over it the answer is 413 (default: no limit).
  --max-buffered-bytes SIZE  unread input one request may buffer while others share its
                             connection; over it the request is ended (default 1M).
  --max-unsent-bytes SIZE    output a connection may hold for a web server that does not read
                             it; over it the connection stops reading until the peer drains
                             it (default 1M).
  --params-timeout TIME      PARAMS must be complete this soon after a connection opens
                             or a kept connection wakes up (default 10s).
  --idle-timeout TIME        a kept-open connection without requests is closed (default 60s).
  --send-timeout TIME        a connection over --max-unsent-bytes whose peer does not drain
                             it within TIME is closed (default 60s).
  --close-timeout TIME       on SIGINT/SIGTERM, in-flight requests get this long (default 10s).
  --request-timeout TIME     a request running longer is ended: 504 (or its body cut short),
                             its signal aborted (default: no limit).

Operating (all off by default):
  --status-path PATH         answer requests for PATH (SCRIPT_NAME or DOCUMENT_URI) with the
                             status page, as PHP-FPM's pm.status_path: text, or ?json, ?xml,
                             ?html, ?openmetrics; &full adds a row per process. With --workers,
                             any worker answers for the whole pool. Expose it to your
                             monitoring host only (see the README's "Operating" section).
  --ping-path PATH           answer requests for PATH with --ping-response (200), or 503 while
                             the server drains: a health check for nginx, HAProxy or a probe.
  --ping-response TEXT       the ping page's body (default pong).
  --pool-name NAME           the pool's name on the status page (default fcgi).
  --slow-request TIME        log a request still running after TIME, once, and count it in
                             "slow requests"; says whether the event loop is blocked or the
                             handler waits (PHP-FPM's request_slowlog_timeout).
  --access-log FILE|-        one line per request (time, pid, request id, method, URI, status,
                             bytes, duration, REMOTE_ADDR), buffered; - is stdout. SIGUSR1
                             reopens FILE (for logrotate; with --workers, send it to the manager).
  --access-log-format F      json (default: JSON lines) or common (NCSA common log format).

Process manager (a pool of workers on one socket; Node, Bun, and Deno on Linux):
  --workers N|auto           run N worker processes (auto: the available parallelism) under
                             a manager that opens --listen (one address) or takes fd 0,
                             restarts crashed workers (backing off in a crash loop), kills
                             a worker whose event loop is blocked past --request-timeout
                             (default 30s), and never loads the module itself.
                             SIGHUP: rolling reload (new workers load the module afresh;
                             the old ones drain). SIGTTIN/SIGTTOU: one worker more/less.
  --recycle-after N          replace a worker after about N requests (±10 %).
  --max-rss SIZE             replace a worker whose resident memory passes SIZE.

SIZE is a number of bytes, optionally with k, M or G (powers of 1024). TIME is a number of
milliseconds, or with ms, s or m.

Output: "fcgi: listening on ADDR" lines and every log line go to stderr; stdout is not used.
SIGINT or SIGTERM closes gracefully (no new connections, in-flight requests finish) and
exits with status 0; a second signal exits at once with status 1.

Examples:
  fcgi serve app.ts --listen 127.0.0.1:9000
  spawn-fcgi -s /run/app.sock -- /usr/bin/env node dist/src/cli.js serve app.js`;

const SIZE = /^([0-9]+(?:\.[0-9]+)?)([kKmMgG]?)[bB]?$/;
const TIME = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/;

function size(flag: string, text: string): number {
  const m = SIZE.exec(text);
  if (!m) throw new UsageError(`${flag}: '${text}' is not a size (bytes, or with k, M, G)`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Math.floor(Number(m[1]) * unit);
}

function time(flag: string, text: string): number {
  const m = TIME.exec(text);
  if (!m) throw new UsageError(`${flag}: '${text}' is not a duration (ms, or with ms, s, m)`);
  const unit = m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 1;
  return Number(m[1]) * unit;
}

function pagePath(flag: string, text: string): string {
  if (!text.startsWith("/")) throw new UsageError(`${flag}: '${text}' is not a path starting with /`);
  return text;
}

function count(flag: string, text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) throw new UsageError(`${flag}: '${text}' is not a positive whole number`);
  return Number(text);
}

/** Parsed `fcgi serve` arguments. */
interface ServeArgs {
  module: string;
  /** The TLS files by flag, read again on SIGHUP. */
  tls: TlsFiles;
  options: Omit<ServeOptions, "fetch" | "authorize" | "filter" | "accessLog">;
  pool: PoolFlags;
  accessLog?: { target: string; format: AccessLogFormat };
}

const LIMIT_FLAGS: Record<string, [keyof Limits, (flag: string, text: string) => number]> = {
  "--max-connections": ["maxConnections", count],
  "--max-requests": ["maxRequests", count],
  "--max-params-bytes": ["maxParamsBytes", size],
  "--max-body-bytes": ["maxBodyBytes", size],
  "--max-buffered-bytes": ["maxBufferedBytes", size],
  "--max-unsent-bytes": ["maxUnsentBytes", size],
  "--params-timeout": ["paramsTimeout", time],
  "--idle-timeout": ["idleTimeout", time],
  "--send-timeout": ["sendTimeout", time],
  "--close-timeout": ["closeTimeout", time],
  "--request-timeout": ["requestTimeout", time],
};

function parse(args: string[]): ServeArgs {
  let module: string | undefined;
  const listen: string[] = [];
  const allow: string[] = [];
  const options: ServeArgs["options"] = {};
  const pool: PoolFlags = {};
  let accessLog: string | undefined;
  let accessLogFormat: AccessLogFormat = "json";
  const tls: TlsFiles = {};
  eachArg(
    args,
    (flag, take) => {
      if (tlsFlag(tls, SERVER_TLS, flag, take)) return true;
      if (flag === "--listen") listen.push(take());
      else if (flag === "--allow") allow.push(take());
      else if (flag === "--socket-mode") {
        const text = take();
        if (!/^0?[0-7]{3,4}$/.test(text)) throw new UsageError(`--socket-mode: '${text}' is not an octal mode such as 660`);
        options.socketMode = parseInt(text, 8);
      } else if (flag === "--no-multiplex") options.multiplex = false;
      else if (flag === "--no-override-globals") options.overrideGlobalObjects = false;
      else if (flag === "--runtime") {
        const name = take();
        if (name !== "node" && name !== "deno" && name !== "bun") throw new UsageError(`--runtime: '${name}' is not node, deno or bun`);
        options.runtime = name;
      } else if (flag === "--status-path") options.statusPath = pagePath(flag, take());
      else if (flag === "--ping-path") options.pingPath = pagePath(flag, take());
      else if (flag === "--ping-response") options.pingResponse = take();
      else if (flag === "--pool-name") options.poolName = take();
      else if (flag === "--slow-request") options.slowRequest = time(flag, take());
      else if (flag === "--access-log") accessLog = take();
      else if (flag === "--access-log-format") {
        const format = take();
        if (format !== "json" && format !== "common") throw new UsageError(`--access-log-format: '${format}' is not json or common`);
        accessLogFormat = format;
      } else if (Object.hasOwn(LIMIT_FLAGS, flag)) {
        const [key, convert] = LIMIT_FLAGS[flag]!;
        options[key] = convert(flag, take());
      } else if (!poolFlag(pool, flag, take, { count, size, time })) return false;
      return true;
    },
    (arg) => {
      if (arg === "-") throw new UsageError("the module cannot come from standard input ('-'): give its path");
      if (module !== undefined) throw new UsageError(`unexpected argument '${arg}'`);
      module = arg;
    },
  );
  if (module === undefined) throw new UsageError("the module to serve is missing");
  if (listen.length > 0) options.listen = listen;
  if (allow.length > 0) options.allow = allow.join(",");
  // Read now, so that a missing or unreadable file is a usage error before anything starts.
  const serverTls = serverTlsArgs(tls);
  if (serverTls !== undefined) options.tls = serverTls;
  return { module, tls, options, pool, ...(accessLog === undefined ? {} : { accessLog: { target: accessLog, format: accessLogFormat } }) };
}

type Handlers = Pick<ServeOptions, "fetch" | "authorize" | "filter">;

/**
 * The handlers of a module's default export: a function (fetch), { fetch, authorize, filter }, or
 * a node:http server with `request` listeners (`http.createServer(app)` never listened, or fcgi/node's).
 */
export async function handlersOf(exported: unknown): Promise<Handlers> {
  if (typeof exported === "function") return { fetch: exported as Handler };
  if (exported === null || typeof exported !== "object") {
    throw new Error("the module has no default export of a fetch function, an object { fetch, authorize, filter }, or a node:http server");
  }
  // Told by shape, not by class: node:http's Server differs between Node, Deno and Bun. fcgi/node
  // (and node:http under it) loads only for such an app, not at every fetch app's start.
  if (isRequestEmitter(exported)) return (await import("../node/server.ts")).nodeHandlers(exported);
  const object = exported as Record<string, unknown>;
  const handlers: Handlers = {};
  for (const name of ["fetch", "authorize", "filter"] as const) {
    const handler = object[name];
    if (handler === undefined) continue;
    if (typeof handler !== "function") throw new Error(`the default export's ${name} is not a function`);
    handlers[name] = (handler as Handler).bind(object);
  }
  if (!handlers.fetch && !handlers.authorize && !handlers.filter) {
    throw new Error("the default export has none of fetch, authorize, filter");
  }
  return handlers;
}

async function run(args: string[]): Promise<number> {
  let parsed: ServeArgs;
  try {
    parsed = parse(args);
  } catch (error) {
    return usageFailure("serve", error);
  }
  if (parsed.pool.workers !== undefined) return await runPoolCommand(args, parsed);
  const link = await workerLink();
  // Before the module loads, so that a Response class it captures at import is the fast one.
  if (parsed.options.overrideGlobalObjects !== false) installGlobalObjects();
  const url = pathToFileURL(resolve(process.cwd(), parsed.module)).href;
  let handlers: Handlers;
  try {
    const mod = (await import(url)) as { default?: unknown };
    handlers = trackHandlers(link, await handlersOf(mod.default));
  } catch (error) {
    console.error(`fcgi serve: cannot load ${parsed.module}: ${error instanceof Error ? error.message : String(error)}`);
    link?.close();
    return 1;
  }
  const stopping = stopOnSignals();
  const accessLog = parsed.accessLog && new AccessLog(parsed.accessLog.target, parsed.accessLog.format);
  // logrotate moves the file, then sends SIGUSR1 (as to nginx): the next lines go to a new file.
  const reopen = (): void => accessLog?.reopen();
  if (accessLog) process.on("SIGUSR1", reopen);
  let server: ReportingServer;
  try {
    server = await serveWith({ ...parsed.options, ...handlers, signal: stopping.signal, ...(accessLog ? { accessLog } : {}) }, link ? { poolStatus: (report) => link.poolStatus(report) } : {});
  } catch (error) {
    stopping.release();
    throw error;
  }
  for (const address of server.addresses) console.error(`fcgi: listening on ${formatAddress(address)}${parsed.options.tls ? ` (TLS${parsed.options.tls.clientCa ? ", client certificates required" : ""})` : ""}`);
  const reloadTls = (): void => reloadCertificates(server, parsed.tls);
  if (parsed.options.tls) process.on("SIGHUP", reloadTls);
  link?.ready(() => server.report());
  await server.finished;
  link?.close();
  process.off("SIGHUP", reloadTls);
  process.off("SIGUSR1", reopen);
  await accessLog?.close();
  stopping.release();
  console.error("fcgi: stopped");
  // A module's own timers or sockets must not keep a stopped server's process alive.
  process.exit(0);
}

/** SIGHUP: the TLS files read again for new connections; if any cannot be used, the old ones stay, with a log line. */
function reloadCertificates(server: Server, files: TlsFiles): void {
  try {
    server.reloadTls(serverTlsArgs(files)!);
    console.error("fcgi: SIGHUP: TLS certificate, key and client CA reloaded");
  } catch (error) {
    console.error(`fcgi: SIGHUP: keeping the TLS certificate in use: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The 'fcgi serve' command. */
export const command: Command = {
  summary: "run a fetch-handler or node:http app module as a FastCGI application",
  help,
  run,
};
