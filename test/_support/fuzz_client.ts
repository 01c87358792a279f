// The hostile-backend fuzzer for fcgi's Client (#11), shared by bench/fuzz_client.ts (minutes per
// runtime) and test/fuzz_client.test.ts (a fixed slice of seeds). Each seed makes one case: Client
// options, what the backend answers to GET_VALUES, and 1 to 8 requests sent at once, each with a
// plan for the fake backend (test/_support/hostile_backend.ts) and a way of reading the response.
//
// A "clean" case keeps every connection's framing intact (valid answers written whole, in pieces or
// one byte per write, with stray records for unknown ids, STDERR floods, giant bodies, broken and
// giant CGI headers, refusals, stalls at record boundaries): each request's outcome is known and
// checked exactly (status, marker header, every body byte, the STDERR byte count, or the error
// code). A "hostile" case adds random record streams, the codec oracle's record streams, records for
// other requests' ids, resets, closes and records cut short: only the rules below are checked.
//
// For every case, on every request: fetch() and the body read fail only with a FastCGIError (or the
// AbortError of the fuzzer's own abort); both end within the Client's timeouts plus a margin (a
// watchdog); no response head, body or STDERR line holds another request's marker. After the case:
// no request is left active, a fresh request through the same Client succeeds, close() resolves, and
// the process's RSS stays within RSS_MARGIN_MIB of its baseline.
import process from "node:process";
import { Client } from "../../src/client/client.ts";
import { FastCGIError } from "../../src/errors.ts";
import { Prng, caseSeed } from "../oracle/prng.ts";
import { BodyPattern, HostileBackend, MARKER_HEADER, MARKER_PATTERN, healthBody, type BackendCase, type ResponseKind, type ResponsePlan, type ValuesPlan } from "./hostile_backend.ts";

/** How the fuzzer reads a response: all of it, slowly, late, cancelling, or aborting the request. */
export interface Consumer {
  readonly mode: "read" | "slow" | "late" | "cancel" | "abort";
  /** cancel: after this many chunks. */
  readonly chunks: number;
  /** slow: pause per chunk (at most 20 pauses); late: before the first read; abort: after fetch() began. */
  readonly delayMs: number;
}

/** What a request must end with. Every outcome also allows TIMEOUT from queueTimeout (other requests may hold the connections). */
export type Expectation =
  | { readonly kind: "ok"; readonly status: number; readonly bodyLength: number; readonly stderrBytes: number }
  | { readonly kind: "fail"; readonly codes: readonly string[] }
  | { readonly kind: "ok-or-fail"; readonly status: number; readonly bodyLength: number; readonly stderrBytes: number; readonly codes: readonly string[] }
  | { readonly kind: "any" };

/** One request of a case. */
export interface RequestCase {
  readonly index: number;
  readonly marker: string;
  readonly method: "GET" | "POST" | "HEAD";
  readonly postBytes: number;
  readonly plan: ResponsePlan;
  readonly consumer: Consumer;
  readonly expect: Expectation;
}

/** The Client options a case sets (the rest stay the defaults). */
export interface CaseOptions {
  readonly maxConnections: number;
  readonly keepConn: boolean;
  readonly multiplex: "auto" | boolean;
  readonly responseTimeout: number;
  readonly connectTimeout: number;
  readonly queueTimeout: number;
  readonly idleTimeout: number;
  readonly maxHeaderBytes: number;
  readonly maxResponseBuffer: number;
  readonly maxBufferedBody: number;
}

/** One seeded case. */
export interface ClientCase {
  readonly seed: number;
  readonly kind: "clean" | "hostile";
  readonly options: CaseOptions;
  readonly values: ValuesPlan;
  readonly requests: readonly RequestCase[];
  /** The requests start this many ms apart. */
  readonly staggerMs: number;
}

const CLEAN_KINDS: ReadonlyArray<readonly [ResponseKind, number]> = [
  ["valid", 30], ["split", 10], ["unknown-ids", 12], ["stderr-flood", 8], ["giant-body", 4], ["bad-head", 12], ["giant-head", 8], ["refuse", 6], ["stall", 8],
];
const HOSTILE_KINDS: ReadonlyArray<readonly [ResponseKind, number]> = [
  ["random-records", 20], ["oracle", 20], ["wrong-id", 20], ["reset", 15], ["close", 15], ["truncate", 10],
];
const BAD_HEADS = ["nul", "no-colon", "bad-name", "bare-cr", "folding", "bad-status", "no-blank", "empty", "ctl", "high"];
/** Malformations whose refusal depends on the runtime's Headers (control bytes, bytes over 0x7f). */
const MAYBE_BAD_HEADS = new Set(["ctl", "high"]);
const NULL_BODY = new Set([204, 205, 304]);

/** How far the RSS may rise above its baseline (after the warm-up) once a case is over. */
export const RSS_MARGIN_MIB = 192;
/** How long the health request after a case, and close(), may take. */
const HEALTH_TIMEOUT_MS = 5000;
/** What the watchdog adds to a request's own bound (a loaded machine, garbage collection). */
const WATCHDOG_MARGIN_MS = 4000;

function weighted<T>(p: Prng, table: ReadonlyArray<readonly [T, number]>): T {
  let n = p.below(table.reduce((sum, [, w]) => sum + w, 0));
  for (const [value, weight] of table) {
    if (n < weight) return value;
    n -= weight;
  }
  return table[0]![0];
}

/** The kind of a seed's case (its first draw). */
export function clientCaseKind(seed: number): "clean" | "hostile" {
  return new Prng(caseSeed(seed ^ 0xc11e47)).chance(0.5) ? "clean" : "hostile";
}

/** The case of a seed: the same on every runtime and every run. */
export function makeClientCase(seed: number): ClientCase {
  const p = new Prng(caseSeed(seed ^ 0xc11e47));
  const kind = p.chance(0.5) ? "clean" : "hostile";
  const options: CaseOptions = {
    maxConnections: p.pick([1, 2, 4, 8]),
    keepConn: p.chance(0.85),
    multiplex: p.pick(["auto", "auto", true, false] as const),
    responseTimeout: p.range(800, 1500),
    connectTimeout: 500,
    queueTimeout: 4000,
    idleTimeout: p.pick([50, 500, 5000]),
    maxHeaderBytes: p.pick([1024, 4096, 16384, 65536]),
    maxResponseBuffer: p.pick([65536, 262144, 1 << 20]),
    maxBufferedBody: 1 << 20,
  };
  const values = valuesPlan(p, kind);
  const count = p.range(1, 8);
  const requests: RequestCase[] = [];
  for (let index = 0; index < count; index++) {
    const hostile = kind === "hostile" && (index === 0 || p.chance(0.5));
    requests.push(requestCase(p, seed, index, hostile ? weighted(p, HOSTILE_KINDS) : weighted(p, CLEAN_KINDS), options, kind === "hostile"));
  }
  return { seed, kind, options, values, requests, staggerMs: p.pick([0, 0, 1, 10]) };
}

function valuesPlan(p: Prng, kind: "clean" | "hostile"): ValuesPlan {
  const roll = p.below(kind === "clean" ? 100 : 120);
  if (roll < 40) {
    const pairs: Array<[string, string]> = [["FCGI_MPXS_CONNS", "1"]];
    if (p.chance(0.3)) pairs.push(["FCGI_MAX_CONNS", String(p.range(1, 4))]);
    if (p.chance(0.3)) pairs.push(["FCGI_MAX_REQS", String(p.range(1, 50))]);
    return { kind: "answer", pairs };
  }
  if (roll < 80) return { kind: "answer", pairs: [["FCGI_MPXS_CONNS", "0"], ["FCGI_MAX_CONNS", String(p.range(1, 8))]] };
  if (roll < 90) return { kind: "close" };
  if (roll < 100) return { kind: "silent" };
  if (roll < 110) return { kind: "garbage" };
  // Values no backend should send: zero, negative, huge, not numbers.
  return { kind: "answer", pairs: [["FCGI_MPXS_CONNS", p.pick(["yes", "2", ""])], ["FCGI_MAX_CONNS", p.pick(["0", "-1", "99999999999", "x"])], ["FCGI_MAX_REQS", p.pick(["0", "1e9", " 3 "])]] };
}

function marker(seed: number, index: number | "h"): string {
  return `FZM${seed.toString(36)}.${index}!`;
}

function requestCase(p: Prng, seed: number, index: number, kind: ResponseKind, options: CaseOptions, hostileCase: boolean): RequestCase {
  const small = kind === "split";
  let bodyLength = small ? p.range(0, 1500) : kind === "giant-body" ? p.range(1 << 20, 16 << 20) : p.pick([0, 1, 100, 5000, 70000, p.range(0, 300000)]);
  const recordSize0 = p.pick([1, 7, 8, 100, 4096, 65535, p.range(1, 65535)]);
  let stderrBytes = p.chance(0.2) ? p.range(1, 2000) : 0;
  if (kind === "stderr-flood") {
    stderrBytes = p.pick([256 << 10, 1 << 20, p.range(1, 4 << 20)]);
  }
  const recordSize = kind === "stderr-flood" && p.chance(0.3) ? p.range(1, 16) : recordSize0;
  const variant = kind === "bad-head" ? p.pick(BAD_HEADS) : kind === "giant-head" ? (p.chance(0.75) ? "over" : "under") : "";
  if (variant === "empty") bodyLength = 0;
  const stall = kind === "stall";
  const status = stall || kind === "giant-head" ? 200 : p.pick([200, 200, 200, 201, 404, 500, 503, 204, 304]);
  const method = stall ? "GET" : p.pick(["GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "POST", "HEAD"] as const);
  const plan: ResponsePlan = {
    kind,
    seed: p.next(),
    status,
    extraHeaders: p.range(0, 12),
    crlf: p.chance(0.7),
    bodyLength,
    recordSize,
    split: small ? "bytes" : p.pick(["whole", "whole", "cuts"] as const),
    stderrBytes,
    pauseMs: p.range(1, 30),
    pauses: p.range(0, 5),
    variant,
    maxHeaderBytes: options.maxHeaderBytes,
    protocolStatus: p.pick([1, 2, 3, p.range(4, 255)]),
    cut: p.next() / 0x1_0000_0000,
    onAbort: hostileCase ? p.pick(["end", "ignore", "close"] as const) : p.pick(["end", "end", "ignore"] as const),
  };
  const consumer: Consumer = {
    mode: weighted(p, [["read", 60], ["slow", 15], ["late", 10], ["cancel", 8], ["abort", 7]] as const),
    chunks: p.range(0, 3),
    delayMs: p.range(0, 300),
  };
  return { index, marker: marker(seed, index), method, postBytes: method === "POST" ? p.range(0, 5000) : 0, plan, consumer, expect: expectation(kind, plan, method, consumer, hostileCase) };
}

function expectation(kind: ResponseKind, plan: ResponsePlan, method: string, consumer: Consumer, hostileCase: boolean): Expectation {
  // In a hostile case another request's answer may break the connection this one shares.
  if (hostileCase || consumer.mode === "cancel" || consumer.mode === "abort") return { kind: "any" };
  // A bad or giant head has no Status line (200), and comes without STDERR.
  const odd = kind === "bad-head" || kind === "giant-head";
  const status = odd ? 200 : plan.status;
  const bodyLength = method === "HEAD" || NULL_BODY.has(status) ? 0 : plan.bodyLength;
  const ok = { status, bodyLength, stderrBytes: odd ? 0 : plan.stderrBytes };
  // A consumer that does not keep up may overflow maxResponseBuffer on a multiplexed connection.
  const slow = consumer.mode === "slow" || consumer.mode === "late" ? ["LIMIT_EXCEEDED"] : [];
  let expect: Expectation;
  switch (kind) {
    case "bad-head":
      // The head may also outgrow maxHeaderBytes when its blank line never comes.
      expect = MAYBE_BAD_HEADS.has(plan.variant) ? { kind: "ok-or-fail", ...ok, codes: ["BAD_RESPONSE"] } : { kind: "fail", codes: ["BAD_RESPONSE", "LIMIT_EXCEEDED"] };
      break;
    case "giant-head":
      expect = plan.variant === "over" ? { kind: "fail", codes: ["LIMIT_EXCEEDED"] } : { kind: "ok", ...ok };
      break;
    case "refuse":
      expect = { kind: "fail", codes: ["REQUEST_REFUSED"] };
      break;
    case "stall":
      expect = { kind: "fail", codes: ["TIMEOUT"] };
      break;
    default:
      expect = { kind: "ok", ...ok };
  }
  if (slow.length === 0) return expect;
  if (expect.kind === "ok") return { ...expect, kind: "ok-or-fail", codes: slow };
  if (expect.kind === "fail" || expect.kind === "ok-or-fail") return { ...expect, codes: [...expect.codes, ...slow] };
  return expect;
}

/** A short description of a case, for failure reports. */
export function describeClientCase(c: ClientCase): string {
  const o = c.options;
  const requests = c.requests.map((r) => `${r.plan.kind}${r.plan.variant ? `(${r.plan.variant})` : ""}/${r.method}/${r.consumer.mode}/${r.plan.split}`).join(" ");
  return `${c.kind}: values ${c.values.kind === "answer" ? JSON.stringify(c.values.pairs) : c.values.kind}; maxConnections ${o.maxConnections}, keepConn ${o.keepConn}, multiplex ${o.multiplex}, ` +
    `responseTimeout ${o.responseTimeout}, maxHeaderBytes ${o.maxHeaderBytes}, maxResponseBuffer ${o.maxResponseBuffer}; requests: ${requests}`;
}

// ---------------------------------------------------------------------------------------------
// Running a case

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const latin1 = new TextDecoder("latin1");

/** Finds markers other than `own` in text fed in pieces (a marker may straddle two pieces). */
class MarkerScan {
  #tail = "";
  readonly foreign = new Set<string>();
  readonly own: string;
  constructor(own: string) {
    this.own = own;
  }
  feed(text: string): void {
    const all = this.#tail + text;
    for (const m of all.matchAll(MARKER_PATTERN)) if (m[0] !== this.own) this.foreign.add(m[0]);
    this.#tail = all.slice(-48);
  }
}

/** What one request ended with. */
interface Outcome {
  phase: "fetch" | "body" | "done" | "cancelled";
  error?: unknown;
  status?: number;
  bodyBytes: number;
  /** The first body byte that differed from the planned body, if any. */
  mismatchAt?: number;
  headerMarker?: string | null;
  scan: MarkerScan;
}

/** The longest a request may take: its queue wait, the GET_VALUES wait, two attempts of its answer, its reader's pauses. */
function requestBound(c: ClientCase, r: RequestCase): number {
  const o = c.options;
  const plan = r.plan;
  const bytes = plan.bodyLength + plan.stderrBytes + (plan.kind === "giant-head" ? plan.maxHeaderBytes + 200_000 : 0);
  // Writing: 1 MB/s at worst for big answers, 1 ms per byte written alone.
  const writing = bytes / 1000 + (plan.split === "bytes" ? bytes + 2000 : 0) + plan.pauses * plan.pauseMs;
  const reading = r.consumer.mode === "slow" ? 20 * r.consumer.delayMs : r.consumer.delayMs;
  return o.queueTimeout + o.responseTimeout + 2 * (o.responseTimeout + writing) + reading + WATCHDOG_MARGIN_MS;
}

async function runRequest(client: Client, c: ClientCase, r: RequestCase): Promise<Outcome> {
  const scan = new MarkerScan(r.marker);
  const outcome: Outcome = { phase: "fetch", bodyBytes: 0, scan };
  const controller = new AbortController();
  const consumer = r.consumer;
  let abortTimer: ReturnType<typeof setTimeout> | undefined;
  if (consumer.mode === "abort") abortTimer = setTimeout(() => controller.abort(), consumer.delayMs);
  const body = r.method === "POST" ? new Uint8Array(r.postBytes).fill(0x70) : undefined;
  const request = new Request(`http://fuzz.test/r/${c.seed}/${r.index}`, { method: r.method, headers: { [MARKER_HEADER]: r.marker }, body, signal: controller.signal });
  const pattern = r.expect.kind === "ok" || r.expect.kind === "ok-or-fail" ? new BodyPattern(r.plan.seed, r.marker) : null;
  try {
    let response: Response;
    try {
      response = await client.fetch(request);
    } catch (error) {
      outcome.error = error;
      return outcome;
    }
    outcome.phase = "body";
    outcome.status = response.status;
    outcome.headerMarker = response.headers.get(MARKER_HEADER);
    for (const [name, value] of response.headers) scan.feed(`${name}: ${value}\n`);
    if (consumer.mode === "late") await sleep(consumer.delayMs);
    if (response.body === null) {
      outcome.phase = "done";
      return outcome;
    }
    const reader = response.body.getReader();
    let chunks = 0;
    try {
      for (;;) {
        if (consumer.mode === "cancel" && chunks >= consumer.chunks) {
          await reader.cancel();
          outcome.phase = "cancelled";
          return outcome;
        }
        const { done, value } = await reader.read();
        if (done) break;
        chunks++;
        if (pattern !== null && outcome.mismatchAt === undefined && !pattern.matches(outcome.bodyBytes, value)) outcome.mismatchAt = outcome.bodyBytes;
        outcome.bodyBytes += value.length;
        scan.feed(latin1.decode(value));
        if (consumer.mode === "slow" && chunks <= 20) await sleep(consumer.delayMs);
      }
    } finally {
      reader.releaseLock();
    }
    outcome.phase = "done";
    return outcome;
  } catch (error) {
    outcome.error = error;
    return outcome;
  } finally {
    clearTimeout(abortTimer);
  }
}

/**
 * What is wrong with an outcome, or undefined. The STDERR count is checked later, once the request
 * is over: a response without a body (HEAD, 204) is out before the rest of its STDERR.
 */
function judge(r: RequestCase, o: Outcome, aborted: boolean): string | undefined {
  const where = `request ${r.index} (${r.plan.kind}${r.plan.variant ? `/${r.plan.variant}` : ""}, ${r.method}, ${r.consumer.mode})`;
  if (o.scan.foreign.size > 0) return `${where} got another request's bytes: ${[...o.scan.foreign].join(" ")}`;
  if (o.headerMarker != null && o.headerMarker !== r.marker) return `${where} got the head of ${o.headerMarker}`;
  const error = o.error;
  const expect = r.expect;
  if (error !== undefined) {
    const isAbort = aborted && error instanceof DOMException && error.name === "AbortError";
    if (!(error instanceof FastCGIError) && !isAbort) return `${where} failed (${o.phase}) with an error that is not a FastCGIError: ${describeError(error)}`;
    if (isAbort) return r.consumer.mode === "abort" ? undefined : `${where} failed with an AbortError nobody asked for`;
    const fe = error as FastCGIError;
    if (fe.code === "TIMEOUT" && fe.limit === "queueTimeout") return undefined;
    if (expect.kind === "ok") return `${where} should have succeeded, failed (${o.phase}) with ${describeError(error)}`;
    if ((expect.kind === "fail" || expect.kind === "ok-or-fail") && !expect.codes.includes(fe.code)) {
      return `${where} should have failed with ${expect.codes.join(" or ")}, failed (${o.phase}) with ${describeError(error)}`;
    }
    return undefined;
  }
  if (expect.kind === "fail") return `${where} should have failed with ${expect.codes.join(" or ")}, ended ${o.phase} with status ${o.status} and ${o.bodyBytes} body bytes`;
  if (expect.kind === "ok" || expect.kind === "ok-or-fail") {
    if (o.phase !== "done") return `${where} ended ${o.phase}`;
    if (o.status !== expect.status) return `${where} answered status ${o.status}, not ${expect.status}`;
    if (o.headerMarker !== r.marker) return `${where} lacks its X-Fuzz-Marker header (got ${o.headerMarker})`;
    if (o.mismatchAt !== undefined) return `${where}: body byte ${o.mismatchAt} differs from what the backend sent`;
    if (o.bodyBytes !== expect.bodyLength) return `${where}: ${o.bodyBytes} body bytes, the backend sent ${expect.bodyLength}`;
  }
  return undefined;
}

function describeError(error: unknown): string {
  if (error instanceof FastCGIError) return `FastCGIError ${error.code}${error.limit ? ` (${error.limit})` : ""}: ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}\n${error.stack?.split("\n").slice(1, 6).join("\n")}`;
  return String(error);
}

/** Resolves with the promise's value, or with `fallback` after `ms`. */
function orAfter<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(timer));
}

/** The longest the event loop was late while the case ran, in ms: a sign of a loaded machine. */
function lagMonitor(): { stop(): number } {
  let worst = 0;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    worst = Math.max(worst, now - last - 20);
    last = now;
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return worst;
    },
  };
}

/** Runs one case against `backend`; resolves with its failures (empty when it passed). */
export async function runClientCase(backend: HostileBackend, c: ClientCase): Promise<string[]> {
  const failures: string[] = [];
  const lag = lagMonitor();
  const plans = new Map(c.requests.map((r) => [r.marker, r.plan] as const));
  backend.current = { values: c.values, plans } satisfies BackendCase;
  const stderr = new Map<string, number>();
  const stderrScans = new Map<string, MarkerScan>();
  const client = new Client({
    address: `127.0.0.1:${backend.port}`,
    ...c.options,
    onStderr(message, info) {
      const own = info.request.headers.get(MARKER_HEADER) ?? "";
      stderr.set(own, (stderr.get(own) ?? 0) + message.length);
      let scan = stderrScans.get(own);
      if (scan === undefined) stderrScans.set(own, scan = new MarkerScan(own));
      scan.feed(message);
    },
  });
  try {
    const HANG = Symbol("hang");
    const succeeded: RequestCase[] = [];
    const runs = c.requests.map(async (r) => {
      if (c.staggerMs > 0) await sleep(r.index * c.staggerMs);
      const bound = requestBound(c, r);
      const outcome = await orAfter(runRequest(client, c, r), bound, HANG);
      if (outcome === HANG) return failures.push(`request ${r.index} (${r.plan.kind}, ${r.consumer.mode}) hung: fetch and body read took over ${bound} ms`);
      const wrong = judge(r, outcome, r.consumer.mode === "abort");
      if (wrong) failures.push(wrong);
      else if (outcome.error === undefined && (r.expect.kind === "ok" || r.expect.kind === "ok-or-fail")) succeeded.push(r);
    });
    await Promise.all(runs);
    for (const [own, scan] of stderrScans) if (scan.foreign.size > 0) failures.push(`the STDERR of ${own} held another request's bytes: ${[...scan.foreign].join(" ")}`);
    // A null-body response (HEAD, 204) is out before its END_REQUEST: wait for the last ones to end.
    const settleUntil = Date.now() + c.options.responseTimeout + 2000;
    while ((client.stats().active > 0 || client.stats().queued > 0) && Date.now() < settleUntil) await sleep(20);
    const stats = client.stats();
    if (stats.active > 0 || stats.queued > 0) failures.push(`requests left on the Client once every response was over: ${JSON.stringify({ ...stats, limits: undefined })}`);
    for (const r of succeeded) {
      const got = stderr.get(r.marker) ?? 0;
      if (r.expect.kind !== "any" && "stderrBytes" in r.expect && got !== r.expect.stderrBytes) failures.push(`request ${r.index} (${r.plan.kind}): onStderr got ${got} characters, the backend sent ${r.expect.stderrBytes}`);
    }
    backend.dropDesynced();
    const health = await checkHealth(client, c.seed);
    if (health) failures.push(health);
  } finally {
    backend.current = null;
    const closed = await orAfter(client.close().then(() => true), HEALTH_TIMEOUT_MS, false);
    if (!closed) failures.push(`client.close() did not resolve within ${HEALTH_TIMEOUT_MS} ms: ${JSON.stringify({ ...client.stats(), limits: undefined })}`);
    backend.endCase();
    const worst = lag.stop();
    if (failures.length > 0) failures.push(`(the event loop was up to ${worst} ms late during the case)`);
  }
  return failures;
}

/** A fresh request through the case's Client: undefined when it is answered right, else what went wrong. */
async function checkHealth(client: Client, seed: number): Promise<string | undefined> {
  const own = marker(seed, "h");
  const attempt = (async () => {
    const response = await client.fetch(new Request("http://fuzz.test/health", { headers: { [MARKER_HEADER]: own } }));
    const text = await response.text();
    if (response.status !== 200 || text !== healthBody(own)) return `the health request after the case answered ${response.status} ${JSON.stringify(text.slice(0, 100))}`;
    return undefined;
  })().catch((error) => `the health request after the case failed: ${describeError(error)}`);
  return await orAfter(attempt, HEALTH_TIMEOUT_MS, `the health request after the case took over ${HEALTH_TIMEOUT_MS} ms`);
}

// ---------------------------------------------------------------------------------------------
// A run

/** This process's RSS in MiB, after a collection when the runtime offers one. */
export function rssMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  return process.memoryUsage.rss() / (1024 * 1024);
}

/** One failed case. */
export interface ClientFuzzFailure {
  readonly seed: number;
  readonly what: string;
  readonly case: string;
}

/** What a run covered. */
export interface ClientFuzzReport {
  readonly firstSeed: number;
  /** The seed after the last one run. */
  nextSeed: number;
  cases: number;
  requests: number;
  /** Cases per kind, and requests per answer kind. */
  kinds: Record<string, number>;
  failures: ClientFuzzFailure[];
  /** Cases that failed once and passed when run again (timing on a loaded machine), with the first failure. */
  flaky: ClientFuzzFailure[];
  baselineMiB: number;
  peakMiB: number;
}

/** Options of {@link fuzzClient}. */
export interface ClientFuzzOptions {
  firstSeed: number;
  maxCases: number;
  /** No case starts after this time (Date.now()). */
  deadline: number;
  /** Stop after this many failed cases (default 1). */
  maxFailures?: number;
  /** Check the RSS bound after each case (default true). */
  checkRss?: boolean;
  log?(line: string): void;
  onCase?(seed: number, c: ClientCase, ms: number, rss: number): void;
}

/** Runs seeds from `firstSeed` against a hostile backend in this process, checking after each case. */
export async function fuzzClient(options: ClientFuzzOptions): Promise<ClientFuzzReport> {
  const report: ClientFuzzReport = { firstSeed: options.firstSeed, nextSeed: options.firstSeed, cases: 0, requests: 0, kinds: {}, failures: [], flaky: [], baselineMiB: 0, peakMiB: 0 };
  const maxFailures = options.maxFailures ?? 1;
  const backend = await HostileBackend.start();
  // An error thrown where nobody catches it (a callback, a stream) is a failure of the case running.
  const stray: string[] = [];
  const onStray = (error: unknown) => void stray.push(`uncaught: ${describeError(error)}`);
  process.on("uncaughtException", onStray);
  process.on("unhandledRejection", onStray);
  try {
    // Warm-up: the Client's code and the runtime's sockets, before the baseline.
    for (let i = 0; i < 20; i++) {
      const client = new Client({ address: `127.0.0.1:${backend.port}`, responseTimeout: 2000 });
      const health = await checkHealth(client, -1 - i);
      await client.close();
      if (health) throw new Error(`the warm-up failed: ${health}`);
    }
    report.baselineMiB = rssMiB();
    const limit = report.baselineMiB + RSS_MARGIN_MIB;
    options.log?.(`backend on 127.0.0.1:${backend.port}; baseline RSS ${report.baselineMiB.toFixed(1)} MiB, bound ${limit.toFixed(1)} MiB`);
    while (report.cases < options.maxCases && Date.now() < options.deadline && report.failures.length < maxFailures) {
      const seed = report.nextSeed++;
      const c = makeClientCase(seed);
      const started = Date.now();
      let failures = await runClientCase(backend, c);
      failures.push(...stray.splice(0));
      if (failures.length > 0) {
        // Once more: a failure that does not come back was the machine's timing (shown as flaky).
        const again = await runClientCase(backend, c);
        again.push(...stray.splice(0));
        if (again.length === 0) {
          report.flaky.push({ seed, what: failures.join("\n"), case: describeClientCase(c) });
          failures = [];
        } else {
          failures = [...failures, "run again:", ...again];
        }
      }
      report.cases++;
      report.requests += c.requests.length;
      report.kinds[c.kind] = (report.kinds[c.kind] ?? 0) + 1;
      for (const r of c.requests) report.kinds[r.plan.kind] = (report.kinds[r.plan.kind] ?? 0) + 1;
      let rss = rssMiB();
      for (const settleUntil = Date.now() + 3000; rss > limit && Date.now() < settleUntil;) {
        await sleep(250);
        rss = Math.min(rss, rssMiB());
      }
      report.peakMiB = Math.max(report.peakMiB, rss);
      if (options.checkRss !== false && rss > limit) failures.push(`RSS ${rss.toFixed(1)} MiB over the bound of ${limit.toFixed(1)} MiB`);
      if (failures.length > 0) {
        report.failures.push({ seed, what: failures.join("\n"), case: describeClientCase(c) });
        options.log?.(`FAILURE at seed ${seed}: ${failures.join("; ")}`);
        continue;
      }
      options.onCase?.(seed, c, Date.now() - started, rss);
    }
  } finally {
    process.off("uncaughtException", onStray);
    process.off("unhandledRejection", onStray);
    await backend.stop();
  }
  return report;
}
