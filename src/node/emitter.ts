/**
 * What `fcgi serve` recognises as a node:http app, kept apart from the rest of fcgi/node so that
 * telling a fetch-handler module from a node:http one loads neither node:http nor fcgi/node.
 * @module
 */
import type { FastCGIIncomingMessage } from "./incoming.ts";
import type { FastCGIServerResponse } from "./response.ts";

/** What emits `request` events: this module's Server, or a node:http Server never listened. */
export interface RequestEmitter {
  /** Calls the `request` listeners. */
  emit(event: "request", req: FastCGIIncomingMessage, res: FastCGIServerResponse): boolean;
}

/**
 * True for what `fcgi serve` runs as a node:http app: an object with `request` listeners, such
 * as `http.createServer(app)` never listened, or a Server from `createServer()`.
 */
export function isRequestEmitter(value: unknown): value is RequestEmitter {
  const candidate = value as { listenerCount?: unknown; emit?: unknown } | null;
  return typeof candidate === "object" && candidate !== null && typeof candidate.emit === "function" &&
    typeof candidate.listenerCount === "function" && (candidate.listenerCount as (event: string) => number)("request") > 0;
}
