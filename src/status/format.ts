/**
 * The status page as text, JSON, XML, HTML and OpenMetrics (or the Prometheus text format), chosen
 * by the query string as PHP-FPM chooses it. Text, JSON, XML and HTML carry PHP-FPM 8.2's fields
 * with its names, in its order and layout, so that the dashboards, exporters and scripts written
 * for PHP-FPM read fcgi's page too; fcgi's own fields follow PHP-FPM's:
 *
 * - pool: `requests in flight`, `connections open`, `refused <kind>` (one per limit that refused
 *   something, e.g. `refused maxRequests`), `restarts <cause>` (crash, hang, recycle, reload);
 * - per process: `requests in flight`, `connections open`, `event loop delay` (milliseconds).
 *
 * Where PHP-FPM's format has no place for a keyed group, each writes it its own way: text and
 * HTML as one flat field per key (`refused maxRequests`), JSON as nested objects
 * (`"refused":{"maxRequests":3}`, `"restarts":{"crash":0,…}`), XML as repeated elements with the
 * key in an attribute (`<refused kind="maxRequests">3</refused>`), since a kind need not be a valid
 * XML element name.
 *
 * A listen-queue value the platform does not expose (null in {@link PoolStatus}) is written `-` in
 * text and HTML, `null` in JSON and as an empty element in XML, and its series is left out of the
 * metrics: "not known here", which a 0 would misreport as "nothing waiting".
 *
 * Pure: data in, text out.
 * @module
 */
import { RESTART_CAUSES, type PoolStatus, type ProcessStatus } from "./types.ts";

/** The page's formats, as PHP-FPM names them in the query string. */
export type StatusFormat = "text" | "json" | "xml" | "html" | "openmetrics";

/** What a status request asked for. */
export interface StatusQuery {
  /** Which format. */
  readonly format: StatusFormat;
  /** With one row per process. */
  readonly full: boolean;
}

/** A formatted page: its Content-Type and body. */
export interface FormattedStatus {
  /** The Content-Type header's value. */
  readonly contentType: string;
  /** The page. */
  readonly body: string;
}

/** Options of {@link formatStatus}. */
export interface FormatOptions {
  /**
   * The request's Accept header: the metrics are OpenMetrics 1.0.0 when it names
   * `application/openmetrics-text` (as a Prometheus scrape does), else the Prometheus text format
   * 0.0.4, which older scrapers and `promtool check metrics` read.
   */
  readonly accept?: string | null | undefined;
}

// PHP-FPM tests the keys in this order: `?json&html` is HTML, `?openmetrics&json` is JSON.
const FORMAT_KEYS: readonly Exclude<StatusFormat, "text">[] = ["html", "xml", "json", "openmetrics"];

/**
 * The format and fullness a query string asks for, by PHP-FPM's rule: the presence of `html`,
 * `xml`, `json` or `openmetrics` as a key (in that precedence; none: text), and of `full`. Values do
 * not matter (`full=0` is full), keys are percent-decoded and `json[]` counts as `json`, as PHP's
 * `$_GET` has it.
 *
 * @example
 * ```ts
 * statusQuery("json&full"); // { format: "json", full: true }
 * statusQuery("full&html"); // { format: "html", full: true }
 * statusQuery("");          // { format: "text", full: false }
 * ```
 */
export function statusQuery(queryString: string): StatusQuery {
  const keys = new Set<string>();
  for (const part of queryString.split("&")) {
    const eq = part.indexOf("=");
    let key = (eq === -1 ? part : part.slice(0, eq)).replaceAll("+", " ");
    try {
      key = decodeURIComponent(key);
    } catch {
      // A malformed escape is kept as written, as PHP does.
    }
    const bracket = key.indexOf("[");
    keys.add(bracket > 0 ? key.slice(0, bracket) : key);
  }
  return { format: FORMAT_KEYS.find((key) => keys.has(key)) ?? "text", full: keys.has("full") };
}

/**
 * Writes `status` in the format `query` asks for.
 *
 * @example
 * ```ts
 * import type { PoolStatus } from "./types.ts";
 * declare const status: PoolStatus; // what the app side or the manager filled in
 * const { contentType, body } = formatStatus(status, statusQuery("json&full"));
 * const response = new Response(body, { headers: { "content-type": contentType } });
 * ```
 */
export function formatStatus(status: PoolStatus, query: StatusQuery, options: FormatOptions = {}): FormattedStatus {
  switch (query.format) {
    case "json":
      return { contentType: "application/json", body: json(status, query.full) };
    case "xml":
      return { contentType: "text/xml;charset=UTF-8", body: xml(status, query.full) };
    case "html":
      return { contentType: "text/html;charset=UTF-8", body: html(status, query.full) };
    case "openmetrics":
      return /application\/openmetrics-text/i.test(options.accept ?? "")
        ? { contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8", body: metrics(status, query.full, true) }
        : { contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics(status, query.full, false) };
    default:
      return { contentType: "text/plain;charset=UTF-8", body: text(status, query.full) };
  }
}

// ---------------------------------------------------------------------------------------------
// The fields, once: text, JSON, XML and HTML each write these rows their own way.

/** A value of a row: a number as PHP-FPM prints it, a string, or null (not known). */
type Value = { readonly number: number; readonly decimals?: number } | string | null;

/** One field: PHP-FPM's name (spaces; XML joins with `-`), its value, and the time when it is one. */
interface Field {
  readonly name: string;
  readonly value: Value;
  /** A time (ms since the epoch): text and HTML write it as a date, JSON and XML as Unix seconds. */
  readonly time?: true;
}

/** A keyed group of counters (refused by kind, restarts by cause). */
interface Group {
  readonly name: string;
  /** The XML attribute naming the key. */
  readonly key: string;
  readonly counts: ReadonlyArray<readonly [string, number]>;
}

const n = (number: number, decimals?: number): Value => (decimals === undefined ? { number } : { number, decimals });

function seconds(from: number, to: number): number {
  return Math.max(0, Math.floor((to - from) / 1000));
}

/** PHP-FPM's pool fields, then fcgi's. */
function poolFields(s: PoolStatus): Field[] {
  return [
    { name: "pool", value: s.pool },
    { name: "process manager", value: s.processManager },
    { name: "start time", value: n(s.startTime), time: true },
    { name: "start since", value: n(seconds(s.startTime, s.now)) },
    { name: "accepted conn", value: n(s.acceptedConn) },
    { name: "listen queue", value: s.listenQueue === null ? null : n(s.listenQueue) },
    { name: "max listen queue", value: s.maxListenQueue === null ? null : n(s.maxListenQueue) },
    { name: "listen queue len", value: s.listenQueueLen === null ? null : n(s.listenQueueLen) },
    { name: "idle processes", value: n(s.idleProcesses) },
    { name: "active processes", value: n(s.activeProcesses) },
    { name: "total processes", value: n(s.totalProcesses) },
    { name: "max active processes", value: n(s.maxActiveProcesses) },
    { name: "max children reached", value: n(s.maxChildrenReached) },
    { name: "slow requests", value: n(s.slowRequests) },
    { name: "requests in flight", value: n(s.requestsInFlight) },
    { name: "connections open", value: n(s.connectionsOpen) },
  ];
}

function poolGroups(s: PoolStatus): Group[] {
  return [
    { name: "refused", key: "kind", counts: Object.entries(s.refused) },
    { name: "restarts", key: "cause", counts: RESTART_CAUSES.map((cause) => [cause, s.restarts[cause] ?? 0] as const) },
  ];
}

/** PHP-FPM's process fields, then fcgi's. */
function processFields(p: ProcessStatus, now: number): Field[] {
  return [
    { name: "pid", value: n(p.pid) },
    { name: "state", value: p.state },
    { name: "start time", value: n(p.startTime), time: true },
    { name: "start since", value: n(seconds(p.startTime, now)) },
    { name: "requests", value: n(p.requests) },
    { name: "request duration", value: n(p.requestDuration) },
    { name: "request method", value: p.requestMethod },
    { name: "request uri", value: p.requestUri },
    { name: "content length", value: n(p.contentLength) },
    { name: "user", value: p.user },
    { name: "script", value: p.script },
    { name: "last request cpu", value: n(p.lastRequestCpu, 2) },
    { name: "last request memory", value: n(p.lastRequestMemory) },
    { name: "requests in flight", value: n(p.requestsInFlight) },
    { name: "connections open", value: n(p.connectionsOpen) },
    { name: "event loop delay", value: n(p.eventLoopDelay, 2) },
  ];
}

function numberText(value: { number: number; decimals?: number }): string {
  if (!Number.isFinite(value.number)) return "0";
  return value.decimals === undefined ? String(value.number) : value.number.toFixed(value.decimals);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * A time as PHP-FPM's text page writes it, strftime's `%d/%b/%Y:%H:%M:%S %z`. Always in UTC
 * (`+0000`): the zone of the server is not the reader's anyway, and a JavaScript runtime has no
 * portable way to name it.
 */
export function statusDate(ms: number): string {
  const d = new Date(ms);
  const two = (v: number) => String(v).padStart(2, "0");
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** A field's value for the text and HTML pages (before HTML escaping). */
function display(field: Field): string {
  const { value } = field;
  if (value === null) return "-";
  if (typeof value === "string") return visible(value);
  return field.time ? statusDate(value.number) : numberText(value);
}

/** A field's value for JSON and XML: times in Unix seconds. */
function machine(field: Field): Value {
  const { value } = field;
  return field.time && value !== null && typeof value !== "string" ? n(Math.floor(value.number / 1000)) : value;
}

/**
 * A string made safe for a line-based page: control characters (a newline in a URI would start a
 * field of its own, an escape sequence would drive the reader's terminal) become their `%XX`
 * escape, as in a URI; a lone surrogate, which no UTF-8 encoder can write, becomes U+FFFD.
 */
export function visible(value: string): string {
  return value
    .replace(/[\u0000-\u001f\u007f]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"))
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

// ---------------------------------------------------------------------------------------------
// Text: `name:` padded to column 22, PHP-FPM's layout; one block per process after a line of stars.

function textLine(name: string, value: string): string {
  return `${(name + ":").padEnd(21)} ${value}\n`;
}

function text(s: PoolStatus, full: boolean): string {
  let out = "";
  for (const field of poolFields(s)) out += textLine(field.name, display(field));
  for (const group of poolGroups(s)) for (const [key, count] of group.counts) out += textLine(`${group.name} ${visible(key)}`, String(count));
  if (!full) return out;
  for (const p of s.processes) {
    out += "\n************************\n";
    // PHP-FPM spells this one field "request URI" on the text page only.
    for (const field of processFields(p, s.now)) out += textLine(field.name === "request uri" ? "request URI" : field.name, display(field));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON: one line, PHP-FPM's keys and order (its `, "processes"` space too), numbers as it writes them.

function jsonValue(value: Value): string {
  if (value === null) return "null";
  return typeof value === "string" ? JSON.stringify(value) : numberText(value);
}

function jsonObject(fields: Field[], groups: Group[] = []): string {
  const members = fields.map((f) => `${JSON.stringify(f.name)}:${jsonValue(machine(f))}`);
  for (const group of groups) {
    members.push(`${JSON.stringify(group.name)}:{${group.counts.map(([key, count]) => `${JSON.stringify(key)}:${numberText({ number: count })}`).join(",")}}`);
  }
  return members.join(",");
}

function json(s: PoolStatus, full: boolean): string {
  const pool = jsonObject(poolFields(s), poolGroups(s));
  if (!full) return `{${pool}}`;
  return `{${pool}, "processes":[${s.processes.map((p) => `{${jsonObject(processFields(p, s.now))}}`).join(",")}]}`;
}

// ---------------------------------------------------------------------------------------------
// XML: PHP-FPM's elements, one per line for the pool, one line per process.

/**
 * Text for XML or HTML: `&`, `<`, `>` and both quotes escaped (so it fits an attribute too), and
 * characters XML 1.0 forbids (most control characters) written as their `%XX` escape.
 */
function escapeMarkup(value: string): string {
  return visible(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function xmlFields(fields: Field[]): string[] {
  return fields.map((f) => {
    const tag = f.name.replaceAll(" ", "-");
    const value = machine(f);
    return `<${tag}>${value === null ? "" : typeof value === "string" ? escapeMarkup(value) : numberText(value)}</${tag}>`;
  });
}

function xmlGroups(groups: Group[]): string[] {
  return groups.flatMap((g) => g.counts.map(([key, count]) => `<${g.name} ${g.key}="${escapeMarkup(key)}">${count}</${g.name}>`));
}

function xml(s: PoolStatus, full: boolean): string {
  let out = `<?xml version="1.0" ?>\n<status>\n${[...xmlFields(poolFields(s)), ...xmlGroups(poolGroups(s))].join("\n")}\n`;
  if (full) {
    out += "<processes>\n";
    for (const p of s.processes) out += `<process>${xmlFields(processFields(p, s.now)).join("")}</process>\n`;
    out += "</processes>\n";
  }
  return out + "</status>";
}

// ---------------------------------------------------------------------------------------------
// HTML: PHP-FPM's XHTML page and tables, plus what makes it a page to keep open: it refreshes
// itself, names its pool, and marks the busy processes.

const STYLE = `body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #f6f8fa; margin: 24px; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px; }
p.note { color: #59636e; margin: 0 0 16px; }
p.note a { color: #0969da; }
span.busy { background: #fff1c2; border-left: 4px solid #d4a72c; padding: 0 4px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d0d7de; margin: 0 0 20px; }
th, td { border: 1px solid #d0d7de; padding: 3px 10px; text-align: left; white-space: nowrap; }
th { background: #f0f3f6; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
table.processes { font-size: 13px; }
table.processes th { white-space: normal; vertical-align: bottom; padding: 3px 6px; }
table.processes td { padding: 3px 6px; max-width: 24em; overflow: hidden; text-overflow: ellipsis; }
tr.busy td { background: #fff1c2; }
tr.busy td:first-child { box-shadow: inset 4px 0 0 #d4a72c; }`;

function htmlRow(cells: string[], tag: "th" | "td", attributes = ""): string {
  return `<tr${attributes}>${cells.map((c) => `<${tag}>${c}</${tag}>`).join("")}</tr>\n`;
}

function html(s: PoolStatus, full: boolean): string {
  const pool = escapeMarkup(s.pool);
  let out = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
<meta http-equiv="refresh" content="5" />
<title>${pool}: fcgi status</title>
<style type="text/css">
${STYLE}
</style>
</head>
<body>
<h1>Pool ${pool}</h1>
<p class="note">Refreshes every 5 seconds. Also as <a href="?full">text</a>, <a href="?json&amp;full">JSON</a>, <a href="?xml&amp;full">XML</a>, <a href="?openmetrics&amp;full">metrics</a>.${full ? ' <span class="busy">Busy</span> processes run a request.' : ' <a href="?html&amp;full">Show the processes</a>.'}</p>
<table class="pool">
`;
  const row = (name: string, value: string) => `<tr><th>${escapeMarkup(name)}</th><td>${escapeMarkup(value)}</td></tr>\n`;
  for (const field of poolFields(s)) out += row(field.name, display(field));
  for (const group of poolGroups(s)) for (const [key, count] of group.counts) out += row(`${group.name} ${key}`, String(count));
  out += "</table>\n";
  if (full) {
    const names = processFields(s.processes[0] ?? EMPTY_PROCESS, s.now).map((f) => f.name);
    out += `<table border="1" class="processes">\n${htmlRow(names, "th")}`;
    for (const p of s.processes) {
      out += htmlRow(processFields(p, s.now).map((f) => escapeMarkup(display(f))), "td", p.state === "Running" ? ' class="busy"' : "");
    }
    out += "</table>\n";
  }
  return out + "</body></html>";
}

/** A process to name the columns by when there is none. */
const EMPTY_PROCESS: ProcessStatus = {
  pid: 0, state: "Idle", startTime: 0, requests: 0, requestDuration: 0, requestMethod: "-", requestUri: "-", contentLength: 0,
  user: "-", script: "-", lastRequestCpu: 0, lastRequestMemory: 0, requestsInFlight: 0, connectionsOpen: 0, eventLoopDelay: 0,
};

// ---------------------------------------------------------------------------------------------
// Metrics: PHP-FPM's openmetrics names with an `fcgi_` prefix, in base units (seconds, bytes,
// ratios), a maximum as a gauge rather than PHP-FPM's counter (it does not only go up over a
// restart of the pool), and only counters as counters, so that `promtool check metrics` has
// nothing to say (it flags PHP-FPM's own page).

/** One metric family: its name without a sample suffix, and its samples. */
interface Family {
  readonly name: string;
  readonly type: "gauge" | "counter" | "info";
  readonly help: string;
  /** The unit the name ends with (OpenMetrics' `# UNIT`). */
  readonly unit?: "seconds" | "bytes";
  readonly samples: ReadonlyArray<{ readonly labels?: ReadonlyArray<readonly [string, string]>; readonly value: number }>;
}

function one(value: number | null): Family["samples"] {
  return value === null ? [] : [{ value }];
}

function poolFamilies(s: PoolStatus): Family[] {
  return [
    { name: "fcgi_pool", type: "info", help: "The pool's name and process manager.", samples: [{ labels: [["pool", s.pool], ["process_manager", s.processManager]], value: 1 }] },
    { name: "fcgi_up", type: "gauge", help: "Whether the pool answered its status request (always 1 on a page that was served).", samples: one(1) },
    { name: "fcgi_start_time_seconds", type: "gauge", unit: "seconds", help: "When the pool started, in seconds since the Unix epoch.", samples: one(s.startTime / 1000) },
    { name: "fcgi_accepted_connections", type: "counter", help: "Requests the pool accepted since it started, status requests included (PHP-FPM's accepted conn).", samples: one(s.acceptedConn) },
    { name: "fcgi_listen_queue", type: "gauge", help: "Connections waiting in the listening socket's accept queue.", samples: one(s.listenQueue) },
    { name: "fcgi_max_listen_queue", type: "gauge", help: "The most connections seen waiting in the accept queue since the pool started.", samples: one(s.maxListenQueue) },
    { name: "fcgi_listen_queue_length", type: "gauge", help: "The size of the accept queue (the listen backlog).", samples: one(s.listenQueueLen) },
    { name: "fcgi_idle_processes", type: "gauge", help: "Processes with no request running.", samples: one(s.idleProcesses) },
    { name: "fcgi_active_processes", type: "gauge", help: "Processes running a request.", samples: one(s.activeProcesses) },
    { name: "fcgi_total_processes", type: "gauge", help: "Idle and active processes.", samples: one(s.totalProcesses) },
    { name: "fcgi_max_active_processes", type: "gauge", help: "The most processes seen active at once since the pool started.", samples: one(s.maxActiveProcesses) },
    { name: "fcgi_max_children_reached", type: "counter", help: "How many times every process was seen busy at once.", samples: one(s.maxChildrenReached) },
    { name: "fcgi_slow_requests", type: "counter", help: "Requests that ran past the slow-request time.", samples: one(s.slowRequests) },
    { name: "fcgi_requests_in_flight", type: "gauge", help: "Requests running now, the status request aside.", samples: one(s.requestsInFlight) },
    { name: "fcgi_connections_open", type: "gauge", help: "FastCGI connections open now.", samples: one(s.connectionsOpen) },
    { name: "fcgi_refused", type: "counter", help: "Requests and connections refused by a limit, by the limit's name.", samples: Object.entries(s.refused).map(([kind, value]) => ({ labels: [["kind", kind]], value })) },
    { name: "fcgi_worker_restarts", type: "counter", help: "Workers the process manager replaced, by cause.", samples: RESTART_CAUSES.map((cause) => ({ labels: [["cause", cause]], value: s.restarts[cause] ?? 0 })) },
  ];
}

function processFamilies(processes: readonly ProcessStatus[]): Family[] {
  const each = (value: (p: ProcessStatus) => number): Family["samples"] => processes.map((p) => ({ labels: [["pid", String(p.pid)]], value: value(p) }));
  return [
    { name: "fcgi_process_start_time_seconds", type: "gauge", unit: "seconds", help: "When the process started, in seconds since the Unix epoch.", samples: each((p) => p.startTime / 1000) },
    { name: "fcgi_process_requests", type: "counter", help: "Requests the process accepted.", samples: each((p) => p.requests) },
    { name: "fcgi_process_busy", type: "gauge", help: "1 while the process runs a request (state Running), else 0.", samples: each((p) => (p.state === "Running" ? 1 : 0)) },
    { name: "fcgi_process_requests_in_flight", type: "gauge", help: "Requests the process runs now, the status request aside.", samples: each((p) => p.requestsInFlight) },
    { name: "fcgi_process_connections_open", type: "gauge", help: "FastCGI connections the process has open now.", samples: each((p) => p.connectionsOpen) },
    { name: "fcgi_process_cpu_ratio", type: "gauge", help: "CPU use over the last sampling second (1 is one core busy).", samples: each((p) => p.lastRequestCpu / 100) },
    { name: "fcgi_process_resident_memory_bytes", type: "gauge", unit: "bytes", help: "Resident memory at the last sample.", samples: each((p) => p.lastRequestMemory) },
    { name: "fcgi_process_event_loop_delay_seconds", type: "gauge", unit: "seconds", help: "The event loop's worst delay over the last sampling second.", samples: each((p) => p.eventLoopDelay / 1000) },
  ];
}

function metricValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}

function labelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
}

/**
 * The families as OpenMetrics 1.0.0 (`openMetrics`: metadata on the family's name, a counter's
 * sample `_total`, an info's `_info`, `# EOF` last) or as the Prometheus text format 0.0.4
 * (metadata on the sample's name, an info as a gauge, no `# EOF`).
 */
function metrics(s: PoolStatus, full: boolean, openMetrics: boolean): string {
  const families = full ? [...poolFamilies(s), ...processFamilies(s.processes)] : poolFamilies(s);
  let out = "";
  for (const family of families) {
    // A family with no sample says nothing: a listen queue not exposed here, no refusals yet.
    if (family.samples.length === 0) continue;
    const sample = family.type === "counter" ? family.name + "_total" : family.type === "info" ? family.name + "_info" : family.name;
    if (openMetrics) {
      out += `# TYPE ${family.name} ${family.type}\n`;
      if (family.unit !== undefined) out += `# UNIT ${family.name} ${family.unit}\n`;
      out += `# HELP ${family.name} ${labelValue(family.help)}\n`;
    } else {
      out += `# HELP ${sample} ${family.help.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"))}\n`;
      out += `# TYPE ${sample} ${family.type === "info" ? "gauge" : family.type}\n`;
    }
    for (const { labels, value } of family.samples) {
      const set = labels === undefined ? "" : `{${labels.map(([name, v]) => `${name}="${labelValue(v)}"`).join(",")}}`;
      out += `${sample}${set} ${metricValue(value)}\n`;
    }
  }
  return openMetrics ? out + "# EOF\n" : out;
}
