/**
 * What a worker tells its manager over the control socket: one JSON object a line. `hello` names
 * the worker (the token the manager gave it), `ready` says it listens, `beat` (every
 * {@link HEARTBEAT_MS}) says its event loop runs, with its counts and its oldest request in flight.
 * Beside the socket, each worker keeps the request it began last in a small file of its own (a
 * {@link NowRecord}), written synchronously as the request starts: a handler that blocks the event
 * loop at once is still named, and the manager reads nothing per request.
 * @module
 */

/** How often a worker sends a heartbeat. */
export const HEARTBEAT_MS = 250;

/** Longest control line accepted; a longer one is a broken worker and is dropped. */
const MAX_LINE = 4096;

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
  | { readonly type: "beat"; readonly served: number; readonly rss: number; readonly oldest?: InFlight };

/** One message as the line a worker writes. */
export function encodeMessage(message: WorkerMessage): string {
  return JSON.stringify(message) + "\n";
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function parseMessage(line: string): WorkerMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  const m = value as Record<string, unknown>;
  if (m.type === "hello" && typeof m.token === "string") return { type: "hello", token: m.token };
  if (m.type === "ready") return { type: "ready" };
  if (m.type === "beat" && isCount(m.served) && isCount(m.rss)) {
    const o = m.oldest as Record<string, unknown> | undefined;
    const oldest = o && typeof o.method === "string" && typeof o.uri === "string" && isCount(o.ageMs) ? { method: o.method, uri: o.uri, ageMs: o.ageMs } : undefined;
    return oldest ? { type: "beat", served: m.served, rss: m.rss, oldest } : { type: "beat", served: m.served, rss: m.rss };
  }
  return undefined;
}

/** Turns the control socket's text into messages; lines that are not a message are skipped. */
export class MessageDecoder {
  #pending = "";
  #skipping = false;

  /** The complete messages in `text` (with what came before it). */
  push(text: string): WorkerMessage[] {
    const messages: WorkerMessage[] = [];
    this.#pending += text;
    let newline: number;
    while ((newline = this.#pending.indexOf("\n")) !== -1) {
      const line = this.#pending.slice(0, newline);
      this.#pending = this.#pending.slice(newline + 1);
      if (this.#skipping) {
        this.#skipping = false;
        continue;
      }
      const message = parseMessage(line);
      if (message) messages.push(message);
    }
    if (this.#pending.length > MAX_LINE) {
      this.#pending = "";
      this.#skipping = true;
    }
    return messages;
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
