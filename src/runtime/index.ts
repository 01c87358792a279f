/**
 * Picks the socket adapter: the one place that asks which runtime this is. Adapters are loaded
 * on first use (dynamic import), so Node never parses the Deno or Bun adapter and vice versa;
 * that is why both functions return a Promise.
 *
 * What every adapter does beyond the interface's words:
 * - `onDrain` and `onClose` are never called from inside `write()`, `end()` or `destroy()`;
 *   `onClose` gets the error given to `destroy(error)`, or the socket's own (ECONNRESET, EPIPE).
 * - `write()` after `end()`/`destroy()`/close drops the bytes and returns false.
 * - A handler that throws (or an `accept` callback) destroys that connection only, with that error.
 * - A peer that ends its side makes the connection end too, after queued bytes are flushed.
 * - Listen and connect failures are Errors with an errno-style `code` and the address in the message.
 * - Unix sockets: a stale socket file is replaced, a live one is EADDRINUSE, a non-socket file is
 *   never removed; `mode` is applied after bind; the file is removed on close if still ours.
 * - An inherited fd (0, FCGI_LISTENSOCK_FILENO, or systemd's from 3 on) goes through `node:net` on all
 *   three runtimes; the Listener's address is then the real TCP address, or `{ transport: "fd", fd }` for a Unix socket.
 * @module
 */
import { FCGI_LISTENSOCK_FILENO, type SocketAddress } from "../socket.ts";
import type { ConnectOptions, Runtime, RuntimeAdapter } from "./types.ts";

/** The adapters by name. */
export type RuntimeName = Runtime["name"];

declare const Deno: unknown;
declare const Bun: unknown;

/** The runtime this code runs on. Deno and Bun also provide `node:net`, so they are checked first. */
export function currentRuntimeName(): RuntimeName {
  if (typeof Deno !== "undefined") return "deno";
  if (typeof Bun !== "undefined") return "bun";
  return "node";
}

/**
 * The adapter for the runtime this code runs on: Deno's and Bun's native sockets there, `node:net` on Node.
 *
 * @example
 * ```ts
 * import { detectRuntime } from "fcgi";
 *
 * const runtime = await detectRuntime();
 * const listener = await runtime.listen({ transport: "tcp", hostname: "127.0.0.1", port: 9000 }, (connection) => ({
 *   onData: (chunk) => connection.write([chunk]), // an echo server
 *   onDrain: () => {},
 *   onClose: () => {},
 * }));
 * ```
 */
export function detectRuntime(): Promise<Runtime> {
  return detectAdapter();
}

/** The adapter for the runtime this code runs on, with its HTTP server and environment (inside the package). */
export function detectAdapter(): Promise<RuntimeAdapter> {
  return adapterFor(currentRuntimeName());
}

/**
 * The adapter with this name. "node" works on all three runtimes (Deno and Bun implement
 * `node:net`); "deno" and "bun" need their runtime and reject with an Error elsewhere.
 *
 * @example
 * ```ts
 * const runtime = await getRuntime("node"); // node:net, even on Bun
 * ```
 */
export function getRuntime(name: RuntimeName): Promise<Runtime> {
  return adapterFor(name);
}

/** The adapter with this name, as {@link getRuntime} picks it, with its HTTP server and environment (inside the package). */
export async function adapterFor(name: RuntimeName): Promise<RuntimeAdapter> {
  const current = currentRuntimeName();
  switch (name) {
    case "node":
      return (await import("./node.ts")).nodeRuntime;
    case "deno":
      if (current !== "deno") throw new Error(`the "deno" socket adapter needs Deno; this is ${current} (use "${current}" or "node")`);
      return (await import("./deno.ts")).denoRuntime;
    case "bun":
      if (current !== "bun") throw new Error(`the "bun" socket adapter needs Bun; this is ${current} (use "${current}" or "node")`);
      return (await import("./bun.ts")).bunRuntime;
    default:
      throw new TypeError(`unknown runtime ${JSON.stringify(name)}: expected "node", "deno" or "bun"`);
  }
}

/** `runtime` with `options` given to every `connect()` (a Client's TLS settings, say). */
export function connectingWith(runtime: Runtime, options: ConnectOptions): Runtime {
  return {
    name: runtime.name,
    listen: (address, accept, listenOptions) => runtime.listen(address, accept, listenOptions),
    connect: (address, handlers) => runtime.connect(address, handlers, options),
  };
}

/** The listening socket a web server or spawn-fcgi hands the application. */
const INHERITED: SocketAddress = { transport: "fd", fd: FCGI_LISTENSOCK_FILENO };
/** SD_LISTEN_FDS_START: systemd socket activation passes its sockets from this fd on. */
const SD_LISTEN_FDS_START = 3;
/** The most sockets taken from LISTEN_FDS. */
const MAX_LISTEN_FDS = 1024;

/**
 * The sockets systemd passed (LISTEN_FDS of them from fd 3, when LISTEN_PID is this process), else
 * fd 0. As sd_listen_fds(unset=1) does, the variables are removed, so no child takes them for its own.
 */
export function inheritedSockets(host: RuntimeAdapter): SocketAddress[] {
  const pid = host.env("LISTEN_PID");
  const count = host.env("LISTEN_FDS");
  if (pid === undefined || count === undefined) return [INHERITED];
  for (const name of ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]) host.unsetEnv(name);
  // Set for another process (the one that started this one): not ours to take.
  if (pid.trim() !== String(host.pid())) return [INHERITED];
  const sockets = /^[0-9]{1,9}$/.test(count.trim()) ? Number(count) : NaN;
  // Each fd must be open anyway: a count beyond any descriptor limit is a broken environment, not a list to build.
  if (!(sockets <= MAX_LISTEN_FDS)) throw new TypeError(`LISTEN_FDS=${JSON.stringify(count)} is not a number of sockets from 0 to ${MAX_LISTEN_FDS} (systemd socket activation)`);
  if (sockets === 0) return [INHERITED];
  return Array.from({ length: sockets }, (_, i): SocketAddress => ({ transport: "fd", fd: SD_LISTEN_FDS_START + i }));
}
