/**
 * The worker's side of the control socket: `fcgi serve` started by a manager (FCGI_MANAGER names
 * the socket) says hello, then sends a heartbeat every 250 ms from its event loop, with its served
 * count, its memory and its oldest request in flight; a blocked loop sends none, which is how the
 * manager sees a hang. If the manager goes away, the worker stops (nothing outlives the pool).
 * @module
 */
import { detectAdapter } from "../runtime/index.ts";
import type { Connection } from "../socket.ts";
import { encodeMessage, HEARTBEAT_MS, type InFlight, type WorkerMessage } from "./messages.ts";

/** The environment variable holding the manager's control socket path. */
export const MANAGER_ENV = "FCGI_MANAGER";
/** The environment variable holding the token that names this worker to its manager. */
export const TOKEN_ENV = "FCGI_WORKER_TOKEN";

/** What a worker started by a manager reports to it. */
export interface ManagerLink {
  /** Wraps a handler so the request is recorded before it runs (a handler that spins at once is still named). */
  track<A extends unknown[], R>(handler: (request: Request, ...rest: A) => R): (request: Request, ...rest: A) => R;
  /** Tells the manager the worker listens. */
  ready(): void;
  /** Stops the heartbeat and closes the link. */
  close(): void;
}

/** The path and query of a request URL, cut to 200 characters for the manager's log. */
function uriOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return (start === -1 ? "/" : url.slice(start)).slice(0, 200);
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
  let closed = false;
  const connection: Connection = await runtime.connect({ transport: "unix", path }, {
    onData: () => {},
    onDrain: () => {},
    onClose: () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      onLost();
    },
  });
  const send = (message: WorkerMessage): void => {
    if (!closed) connection.write([encoder.encode(encodeMessage(message))]);
  };
  send({ type: "hello", token: runtime.env(TOKEN_ENV) ?? "" });
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
    send(oldest ? { type: "beat", served, rss: process.memoryUsage.rss(), oldest } : { type: "beat", served, rss: process.memoryUsage.rss() });
  };
  const timer = setInterval(beat, HEARTBEAT_MS);
  beat();
  const finish = (id: number): void => {
    if (inFlight.delete(id)) served++;
  };
  return {
    track: (handler) => (request, ...rest) => {
      const id = next++;
      const uri = uriOf(request.url);
      inFlight.set(id, { method: request.method, uri, start: Date.now() });
      // Written now (the runtimes write to an idle socket at once): if the handler blocks the
      // event loop, no heartbeat will name the request later.
      send({ type: "begin", method: request.method, uri });
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
    ready: () => {
      send({ type: "ready" });
      beat();
    },
    close: () => {
      closed = true;
      clearInterval(timer);
      connection.end();
    },
  };
}
