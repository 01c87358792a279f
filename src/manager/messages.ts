/**
 * What a worker and its manager tell each other over the control socket: one JSON object a line.
 * `hello` names the worker (the token the manager gave it), `ready` says it listens, `beat` (every
 * {@link HEARTBEAT_MS}) says its event loop runs, with its counts, its oldest request in flight and
 * its status report. `status` asks the manager for the pool's status page, which the manager
 * answers with `status` once every worker has sent a fresh beat (it asks them with `report`).
 * Beside the socket, each worker keeps the request it began last in a small file of its own (a
 * {@link NowRecord}), written synchronously as the request starts: a handler that blocks the event
 * loop at once is still named, and the manager reads nothing per request.
 * @module
 */

/** How often a worker sends a heartbeat. */
export const HEARTBEAT_MS = 250;

import type { ProcessReport } from "../status/report.ts";
import type { PoolStatus } from "../status/types.ts";

/** Longest control line accepted (a report with URIs of 200 characters is about 1 KiB); a longer one is a broken worker and is dropped. */
const MAX_LINE = 64 * 1024;

/** The oldest request a worker is running. */
export interface InFlight {
  /** Its method. */
  readonly method: string;
  /** Its URI (path and query), cut to 200 characters. */
  readonly uri: string;
  /** How long it has been running, in milliseconds, when the heartbeat was sent. */
  readonly ageMs: number;
}

/** A message from a worker to its manager. */
export type WorkerMessage =
  | { readonly type: "hello"; readonly token: string }
  | { readonly type: "ready" }
  | { readonly type: "beat"; readonly served: number; readonly rss: number; readonly oldest?: InFlight; readonly report?: ProcessReport }
  | { readonly type: "status"; readonly id: number; readonly report: ProcessReport };

/** A message from the manager to a worker. */
export type ManagerMessage =
  /** Send a beat now (for a fresh status page). */
  | { readonly type: "report" }
  /** The answer to the worker's `status` with the same id; null when the manager cannot give one. */
  | { readonly type: "status"; readonly id: number; readonly status: PoolStatus | null };

/** One message as the line a worker (or the manager) writes. */
export function encodeMessage(message: WorkerMessage | ManagerMessage): string {
  return JSON.stringify(message) + "\n";
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  return value === null || typeof value !== "object" ? undefined : value as Record<string, unknown>;
}

/** A report as the worker sent it, when it has the shape the manager reads (the counters it sums). */
function asReport(value: unknown): ProcessReport | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const r = value as Record<string, unknown>;
  const p = r.process as Record<string, unknown> | null | undefined;
  if (!isCount(r.acceptedConn) || !isCount(r.slowRequests) || r.refused === null || typeof r.refused !== "object") return undefined;
  if (!p || typeof p !== "object" || !isCount(p.pid) || (p.state !== "Idle" && p.state !== "Running") || !isCount(p.requestsInFlight) || !isCount(p.connectionsOpen)) return undefined;
  if (!Object.values(r.refused).every(isCount)) return undefined;
  return value as ProcessReport;
}

function parseWorkerMessage(line: string): WorkerMessage | undefined {
  const m = parseObject(line);
  if (m === undefined) return undefined;
  if (m.type === "hello" && typeof m.token === "string") return { type: "hello", token: m.token };
  if (m.type === "ready") return { type: "ready" };
  if (m.type === "beat" && isCount(m.served) && isCount(m.rss)) {
    const o = m.oldest as Record<string, unknown> | undefined;
    const oldest = o && typeof o.method === "string" && typeof o.uri === "string" && isCount(o.ageMs) ? { method: o.method, uri: o.uri, ageMs: o.ageMs } : undefined;
    const report = asReport(m.report);
    return { type: "beat", served: m.served, rss: m.rss, ...(oldest ? { oldest } : {}), ...(report ? { report } : {}) };
  }
  if (m.type === "status" && isCount(m.id)) {
    const report = asReport(m.report);
    return report ? { type: "status", id: m.id, report } : undefined;
  }
  return undefined;
}

function parseManagerMessage(line: string): ManagerMessage | undefined {
  const m = parseObject(line);
  if (m?.type === "report") return { type: "report" };
  if (m?.type === "status" && isCount(m.id)) return { type: "status", id: m.id, status: (m.status ?? null) as PoolStatus | null };
  return undefined;
}

/** Turns the text of one side of the control socket into messages; lines that are not a message are skipped. */
class LineDecoder<T> {
  readonly #parse: (line: string) => T | undefined;
  readonly #maxLine: number;
  #pending = "";
  #skipping = false;

  constructor(parse: (line: string) => T | undefined, maxLine: number) {
    this.#parse = parse;
    this.#maxLine = maxLine;
  }

  /** The complete messages in `text` (with what came before it). */
  push(text: string): T[] {
    const messages: T[] = [];
    this.#pending += text;
    let newline: number;
    while ((newline = this.#pending.indexOf("\n")) !== -1) {
      const line = this.#pending.slice(0, newline);
      this.#pending = this.#pending.slice(newline + 1);
      if (this.#skipping) {
        this.#skipping = false;
        continue;
      }
      const message = this.#parse(line);
      if (message) messages.push(message);
    }
    if (this.#pending.length > this.#maxLine) {
      this.#pending = "";
      this.#skipping = true;
    }
    return messages;
  }
}

/** The manager's decoder of what a worker writes. */
export class MessageDecoder extends LineDecoder<WorkerMessage> {
  constructor() {
    super(parseWorkerMessage, MAX_LINE);
  }
}

/** A worker's decoder of what its manager writes (a status page of many workers can be long). */
export class ManagerMessageDecoder extends LineDecoder<ManagerMessage> {
  constructor() {
    super(parseManagerMessage, 16 * 1024 * 1024);
  }
}

/** The request a worker began last, as its "now" file holds it. */
export interface NowRecord {
  /** When it began (Date.now() of the worker). */
  readonly startedAt: number;
  /** Its method. */
  readonly method: string;
  /** Its URI (path and query), cut to 200 characters. */
  readonly uri: string;
}

/** The line a worker writes at the start of its "now" file (each write overwrites the last from byte 0). */
export function encodeNowRecord(startedAt: number, method: string, uri: string): string {
  return `${startedAt} ${method} ${uri.slice(0, 200).replace(/[\r\n]/g, "")}\n`;
}

/** The record at the start of a "now" file, or undefined when it holds none (nothing began yet). */
export function parseNowRecord(text: string): NowRecord | undefined {
  const m = /^(\d+) (\S+) ([^\n]*)\n/.exec(text);
  return m ? { startedAt: Number(m[1]), method: m[2]!, uri: m[3]! } : undefined;
}
