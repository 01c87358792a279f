/**
 * The worker's side of the control socket: `fcgi serve` started by a manager (FCGI_MANAGER names
 * the socket) says hello, then sends a heartbeat every 250 ms from its event loop, with its served
 * count, its memory and its oldest request in flight; a blocked loop sends none, which is how the
 * manager sees a hang. If the manager goes away, the worker stops (nothing outlives the pool).
 * @module
 */
import { openSync, writeSync } from "node:fs";
import { detectAdapter } from "../runtime/index.ts";
import type { Connection } from "../socket.ts";
import type { ProcessReport } from "../status/report.ts";
import type { PoolStatus } from "../status/types.ts";
import { encodeMessage, encodeNowRecord, HEARTBEAT_MS, type InFlight, ManagerMessageDecoder, type WorkerMessage } from "./messages.ts";

/** How long a worker waits for the manager's status page before it shows its own. */
const STATUS_TIMEOUT_MS = 2000;

/** The environment variable holding the manager's control socket path. */
export const MANAGER_ENV = "FCGI_MANAGER";
/** The environment variable holding the token that names this worker to its manager. */
export const TOKEN_ENV = "FCGI_WORKER_TOKEN";
/** The environment variable holding the path of the worker's "now" file (see messages.ts). */
export const NOW_ENV = "FCGI_WORKER_NOW";

/** What a worker started by a manager reports to it. */
export interface ManagerLink {
  /** Wraps a handler so the request is recorded before it runs (a handler that spins at once is still named). */
  track<A extends unknown[], R>(handler: (request: Request, ...rest: A) => R): (request: Request, ...rest: A) => R;
  /** Tells the manager the worker listens; `report` gives the worker's status report for each beat. */
  ready(report?: () => ProcessReport): void;
  /** The pool's status page from the manager, given this worker's fresh report; undefined if the manager does not answer. */
  poolStatus(report: ProcessReport): Promise<PoolStatus | undefined>;
  /** Sends a last beat (the counts of a worker that drained), stops the heartbeat and closes the link. */
  close(): void;
}

/** The path and query of a request URL, cut to 200 characters for the manager's log. */
function uriOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return (start === -1 ? "/" : url.slice(start)).slice(0, 200);
}

/** REQUEST_URI from the handler's context, which is cheaper than building `request.url`. */
function requestUri(request: Request, context: unknown): string {
  const params = (context as { params?: { get(name: string): string | undefined } } | undefined)?.params;
  return params?.get("REQUEST_URI") ?? uriOf(request.url);
}

/**
 * Connects to the manager when this process was started by one (FCGI_MANAGER is set), else
 * resolves to undefined. `onLost` is called when the manager's end closes.
 */
export async function linkToManager(onLost: () => void): Promise<ManagerLink | undefined> {
  const runtime = await detectAdapter();
  const path = runtime.env(MANAGER_ENV);
  if (!path) return undefined;
  const encoder = new TextEncoder();
  const text = new TextDecoder();
  const decoder = new ManagerMessageDecoder();
  const pending = new Map<number, (status: PoolStatus | undefined) => void>();
  let statusIds = 0;
  let reporter: (() => ProcessReport) | undefined;
  let closed = false;
  const connection: Connection = await runtime.connect({ transport: "unix", path }, {
    onData: (chunk) => {
      for (const message of decoder.push(text.decode(chunk, { stream: true }))) {
        if (message.type === "report") beat();
        else pending.get(message.id)?.(message.status ?? undefined);
      }
    },
    onDrain: () => {},
    onClose: () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      for (const answer of pending.values()) answer(undefined);
      onLost();
    },
  });
  const send = (message: WorkerMessage): void => {
    if (!closed) connection.write([encoder.encode(encodeMessage(message))]);
  };
  send({ type: "hello", token: runtime.env(TOKEN_ENV) ?? "" });
  // One synchronous write per request, overwriting the last from byte 0: it has left by the time a
  // handler could block the loop, on every runtime, and the manager reads it only to name a hang.
  const nowPath = runtime.env(NOW_ENV);
  const nowFd = nowPath ? openSync(nowPath, "r+") : -1;
  const nowBytes = new Uint8Array(512);
  let served = 0;
  let next = 0;
  const inFlight = new Map<number, { method: string; uri: string; start: number }>();
  const beat = (): void => {
    let oldest: InFlight | undefined;
    const now = Date.now();
    // Map order is insertion order: the first entry is the oldest.
    for (const request of inFlight.values()) {
      oldest = { method: request.method, uri: request.uri, ageMs: now - request.start };
      break;
    }
    const report = reporter?.();
    send({ type: "beat", served, rss: process.memoryUsage.rss(), ...(oldest ? { oldest } : {}), ...(report ? { report } : {}) });
  };
  const timer = setInterval(beat, HEARTBEAT_MS);
  beat();
  const finish = (id: number): void => {
    if (inFlight.delete(id)) served++;
  };
  return {
    track: (handler) => (request, ...rest) => {
      const id = next++;
      const uri = requestUri(request, rest[0]);
      const start = Date.now();
      inFlight.set(id, { method: request.method, uri, start });
      if (nowFd >= 0) writeSync(nowFd, nowBytes, 0, encoder.encodeInto(encodeNowRecord(start, request.method, uri), nowBytes).written, 0);
      let result;
      try {
        result = handler(request, ...rest);
      } catch (error) {
        finish(id);
        throw error;
      }
      if (result instanceof Promise) result.then(() => finish(id), () => finish(id));
      else finish(id);
      return result;
    },
    ready: (report) => {
      reporter = report;
      send({ type: "ready" });
      beat();
    },
    poolStatus: (report) => {
      if (closed) return Promise.resolve(undefined);
      const id = ++statusIds;
      return new Promise((resolve) => {
        const timer = setTimeout(() => answer(undefined), STATUS_TIMEOUT_MS);
        const answer = (status: PoolStatus | undefined): void => {
          clearTimeout(timer);
          pending.delete(id);
          resolve(status);
        };
        pending.set(id, answer);
        send({ type: "status", id, report });
      });
    },
    close: () => {
      if (!closed) beat();
      closed = true;
      clearInterval(timer);
      connection.end();
    },
  };
}
