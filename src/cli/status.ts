/**
 * `fcgi status ADDR`: fetches the status page of a FastCGI pool (fcgi's own, or PHP-FPM's
 * `pm.status_path`) straight over FastCGI, without a web server in front, and prints it; with
 * `--watch`, a table of it redrawn every second. Argument parsing and wiring only: the request is
 * the Client's, the table src/status/watch.ts's.
 * @module
 */
import { Client } from "../client/client.ts";
import { parseStatusJson, renderTable } from "../status/watch.ts";
import type { SocketAddress } from "../socket.ts";
import type { Command } from "./command.ts";
import { describe } from "./request.ts";
import { addressArg, eachArg, timeoutArg, UsageError, usageFailure } from "./args.ts";

const DEFAULT_PATH = "/fcgi-status";
const FORMATS = ["json", "xml", "html", "openmetrics"] as const;
/** How often --watch fetches the page. */
const WATCH_INTERVAL_MS = 1000;

const help = `Usage: fcgi status ADDR [options]

Fetches the status page of the FastCGI pool at ADDR with one FastCGI request (no web server
needed) and prints it on stdout: fcgi's own page (serve's statusPath, the CLI's
--status-path) or PHP-FPM's (pm.status_path), which show the same fields.

  ADDR     HOST:PORT, [IPv6]:PORT or unix:/PATH (a path starting with / is a Unix socket).

Options:
  --path PATH      the status page's path (default ${DEFAULT_PATH}; PHP-FPM's is whatever
                   pm.status_path says, often /status). Sent as SCRIPT_NAME, SCRIPT_FILENAME,
                   DOCUMENT_URI and, with the query, REQUEST_URI.
  --full           one block per process too (its pid, state, requests, current request).
  --json           the page as JSON (one object; "processes" with --full).
  --xml            as XML.
  --html           as an HTML page (what a browser shows).
  --openmetrics    as metrics, for Prometheus (fcgi answers the Prometheus text format
                   here; a scraper that asks for OpenMetrics gets that).
  --watch          a top-like table of the pool and its processes, fetched (as ?json&full)
                   and redrawn every second until Ctrl-C. A failed fetch is shown and
                   retried. Not with a format option.
  --timeout MS     connect timeout, and how long the page may take (default 10000).

Without a format option the page is PHP-FPM's text: one "name: value" line per field.

Exit status: 0 when the page was printed (or --watch was stopped by SIGINT or SIGTERM);
1 when the pool could not be reached or did not answer 200 (a wrong --path, a pool
without a status page), with the reason on stderr; 2 for a usage error.

Examples:
  fcgi status 127.0.0.1:9000 --full
  fcgi status unix:/run/fcgi.sock --json --full | jq '.processes[] | {pid, state}'
  fcgi status 127.0.0.1:9000 --watch
  fcgi status unix:/run/php/php8.2-fpm.sock --path /status --full      # PHP-FPM
  fcgi status unix:/run/php/php8.2-fpm.sock --path /status --watch`;

/** Parsed `fcgi status` arguments. */
interface StatusArgs {
  address: SocketAddress;
  path: string;
  full: boolean;
  format: (typeof FORMATS)[number] | undefined;
  watch: boolean;
  timeout: number;
}

function parse(args: string[]): StatusArgs {
  const positionals: string[] = [];
  let path = DEFAULT_PATH;
  let full = false;
  let format: StatusArgs["format"];
  let watch = false;
  let timeout = 10_000;
  eachArg(args, (flag, take) => {
    const name = flag.slice(2);
    if ((FORMATS as readonly string[]).includes(name) && flag.startsWith("--")) {
      if (format !== undefined && format !== name) throw new UsageError(`--${format} and ${flag}: choose one format`);
      format = name as StatusArgs["format"];
      return true;
    }
    switch (flag) {
      case "--path":
        path = take();
        if (!path.startsWith("/") || /[?#\s]/.test(path)) throw new UsageError(`--path: '${path}' is not a path (it starts with /, without a query)`);
        return true;
      case "--full":
        full = true;
        return true;
      case "--watch":
        watch = true;
        return true;
      case "--timeout":
        timeout = timeoutArg(flag, take());
        return true;
      default:
        return false;
    }
  }, (arg) => positionals.push(arg));
  if (positionals.length === 0) throw new UsageError("ADDR is missing");
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  if (watch && format !== undefined) throw new UsageError(`--watch shows a table: it does not go with --${format}`);
  return { address: addressArg(positionals[0]!), path, full, format, watch, timeout };
}

/** The query string PHP-FPM's rule reads: the format's key, then `full`. */
function queryOf(format: StatusArgs["format"], full: boolean): string {
  return [format, full ? "full" : undefined].filter((key) => key !== undefined).join("&");
}

/** Fetches the page: one GET with the params PHP-FPM's status page needs. */
async function fetchPage(client: Client, path: string, query: string): Promise<string> {
  const uri = query === "" ? path : `${path}?${query}`;
  const response = await client.fetch(new Request(`http://localhost${uri}`), {
    scriptName: path,
    scriptFilename: path,
    // Sent as given: the URL parser would normalize the path (dot segments, escapes).
    params: { DOCUMENT_URI: path, REQUEST_URI: uri, QUERY_STRING: query },
  });
  const body = await response.text();
  if (response.status !== 200) {
    const said = body.trim().split("\n")[0]!.slice(0, 200);
    throw new Error(`${uri} answered ${response.status}${said ? ` (${said})` : ""}: is ${path} the status page's path (--path; PHP-FPM's pm.status_path)?`);
  }
  return body;
}

async function run(args: string[]): Promise<number> {
  let parsed: StatusArgs;
  try {
    parsed = parse(args);
  } catch (error) {
    return usageFailure("status", error);
  }
  const client = new Client({
    address: parsed.address,
    maxConnections: 1,
    // A kept connection would hold one of PHP-FPM's workers for as long as --watch runs.
    keepConn: false,
    multiplex: false,
    connectTimeout: parsed.timeout,
    responseTimeout: parsed.timeout,
  });
  try {
    if (parsed.watch) return await watch(client, parsed.path);
    const body = await fetchPage(client, parsed.path, queryOf(parsed.format, parsed.full));
    // PHP-FPM ends its JSON and XML pages without a newline: a shell prompt would follow on the same line.
    process.stdout.write(body.endsWith("\n") || body === "" ? body : body + "\n");
    return 0;
  } catch (error) {
    console.error(`fcgi status: ${describe(error)}`);
    return 1;
  } finally {
    await client.close();
  }
}

// ANSI: cursor home and clear the screen; hide and show the cursor.
const CLEAR = "\x1b[H\x1b[2J";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

/**
 * Redraws the table every second until SIGINT or SIGTERM, then exits 0 with the cursor back. On a
 * terminal each frame replaces the last; piped, the frames follow each other, a blank line apart.
 */
async function watch(client: Client, path: string): Promise<number> {
  const tty = process.stdout.isTTY === true;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let running = true;
  void stopped.then(() => (running = false));
  if (tty) process.stdout.write(HIDE_CURSOR);
  try {
    let frames = 0;
    while (running) {
      const started = Date.now();
      const frame = fetchPage(client, path, "json&full").then(
        (page) => renderTable(parseStatusJson(page), process.stdout.columns || 80),
        (error: unknown) => `fcgi status: ${describe(error)} (retrying)\n`,
      );
      // A signal does not wait for a slow page: the client's close() ends the request.
      const table = await Promise.race([frame, stopped]);
      if (!running || table === undefined) break;
      process.stdout.write(tty ? CLEAR + table : (frames++ > 0 ? "\n" : "") + table);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, started + WATCH_INTERVAL_MS - Date.now()))))]);
      clearTimeout(timer);
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    if (tty) process.stdout.write(SHOW_CURSOR);
  }
  return 0;
}

/** The 'fcgi status' command. */
export const command: Command = {
  summary: "print the status page of an fcgi pool or of PHP-FPM, or watch it as a table",
  help,
  run,
};
