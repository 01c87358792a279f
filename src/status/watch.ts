/**
 * What `fcgi status --watch` shows: a status page read back from its JSON (fcgi's or PHP-FPM's
 * `?json&full`), and a compact top-like table of it for a terminal. Pure: text in, text out.
 * @module
 */
import { visible } from "./format.ts";
import { RESTART_CAUSES, type PoolStatus, type ProcessStatus, type RestartCause } from "./types.ts";

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(object: Json, key: string): number {
  const value = object[key];
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function nullable(object: Json, key: string): number | null {
  const value = object[key];
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function str(object: Json, key: string): string {
  const value = object[key];
  return typeof value === "string" ? value : "-";
}

function counts(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (isObject(value)) for (const [key, n] of Object.entries(value)) if (typeof n === "number" && Number.isFinite(n)) out[key] = n;
  return out;
}

function processOf(p: Json): ProcessStatus {
  return {
    pid: num(p, "pid"),
    state: p["state"] === "Running" ? "Running" : "Idle",
    startTime: num(p, "start time") * 1000,
    requests: num(p, "requests"),
    requestDuration: num(p, "request duration"),
    requestMethod: str(p, "request method"),
    requestUri: str(p, "request uri"),
    contentLength: num(p, "content length"),
    user: str(p, "user"),
    script: str(p, "script"),
    lastRequestCpu: num(p, "last request cpu"),
    lastRequestMemory: num(p, "last request memory"),
    requestsInFlight: num(p, "requests in flight"),
    connectionsOpen: num(p, "connections open"),
    eventLoopDelay: num(p, "event loop delay"),
  };
}

/**
 * Reads a status page in JSON, fcgi's or PHP-FPM's (`?json`, `?json&full`), back into a
 * {@link PoolStatus}. What PHP-FPM's page lacks (requests in flight, connections open, event loop
 * delay, refusals, restarts) reads as 0 or none; a listen-queue value that is missing or `null`
 * reads as null (not known). Times come back in ms since the epoch, `now` as the start time plus
 * "start since", the page's own clock. Throws a TypeError when the text is not such a page.
 *
 * @example
 * ```ts
 * const status = parseStatusJson(await (await fetch("http://localhost/status?json&full")).text());
 * console.log(status.pool, status.processes.length);
 * ```
 */
export function parseStatusJson(text: string): PoolStatus {
  let page: unknown;
  try {
    page = JSON.parse(text);
  } catch {
    throw new TypeError(`not a status page in JSON: ${JSON.stringify(text.slice(0, 60))}`);
  }
  if (!isObject(page) || typeof page["pool"] !== "string") throw new TypeError("not a status page in JSON: it has no \"pool\"");
  const startTime = num(page, "start time") * 1000;
  const restarts = counts(page["restarts"]);
  return {
    pool: page["pool"],
    processManager: str(page, "process manager"),
    startTime,
    now: startTime + num(page, "start since") * 1000,
    acceptedConn: num(page, "accepted conn"),
    listenQueue: nullable(page, "listen queue"),
    maxListenQueue: nullable(page, "max listen queue"),
    listenQueueLen: nullable(page, "listen queue len"),
    idleProcesses: num(page, "idle processes"),
    activeProcesses: num(page, "active processes"),
    totalProcesses: num(page, "total processes"),
    maxActiveProcesses: num(page, "max active processes"),
    maxChildrenReached: num(page, "max children reached"),
    slowRequests: num(page, "slow requests"),
    requestsInFlight: num(page, "requests in flight"),
    connectionsOpen: num(page, "connections open"),
    refused: counts(page["refused"]),
    restarts: Object.fromEntries(RESTART_CAUSES.map((cause) => [cause, restarts[cause] ?? 0])) as Record<RestartCause, number>,
    processes: Array.isArray(page["processes"]) ? page["processes"].filter(isObject).map(processOf) : [],
  };
}

/** A duration given in µs, as a person reads it: `850µs`, `12.3ms`, `1.20s`, `2m03s`. */
export function formatDuration(us: number): string {
  // Each range ends where its rounding would carry into the next unit ("1000µs", "1000.0ms").
  if (us < 999.5) return `${Math.round(us)}µs`;
  if (us < 9_995) return `${(us / 1000).toFixed(2)}ms`;
  if (us < 999_950) return `${(us / 1000).toFixed(1)}ms`;
  if (us < 59_995_000) return `${(us / 1_000_000).toFixed(2)}s`;
  const s = Math.floor(us / 1_000_000);
  return s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** `text` cut to `width` characters (code points), with `…` where it was cut. */
function fit(text: string, width: number): string {
  const chars = Array.from(text);
  return chars.length <= width ? text : chars.slice(0, Math.max(0, width - 1)).join("") + "…";
}

/** Items joined by two spaces, wrapped onto as many lines of `width` as they need. */
function wrap(items: string[], width: number): string {
  const lines: string[] = [];
  let line = "";
  for (const item of items) {
    if (line !== "" && Array.from(line).length + 2 + Array.from(item).length > width) {
      lines.push(line);
      line = "";
    }
    line = line === "" ? fit(item, width) : `${line}  ${item}`;
  }
  if (line !== "") lines.push(line);
  return lines.join("\n") + "\n";
}

/**
 * A compact top-like table for a terminal `width` columns wide (default 80): the pool's counters
 * on a header line (wrapped when they do not fit), then one row per process: pid, state, requests,
 * the current or last request's duration, and its method and URI cut to fit. Control characters of
 * the page (an escape sequence in a URI would drive the terminal) are shown as `%XX`.
 *
 * @example
 * ```ts
 * const page = await (await fetch("http://127.0.0.1:8080/status?json&full")).text();
 * console.log(renderTable(parseStatusJson(page), 100));
 * ```
 */
export function renderTable(status: PoolStatus, width: number = 80): string {
  width = Math.max(40, Math.floor(width));
  const queue = status.listenQueue === null ? "-" : String(status.listenQueue);
  const items = [
    `pool ${visible(status.pool)} (${visible(status.processManager)})`,
    `up ${formatDuration(Math.max(0, status.now - status.startTime) * 1000)}`,
    `accepted ${status.acceptedConn}`,
    `active ${status.activeProcesses}/${status.totalProcesses}`,
    `max active ${status.maxActiveProcesses}`,
    `queue ${queue}${status.listenQueueLen === null ? "" : `/${status.listenQueueLen}`}`,
    `max children reached ${status.maxChildrenReached}`,
    `slow ${status.slowRequests}`,
    `in flight ${status.requestsInFlight}`,
    `connections ${status.connectionsOpen}`,
  ];
  const refused = Object.entries(status.refused).filter(([, n]) => n > 0);
  items.push(refused.length === 0 ? "refused 0" : `refused ${refused.map(([kind, n]) => `${visible(kind)} ${n}`).join(" ")}`);
  const restarts = RESTART_CAUSES.filter((cause) => (status.restarts[cause] ?? 0) > 0);
  items.push(restarts.length === 0 ? "restarts 0" : `restarts ${restarts.map((cause) => `${cause} ${status.restarts[cause]}`).join(" ")}`);

  let out = wrap(items, width) + "\n";
  const row = (pid: string, state: string, requests: string, duration: string, request: string) =>
    `${pid.padStart(7)} ${state.padEnd(7)} ${requests.padStart(8)} ${duration.padStart(9)}  ${fit(request, width - 36)}`.trimEnd() + "\n";
  out += row("PID", "STATE", "REQUESTS", "DURATION", "REQUEST");
  for (const p of status.processes) {
    const request = p.requestMethod === "-" && p.requestUri === "-" ? "-" : `${visible(p.requestMethod)} ${visible(p.requestUri)}`;
    out += row(String(p.pid), p.state, String(p.requests), formatDuration(p.requestDuration), request);
  }
  return out;
}
