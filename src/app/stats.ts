/**
 * What a server counts for its status page and logs for its operator: accepted and refused
 * requests, the requests running (oldest first), the last one finished, slow requests, and, once a
 * second, the event loop's delay, CPU and memory. Per request it costs a counter, a Set insert and
 * delete, and the access log entry when one is configured; everything else is done when the page is
 * asked for or by a timer.
 * @module
 */
import type { ProcessReport } from "../status/report.ts";
import type { ProcessStatus } from "../status/types.ts";
import type { ServerLog } from "./options.ts";
import type { RequestTask } from "./task.ts";
import type { AccessLogSink } from "./types.ts";

/** How often the event loop's delay is measured. */
const TICK_MS = 100;
/** CPU and memory are sampled, and the worst loop delay reset, every this many ticks (1 s). */
const TICKS_PER_SAMPLE = 10;

/** The limits whose hits are refusals, under the name the page gives them. */
const PARAMS_LIMITS = new Set(["maxTotalBytes", "maxNameLength", "maxValueLength"]);

/** Counters and samples of one server (one process). */
export class ServerStats {
  readonly startTime: number = Date.now();
  accepted = 0;
  slow = 0;
  readonly refused: Record<string, number> = {};
  /** Requests running, oldest first (a Set iterates in insertion order). */
  readonly running: Set<RequestTask> = new Set();

  readonly pid: number;
  readonly #accessLog: AccessLogSink | undefined;
  #last: RequestTask | undefined;
  #lastDurationMs = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #tickAt = 0;
  #worstDelay = 0;
  #loopDelay = 0;
  #cpu = 0;
  #rss = 0;
  #cpuAt: { usage: number; at: number } | undefined;

  constructor(pid: number, accessLog: AccessLogSink | undefined) {
    this.pid = pid;
    this.#accessLog = accessLog;
  }

  /** Starts the once-a-second samples (only the status page shows them). */
  startSampling(): void {
    this.#tickAt = performance.now();
    this.#sample();
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /** A limit refused a request or a connection. */
  refuse(kind: string): void {
    this.refused[kind] = (this.refused[kind] ?? 0) + 1;
  }

  /** The protocol core refused a request: counted when a limit did it (a params limit), not for a malformed stream. */
  refuseParams(limit: string | undefined): void {
    if (limit !== undefined && PARAMS_LIMITS.has(limit)) this.refuse("maxParamsBytes");
  }

  began(task: RequestTask): void {
    this.running.add(task);
  }

  ended(task: RequestTask): void {
    this.running.delete(task);
    const durationMs = performance.now() - task.startedAt;
    if (!task.internal) {
      this.#last = task;
      this.#lastDurationMs = durationMs;
    }
    const log = this.#accessLog;
    if (log === undefined) return;
    const params = task.params;
    // One shape for every entry (absent fields are undefined, not missing): cheaper than spreads.
    log.write({
      time: Date.now() - durationMs,
      pid: this.pid,
      requestId: task.requestId,
      method: task.method,
      uri: params.get("REQUEST_URI") ?? params.get("SCRIPT_NAME") ?? "/",
      protocol: params.get("SERVER_PROTOCOL") || undefined,
      status: task.status,
      bytes: task.bytesOut,
      durationMs,
      remoteAddr: params.get("REMOTE_ADDR") || task.socket.remoteAddress || "-",
      user: params.get("REMOTE_USER") || undefined,
    });
  }

  /** The requests that have run `limit` ms or more at `now` (performance.now()) and were not logged as slow yet. */
  *newlySlow(now: number, limit: number): Generator<RequestTask> {
    for (const task of this.running) {
      if (now - task.startedAt < limit) return;
      if (task.slowLogged) continue;
      task.slowLogged = true;
      this.slow++;
      yield task;
    }
  }

  /** This process's part of the status page. */
  report(connectionsOpen: number): ProcessReport {
    const now = performance.now();
    let requestsInFlight = 0;
    let current: RequestTask | undefined;
    for (const task of this.running) {
      if (task.internal) continue;
      requestsInFlight++;
      current ??= task;
    }
    const shown = current ?? this.#last;
    const params = shown?.params;
    const length = params?.get("CONTENT_LENGTH");
    const row: ProcessStatus = {
      pid: this.pid,
      state: requestsInFlight > 0 ? "Running" : "Idle",
      startTime: this.startTime,
      requests: this.accepted,
      requestDuration: Math.round((current ? now - current.startedAt : this.#lastDurationMs) * 1000),
      requestMethod: shown?.method ?? "-",
      requestUri: params?.get("REQUEST_URI") ?? params?.get("SCRIPT_NAME") ?? "-",
      contentLength: length !== undefined && /^[0-9]{1,15}$/.test(length) ? Number(length) : 0,
      user: params?.get("REMOTE_USER") || "-",
      script: params?.get("SCRIPT_FILENAME") || "-",
      lastRequestCpu: this.#cpu,
      lastRequestMemory: this.#rss,
      requestsInFlight,
      connectionsOpen,
      eventLoopDelay: Math.round(Math.max(this.#loopDelay, this.#worstDelay) * 10) / 10,
    };
    return { process: row, acceptedConn: this.accepted, slowRequests: this.slow, refused: { ...this.refused } };
  }

  #tick(): void {
    const now = performance.now();
    // How much later than asked this timer ran: the time the event loop was busy elsewhere.
    this.#worstDelay = Math.max(this.#worstDelay, now - this.#tickAt - TICK_MS);
    this.#tickAt = now;
    if (++this.#ticks % TICKS_PER_SAMPLE === 0) this.#sample();
  }

  #sample(): void {
    this.#loopDelay = Math.max(0, this.#worstDelay);
    this.#worstDelay = 0;
    const usage = process.cpuUsage();
    const cpu = usage.user + usage.system;
    const at = performance.now();
    if (this.#cpuAt) {
      const elapsed = (at - this.#cpuAt.at) * 1000;
      this.#cpu = elapsed > 0 ? Math.round(((cpu - this.#cpuAt.usage) / elapsed) * 10000) / 100 : 0;
    }
    this.#cpuAt = { usage: cpu, at };
    this.#rss = process.memoryUsage.rss();
  }
}
