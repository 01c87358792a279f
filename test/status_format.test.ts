// The status page's formats, checked by the tools that read them: JSON.parse, xmllint (XML and
// HTML), promtool (the Prometheus text format), a strict reading of OpenMetrics written here, and
// a real Prometheus server scraping the OpenMetrics page; and the `fcgi status --watch` table.
import { after, describe, it, requirePresent, skipUnless, test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { formatStatus, statusDate, statusQuery, type StatusQuery } from "../src/status/format.ts";
import { formatDuration, parseStatusJson, renderTable } from "../src/status/watch.ts";
import type { PoolStatus, ProcessStatus } from "../src/status/types.ts";
import { freePort } from "./_support/phpfpm.ts";
import { waitFor, within } from "./_support/poll.ts";
import { repoRoot } from "./_support/env.ts";

/** The path of a program on PATH (or in /usr/bin), or undefined. */
function tool(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/bin"]) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const xmllint = tool("xmllint");
const promtool = tool("promtool");
const prometheus = tool("prometheus");
const NO_XMLLINT = "xmllint is not installed (apt-get install libxml2-utils)";
const NO_PROMETHEUS = "promtool and prometheus are not installed (apt-get install prometheus)";

/** Runs `program args` with `input` on stdin, within 20 s. */
function run(program: string, args: string[], input = ""): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(program, args, { input, encoding: "utf8", timeout: 20_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const START = Date.UTC(2026, 11, 6, 6, 20, 25);
const HOSTILE_URI = "/a?x=<&\"'\n\u00e9\u{1F600}\x1b[2J]]>&amp;";

function processStatus(pid: number, state: ProcessStatus["state"], overrides: Partial<ProcessStatus> = {}): ProcessStatus {
  return {
    pid, state, startTime: START + 1500, requests: 14, requestDuration: state === "Running" ? 2_500 : 120, requestMethod: state === "Running" ? "POST" : "-",
    requestUri: state === "Running" ? HOSTILE_URI : "-", contentLength: state === "Running" ? 42 : 0, user: "-", script: "/srv/www/ïndex.php",
    lastRequestCpu: 3.5, lastRequestMemory: 52_428_800, requestsInFlight: state === "Running" ? 2 : 0, connectionsOpen: 1, eventLoopDelay: 1.25,
    ...overrides,
  };
}

function poolStatus(overrides: Partial<PoolStatus> = {}): PoolStatus {
  return {
    pool: "www <&\"'>", processManager: "static", startTime: START, now: START + 13_900, acceptedConn: 3, listenQueue: 0, maxListenQueue: 1,
    listenQueueLen: 4096, idleProcesses: 1, activeProcesses: 2, totalProcesses: 3, maxActiveProcesses: 2, maxChildrenReached: 1, slowRequests: 4,
    requestsInFlight: 4, connectionsOpen: 3, refused: { maxRequests: 3, "we\"ird\\\n<kind>": 1 }, restarts: { crash: 1, hang: 0, recycle: 2, reload: 0 },
    processes: [processStatus(9249, "Idle"), processStatus(9250, "Running"), processStatus(9251, "Running", { requestUri: "/ok" })],
    ...overrides,
  };
}

/** The same pool where nothing tells the listen queue (a Unix socket). */
const NO_QUEUE = poolStatus({ listenQueue: null, maxListenQueue: null, listenQueueLen: null, refused: {} });

const page = (status: PoolStatus, query: string, accept?: string) => formatStatus(status, statusQuery(query), { accept });

const PHP_FPM_POOL_KEYS = [
  "pool", "process manager", "start time", "start since", "accepted conn", "listen queue", "max listen queue", "listen queue len",
  "idle processes", "active processes", "total processes", "max active processes", "max children reached", "slow requests",
];
const PHP_FPM_PROCESS_KEYS = [
  "pid", "state", "start time", "start since", "requests", "request duration", "request method", "request uri", "content length", "user",
  "script", "last request cpu", "last request memory",
];

describe("statusQuery: PHP-FPM's rule", () => {
  it("the keys' presence decides, html before xml before json before openmetrics, values ignored", () => {
    const cases: Array<[string, StatusQuery]> = [
      ["", { format: "text", full: false }],
      ["full", { format: "text", full: true }],
      ["json&full", { format: "json", full: true }],
      ["full&html", { format: "html", full: true }],
      ["json&html", { format: "html", full: false }],
      ["xml&json", { format: "xml", full: false }],
      ["openmetrics&json", { format: "json", full: false }],
      ["openmetrics&xml", { format: "xml", full: false }],
      ["openmetrics", { format: "openmetrics", full: false }],
      ["full=0&json=", { format: "json", full: true }],
      ["a=1&js%6Fn=x", { format: "json", full: false }],
      ["json[]", { format: "json", full: false }],
      ["JSON", { format: "text", full: false }],
      ["x=json&fullness", { format: "text", full: false }],
      ["%zz&full", { format: "text", full: true }],
    ];
    for (const [query, expected] of cases) assert.deepEqual(statusQuery(query), expected, query);
  });
});

describe("text", () => {
  it("PHP-FPM's fields, order and column, then fcgi's; one block per process with full", () => {
    const body = page(poolStatus(), "full").body;
    assert.equal(page(poolStatus(), "").contentType, "text/plain;charset=UTF-8");
    const [pool, ...blocks] = body.split("\n************************\n");
    assert.equal(pool, [
      "pool:                 www <&\"'>",
      "process manager:      static",
      "start time:           06/Dec/2026:06:20:25 +0000",
      "start since:          13",
      "accepted conn:        3",
      "listen queue:         0",
      "max listen queue:     1",
      "listen queue len:     4096",
      "idle processes:       1",
      "active processes:     2",
      "total processes:      3",
      "max active processes: 2",
      "max children reached: 1",
      "slow requests:        4",
      "requests in flight:   4",
      "connections open:     3",
      "refused maxRequests:  3",
      "refused we\"ird\\%0A<kind>: 1",
      "restarts crash:       1",
      "restarts hang:        0",
      "restarts recycle:     2",
      "restarts reload:      0",
      "",
    ].join("\n"));
    assert.equal(blocks.length, 3);
    assert.equal(blocks[1], [
      "pid:                  9250",
      "state:                Running",
      "start time:           06/Dec/2026:06:20:26 +0000",
      "start since:          12",
      "requests:             14",
      "request duration:     2500",
      "request method:       POST",
      "request URI:          /a?x=<&\"'%0Aé😀%1B[2J]]>&amp;",
      "content length:       42",
      "user:                 -",
      "script:               /srv/www/ïndex.php",
      "last request cpu:     3.50",
      "last request memory:  52428800",
      "requests in flight:   2",
      "connections open:     1",
      "event loop delay:     1.25",
      "",
    ].join("\n"));
    assert.equal(page(poolStatus(), "").body, pool, "without full: the pool's fields only");
  });

  it("a listen queue that is not known is -", () => {
    const lines = page(NO_QUEUE, "").body.split("\n");
    for (const name of ["listen queue", "max listen queue", "listen queue len"]) assert.ok(lines.includes(`${(name + ":").padEnd(22)}-`), name);
  });

  it("dates are strftime's %d/%b/%Y:%H:%M:%S %z in UTC", () => {
    assert.equal(statusDate(Date.UTC(2024, 1, 29, 23, 5, 9)), "29/Feb/2024:23:05:09 +0000");
  });
});

describe("JSON", () => {
  it("parses, with PHP-FPM's keys first and in its order, times in Unix seconds", () => {
    const { contentType, body } = page(poolStatus(), "json&full");
    assert.equal(contentType, "application/json");
    const json = JSON.parse(body);
    assert.deepEqual(Object.keys(json).slice(0, PHP_FPM_POOL_KEYS.length), PHP_FPM_POOL_KEYS);
    assert.deepEqual(Object.keys(json).slice(PHP_FPM_POOL_KEYS.length), ["requests in flight", "connections open", "refused", "restarts", "processes"]);
    assert.equal(json["pool"], "www <&\"'>");
    assert.equal(json["start time"], START / 1000);
    assert.equal(json["start since"], 13);
    assert.deepEqual(json["refused"], { maxRequests: 3, "we\"ird\\\n<kind>": 1 });
    assert.deepEqual(json["restarts"], { crash: 1, hang: 0, recycle: 2, reload: 0 });
    assert.equal(json.processes.length, 3);
    for (const p of json.processes) {
      assert.deepEqual(Object.keys(p), [...PHP_FPM_PROCESS_KEYS, "requests in flight", "connections open", "event loop delay"]);
    }
    assert.equal(json.processes[1]["request uri"], HOSTILE_URI, "JSON carries the string as it is");
    assert.equal(json.processes[1]["start time"], Math.floor((START + 1500) / 1000));
    assert.match(body, /"last request cpu":3\.50,/, "the CPU with two decimals, as PHP-FPM writes it");
    assert.equal(JSON.parse(page(poolStatus(), "json").body).processes, undefined, "processes only with full");
  });

  it("a listen queue that is not known is null", () => {
    const json = JSON.parse(page(NO_QUEUE, "json").body);
    assert.deepEqual([json["listen queue"], json["max listen queue"], json["listen queue len"]], [null, null, null]);
    assert.deepEqual(json["refused"], {});
  });
});

describe("XML", { skip: skipUnless(xmllint !== undefined, NO_XMLLINT) }, () => {
  const xpath = (body: string, expression: string) => {
    const r = run(xmllint!, ["--xpath", expression, "-"], body);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.replace(/\n$/, "");
  };

  it("is well-formed, and xmllint reads the values back, hostile ones included", () => {
    requirePresent(xmllint !== undefined, NO_XMLLINT);
    const { contentType, body } = page(poolStatus(), "xml&full");
    assert.equal(contentType, "text/xml;charset=UTF-8");
    assert.ok(body.startsWith('<?xml version="1.0" ?>\n<status>\n<pool>'));
    const check = run(xmllint!, ["--noout", "-"], body);
    assert.deepEqual([check.code, check.stderr], [0, ""]);
    assert.equal(xpath(body, "string(/status/pool)"), "www <&\"'>");
    assert.equal(xpath(body, "string(/status/accepted-conn)"), "3");
    assert.equal(xpath(body, "string(/status/start-time)"), String(START / 1000));
    assert.equal(xpath(body, "string(/status/refused[@kind='maxRequests'])"), "3");
    assert.equal(xpath(body, "string(/status/restarts[@cause='recycle'])"), "2");
    assert.equal(xpath(body, "string(/status/refused[2]/@kind)"), "we\"ird\\%0A<kind>");
    assert.equal(xpath(body, "count(/status/processes/process)"), "3");
    assert.equal(xpath(body, "string(/status/processes/process[2]/request-uri)"), "/a?x=<&\"'%0Aé😀%1B[2J]]>&amp;");
    assert.equal(xpath(body, "string(/status/processes/process[2]/script)"), "/srv/www/ïndex.php");
    assert.equal(xpath(body, "string(/status/processes/process[1]/last-request-cpu)"), "3.50");
    const names = xpath(body, "/status/processes/process[1]/*").match(/<([a-z-]+)>/g)!.map((tag) => tag.slice(1, -1));
    assert.deepEqual(names, [...PHP_FPM_PROCESS_KEYS.map((k) => k.replaceAll(" ", "-")), "requests-in-flight", "connections-open", "event-loop-delay"]);
  });

  it("a listen queue that is not known is an empty element", () => {
    requirePresent(xmllint !== undefined, NO_XMLLINT);
    const body = page(NO_QUEUE, "xml").body;
    assert.ok(body.includes("<listen-queue></listen-queue>\n<max-listen-queue></max-listen-queue>\n<listen-queue-len></listen-queue-len>"));
    assert.equal(xpath(body, "count(/status/listen-queue)"), "1");
    assert.equal(xpath(body, "count(/status/processes)"), "0", "processes only with full");
  });
});

describe("HTML", { skip: skipUnless(xmllint !== undefined, NO_XMLLINT) }, () => {
  it("parses as HTML (and as XML), refreshes itself, escapes, marks each busy process", () => {
    requirePresent(xmllint !== undefined, NO_XMLLINT);
    const status = poolStatus();
    const { contentType, body } = page(status, "html&full");
    assert.equal(contentType, "text/html;charset=UTF-8");
    for (const args of [["--html", "--noout", "-"], ["--noout", "-"]]) {
      const check = run(xmllint!, args, body);
      assert.deepEqual([check.code, check.stderr], [0, ""], args.join(" "));
    }
    assert.ok(body.includes('<meta http-equiv="refresh" content="5" />'));
    const html = (expression: string) => run(xmllint!, ["--html", "--xpath", expression, "-"], body).stdout.replace(/\n$/, "");
    assert.equal(html("string(//title)"), "www <&\"'>: fcgi status");
    assert.equal(html("count(//tr[@class='busy'])"), String(status.processes.filter((p) => p.state === "Running").length));
    assert.equal((body.match(/<tr class="busy">/g) ?? []).length, 2);
    assert.equal(html("string(//tr[@class='busy'][1]/td[8])"), "/a?x=<&\"'%0Aé😀%1B[2J]]>&amp;");
    assert.equal(html("string(//tr[@class='busy'][1]/td[1])"), "9250");
    assert.ok(body.includes("<tr><th>pool</th><td>www &lt;&amp;&quot;&#39;&gt;</td></tr>\n<tr><th>process manager</th><td>static</td></tr>"));
    assert.ok(body.includes(`<tr>${PHP_FPM_PROCESS_KEYS.map((k) => `<th>${k}</th>`).join("")}<th>requests in flight</th>`));
    assert.match(body, /tr\.busy td \{ background: #[0-9a-f]{6}/, "busy rows have a background colour");
    assert.ok(!page(status, "html").body.includes("<tr class="), "without full: no worker table");
    assert.ok(page(NO_QUEUE, "html").body.includes("<tr><th>listen queue</th><td>-</td></tr>"));
  });
});

// ---------------------------------------------------------------------------------------------
// Metrics

/** A sample line: name, labels, value. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\["\\n])*)"(,|$)/y;

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const m = LABEL.exec(text);
    assert.ok(m, `malformed labels: {${text}}`);
    labels[m[1]!] = m[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
    if (m[3] === "") break;
  }
  return labels;
}

/**
 * Reads OpenMetrics text strictly, as far as these pages go: every sample belongs to the family
 * declared last, with the suffix its type allows (counter `_total`, info `_info`, gauge none);
 * metadata once per family and before its samples; UNIT a suffix of the name; `# EOF` last.
 * Returns the samples.
 */
function readOpenMetrics(text: string): Array<{ family: string; type: string; name: string; labels: Record<string, string>; value: number }> {
  assert.ok(text.endsWith("# EOF\n"), "ends with # EOF");
  const lines = text.slice(0, -"# EOF\n".length).split("\n");
  assert.equal(lines.pop(), "", "every line ends with a newline");
  const types = new Map<string, string>();
  const samples: ReturnType<typeof readOpenMetrics> = [];
  let current: string | undefined;
  const sampled = new Set<string>();
  for (const line of lines) {
    assert.notEqual(line, "", "no blank line");
    const meta = /^# (TYPE|HELP|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, family, rest] = meta as unknown as [string, string, string, string];
      assert.ok(!sampled.has(family), `${line}: metadata after the family's samples`);
      if (kind === "TYPE") {
        assert.ok(!types.has(family), `${family} declared twice`);
        assert.ok(["counter", "gauge", "info", "stateset", "histogram", "gaugehistogram", "summary", "unknown"].includes(rest), line);
        types.set(family, rest);
        if (current !== undefined) sampled.add(current);
        current = family;
      } else {
        assert.equal(family, current, `${line}: metadata of a family not declared just before`);
        if (kind === "UNIT") assert.ok(family.endsWith("_" + rest), `${line}: the unit must end the name`);
        if (kind === "HELP") assert.ok(!/(?<!\\)\\[^\\n"]/.test(rest), `${line}: bad escape`);
      }
      continue;
    }
    assert.ok(!line.startsWith("#"), `unexpected comment: ${line}`);
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a sample: ${line}`);
    const [, name, labels, value] = m as unknown as [string, string, string | undefined, string];
    assert.ok(current !== undefined, `${name}: a sample before any TYPE`);
    const type = types.get(current)!;
    const suffix = { counter: "_total", info: "_info", gauge: "" }[type as "counter" | "info" | "gauge"];
    assert.ok(suffix !== undefined, `${current}: a type these pages do not use`);
    assert.equal(name, current + suffix, `${name} does not belong to family ${current} (${type})`);
    assert.match(value, /^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN)$/, line);
    if (type === "counter") assert.ok(Number(value) >= 0, `${line}: a counter is never negative`);
    samples.push({ family: current, type, name, labels: labels === undefined ? {} : parseLabels(labels), value: Number(value) });
  }
  return samples;
}

describe("metrics", () => {
  const OPENMETRICS = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

  it("the Prometheus text format passes promtool check metrics with nothing to say", { skip: skipUnless(promtool !== undefined, NO_PROMETHEUS) }, () => {
    requirePresent(promtool !== undefined, NO_PROMETHEUS);
    for (const [status, query] of [[poolStatus(), "openmetrics&full"], [poolStatus(), "openmetrics"], [NO_QUEUE, "openmetrics&full"]] as const) {
      const { contentType, body } = page(status, query);
      assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
      const check = run(promtool!, ["check", "metrics"], body);
      assert.deepEqual([check.code, check.stdout, check.stderr], [0, "", ""], `promtool on ?${query}:\n${body}`);
    }
  });

  it("promtool does flag what it should: the check has teeth", { skip: skipUnless(promtool !== undefined, NO_PROMETHEUS) }, () => {
    requirePresent(promtool !== undefined, NO_PROMETHEUS);
    const check = run(promtool!, ["check", "metrics"], "# HELP phpfpm_slow_requests Slow.\n# TYPE phpfpm_slow_requests counter\nphpfpm_slow_requests 0\n");
    assert.notEqual(check.code, 0);
    assert.match(check.stdout + check.stderr, /_total/);
  });

  it("OpenMetrics when the scraper asks for it: strict families, suffixes and # EOF; the values and escaped labels read back", () => {
    const { contentType, body } = page(poolStatus(), "openmetrics&full", OPENMETRICS);
    assert.equal(contentType, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    const samples = readOpenMetrics(body);
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    assert.equal(value("fcgi_up"), 1);
    assert.equal(value("fcgi_pool_info", { pool: "www <&\"'>", process_manager: "static" }), 1);
    assert.equal(value("fcgi_start_time_seconds"), START / 1000);
    assert.equal(value("fcgi_accepted_connections_total"), 3);
    assert.equal(value("fcgi_listen_queue_length"), 4096);
    assert.equal(value("fcgi_max_listen_queue"), 1);
    assert.equal(value("fcgi_slow_requests_total"), 4);
    assert.equal(value("fcgi_refused_total", { kind: "maxRequests" }), 3);
    assert.equal(value("fcgi_refused_total", { kind: "we\"ird\\\n<kind>" }), 1);
    assert.equal(value("fcgi_worker_restarts_total", { cause: "recycle" }), 2);
    assert.equal(value("fcgi_process_requests_total", { pid: "9250" }), 14);
    assert.equal(value("fcgi_process_busy", { pid: "9250" }), 1);
    assert.equal(value("fcgi_process_event_loop_delay_seconds", { pid: "9249" }), 0.00125);
    assert.equal(value("fcgi_process_cpu_ratio", { pid: "9249" }), 0.035);
    assert.equal(value("fcgi_process_resident_memory_bytes", { pid: "9249" }), 52_428_800);
    for (const s of samples) assert.equal(s.type === "counter", s.name.endsWith("_total"), `${s.name}: only counters end in _total`);
    for (const s of samples) assert.ok(s.name.startsWith("fcgi_"), s.name);
    assert.ok(samples.some((s) => s.family.startsWith("fcgi_process_")), "per process with full");
    assert.ok(!readOpenMetrics(page(poolStatus(), "openmetrics", OPENMETRICS).body).some((s) => s.family.startsWith("fcgi_process_")), "per process only with full");
    const none = readOpenMetrics(page(NO_QUEUE, "openmetrics", OPENMETRICS).body).map((s) => s.family);
    for (const family of ["fcgi_listen_queue", "fcgi_max_listen_queue", "fcgi_listen_queue_length", "fcgi_refused"]) assert.ok(!none.includes(family), `${family} left out when not known`);
  });

  it("the strict reading refuses what OpenMetrics forbids", () => {
    const bad = [
      "# TYPE a counter\na 1\n# EOF\n",
      "# TYPE a gauge\na_total 1\n# EOF\n",
      "# TYPE a gauge\na 1\n",
      "b 1\n# EOF\n",
      "# TYPE a_seconds gauge\n# UNIT a_seconds bytes\na_seconds 1\n# EOF\n",
      "# TYPE a gauge\na 1\n# TYPE b gauge\n# HELP a late\nb 1\n# EOF\n",
    ];
    for (const text of bad) assert.throws(() => readOpenMetrics(text), assert.AssertionError, text);
  });
});

describe("a real Prometheus scrapes the OpenMetrics page", { skip: skipUnless(prometheus !== undefined, NO_PROMETHEUS) }, () => {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-prometheus-"));
  let exporter: Server | undefined;
  let server: ReturnType<typeof spawn> | undefined;
  let log = "";
  const served: Array<{ accept: string; contentType: string; path: string }> = [];

  after(async () => {
    if (server && server.exitCode === null) {
      const gone = new Promise((resolve) => server!.once("exit", resolve));
      server.kill("SIGTERM");
      await within(gone, 10_000, "prometheus to stop").catch(() => server!.kill("SIGKILL"));
    }
    await new Promise((resolve) => (exporter ? exporter.close(resolve) : resolve(undefined)));
    rmSync(dir, { recursive: true, force: true });
  });

  const query = async (base: string, expression: string) => {
    const response = await within(fetch(`${base}/api/v1/query?query=${encodeURIComponent(expression)}`), 5_000, "a Prometheus query");
    return (await response.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  };

  it("reads it as OpenMetrics, with the counters, the escaped labels and the values", { timeout: 90_000 }, async () => {
    requirePresent(prometheus !== undefined, NO_PROMETHEUS);
    exporter = createServer((request, response) => {
      const url = new URL(request.url ?? "/", "http://localhost");
      const { contentType, body } = formatStatus(poolStatus(), { ...statusQuery(url.search.slice(1)), full: true }, { accept: request.headers.accept });
      served.push({ accept: request.headers.accept ?? "", contentType, path: url.pathname + url.search });
      response.writeHead(200, { "content-type": contentType });
      response.end(body);
    });
    await new Promise<void>((resolve) => exporter!.listen(0, "127.0.0.1", resolve));
    const exporterPort = (exporter.address() as { port: number }).port;
    const port = await freePort();
    // The README's scrape config (examples/prometheus.yml), scraping this test's page every second.
    const example = readFileSync(join(repoRoot, "examples", "prometheus.yml"), "utf8");
    for (const part of ["scrape_interval: 15s", "127.0.0.1:8080"]) assert.ok(example.includes(part), `examples/prometheus.yml has ${part}`);
    writeFileSync(join(dir, "prometheus.yml"), example.replace("scrape_interval: 15s", "scrape_interval: 1s\n    scrape_timeout: 1s").replace("127.0.0.1:8080", `127.0.0.1:${exporterPort}`));
    server = spawn(prometheus!, [
      `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    server.stdout!.on("data", (d) => (log += d));
    server.stderr!.on("data", (d) => (log += d));
    const base = `http://127.0.0.1:${port}`;
    // Two scrapes at the least: the query then reads a stored sample, not a half-written first one.
    await waitFor(() => served.length >= 2 || server!.exitCode !== null, 60_000, `two scrapes by Prometheus; its log:\n${log}`);
    assert.equal(server.exitCode, null, `prometheus exited:\n${log}`);
    assert.match(served[0]!.accept, /application\/openmetrics-text/, "Prometheus asks for OpenMetrics");
    assert.equal(served[0]!.contentType, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert.equal(served[0]!.path, "/fcgi-status?openmetrics=", "the example's path and query");

    // The target's health is set once the scrape is stored: poll it (it reads "unknown" before).
    type Targets = { data: { activeTargets: Array<{ health: string; lastError: string }> } };
    let targets: Targets | undefined;
    const deadline = Date.now() + 20_000;
    while (targets?.data.activeTargets[0]?.health !== "up" && Date.now() < deadline) {
      if (targets !== undefined) await new Promise((resolve) => setTimeout(resolve, 100));
      targets = (await (await within(fetch(`${base}/api/v1/targets`), 5_000, "the targets")).json()) as Targets;
    }
    assert.deepEqual(targets!.data.activeTargets.map((t) => [t.health, t.lastError]), [["up", ""]], log);

    const accepted = await query(base, "fcgi_accepted_connections_total");
    assert.equal(accepted.status, "success");
    assert.equal(accepted.data.result[0]?.value[1], "3");
    const refused = await query(base, "fcgi_refused_total");
    assert.deepEqual(refused.data.result.map((r) => [r.metric["kind"], r.value[1]]).sort(), [["maxRequests", "3"], ["we\"ird\\\n<kind>", "1"]]);
    const delay = await query(base, 'fcgi_process_event_loop_delay_seconds{pid="9249"}');
    assert.equal(delay.data.result[0]?.value[1], "0.00125");
    const info = await query(base, "fcgi_pool_info");
    assert.equal(info.data.result[0]?.metric["pool"], "www <&\"'>");
  });
});

// ---------------------------------------------------------------------------------------------
// The watch table

/** PHP-FPM 8.2's own ?json&full, as it wrote it (one process running the status request). */
const PHP_FPM_JSON = `{"pool":"www","process manager":"static","start time":1796538025,"start since":14,"accepted conn":11,"listen queue":0,"max listen queue":0,"listen queue len":4096,"idle processes":0,"active processes":2,"total processes":2,"max active processes":5,"max children reached":0,"slow requests":0, "processes":[{"pid":9249,"state":"Idle","start time":1796538025,"start since":14,"requests":6,"request duration":0,"request method":"-","request uri":"-","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0},{"pid":9250,"state":"Running","start time":1796538025,"start since":14,"requests":5,"request duration":127,"request method":"GET","request uri":"\\/status?json&full","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0}]}`;

describe("the watch table", () => {
  it("parseStatusJson reads fcgi's JSON back into the status it was written from (times to the second)", () => {
    const status = poolStatus({ startTime: START, now: START + 13_000, processes: [processStatus(9249, "Idle", { startTime: START + 1000 }), processStatus(9250, "Running", { startTime: START })] });
    assert.deepEqual(parseStatusJson(page(status, "json&full").body), status);
    assert.deepEqual(parseStatusJson(page(NO_QUEUE, "json").body), { ...NO_QUEUE, now: START + 13_000, processes: [] });
  });

  it("parseStatusJson reads PHP-FPM's JSON, with neutral values for what it lacks", () => {
    const status = parseStatusJson(PHP_FPM_JSON);
    assert.equal(status.pool, "www");
    assert.equal(status.startTime, 1796538025_000);
    assert.equal(status.now, (1796538025 + 14) * 1000);
    assert.equal(status.acceptedConn, 11);
    assert.equal(status.listenQueueLen, 4096);
    assert.deepEqual([status.requestsInFlight, status.connectionsOpen, status.refused, status.restarts], [0, 0, {}, { crash: 0, hang: 0, recycle: 0, reload: 0 }]);
    assert.equal(status.processes.length, 2);
    assert.deepEqual(status.processes[1], {
      pid: 9250, state: "Running", startTime: 1796538025_000, requests: 5, requestDuration: 127, requestMethod: "GET", requestUri: "/status?json&full",
      contentLength: 0, user: "-", script: "-", lastRequestCpu: 0, lastRequestMemory: 0, requestsInFlight: 0, connectionsOpen: 0, eventLoopDelay: 0,
    });
    assert.throws(() => parseStatusJson("File not found."), /not a status page/);
    assert.throws(() => parseStatusJson("[1]"), /not a status page/);
  });

  it("renderTable: a header of counters, one row per process, URIs cut to the width and never an escape sequence", () => {
    const table = renderTable(poolStatus(), 60);
    const lines = table.trimEnd().split("\n");
    assert.match(lines[0]!, /^pool www <&"'> \(static\)  up 13\.90s  accepted 3  active 2\/3/);
    assert.ok(table.includes("refused maxRequests 3 we\"ird\\%0A<kind> 1"), table);
    assert.ok(table.includes("restarts crash 1 recycle 2"), table);
    for (const line of lines) assert.ok(Array.from(line).length <= 60, `wider than 60: ${line}`);
    assert.ok(!/[\x00-\x09\x0b-\x1f\x7f]/.test(table), "no control characters but newlines");
    const header = lines.findIndex((line) => line.trimStart().startsWith("PID"));
    assert.deepEqual(lines.slice(header).map((line) => line.trim().split(/\s+/).slice(0, 4)), [
      ["PID", "STATE", "REQUESTS", "DURATION"],
      ["9249", "Idle", "14", "120µs"],
      ["9250", "Running", "14", "2.50ms"],
      ["9251", "Running", "14", "2.50ms"],
    ]);
    assert.match(lines[header + 2]!, /POST \/a\?x=<&"'%0Aé😀%1B\[…$/);
    assert.match(lines[header + 3]!, /POST \/ok$/);
    assert.ok(renderTable(parseStatusJson(PHP_FPM_JSON)).includes("GET /status?json&full"));
  });

  it("durations read as a person reads them", () => {
    assert.deepEqual([0, 999, 1000, 12_345, 999_999, 1_200_000, 123_000_000, 7_380_000_000].map(formatDuration),
      ["0µs", "999µs", "1.00ms", "12.3ms", "1.00s", "1.20s", "2m03s", "2h03m"]);
  });
});

test("an empty pool still formats: no processes, no refusals", () => {
  const empty = poolStatus({ processes: [], refused: {} });
  for (const query of ["full", "json&full", "xml&full", "html&full", "openmetrics&full"]) assert.ok(page(empty, query).body.length > 0, query);
  assert.deepEqual(JSON.parse(page(empty, "json&full").body).processes, []);
  assert.ok(page(empty, "html&full").body.includes("<th>pid</th>"), "the worker table keeps its header");
});
