/**
 * `fcgi serve --workers`: the flags of the process manager, the manager's start, and a worker's
 * link to its manager (wiring only; the manager lives in src/manager/).
 * @module
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { formatAddress } from "../address.ts";
import type { Handler, ServeOptions } from "../app/types.ts";
import { runPool } from "../manager/pool.ts";
import { linkToManager, type ManagerLink } from "../manager/worker.ts";
import { eachArg, UsageError } from "./args.ts";

/** The manager's flags of `fcgi serve`. */
export interface PoolFlags {
  workers?: number;
  recycleAfter?: number;
  maxRss?: number;
}

type Parse = (flag: string, text: string) => number;

/** Takes one manager flag into `pool`; false when `flag` is not one. */
export function poolFlag(pool: PoolFlags, flag: string, take: () => string, parse: { count: Parse; size: Parse; time: Parse }): boolean {
  if (flag === "--workers") {
    const text = take();
    // Node ≥ 18.14 counts a cgroup CPU quota in availableParallelism(); Bun and Deno give the CPUs they may run on.
    pool.workers = text === "auto" ? availableParallelism() : parse.count(flag, text);
  } else if (flag === "--recycle-after") pool.recycleAfter = parse.count(flag, take());
  else if (flag === "--max-rss") pool.maxRss = parse.size(flag, take());
  else return false;
  return true;
}

/** Flags the manager uses itself and does not pass on to its workers. */
const MANAGER_ONLY = new Set(["--workers", "--recycle-after", "--max-rss", "--listen", "--socket-mode"]);

/** The `fcgi serve` options each worker gets: the command line's, without the manager's own and the module. */
function workerArgs(args: string[]): string[] {
  const kept: string[] = [];
  eachArg(
    args,
    (flag, take) => {
      // The boolean flags are the --no-… ones; every other flag has a value.
      if (flag.startsWith("--no-")) kept.push(flag);
      else {
        const value = take();
        if (!MANAGER_ONLY.has(flag)) kept.push(`${flag}=${value}`);
      }
      return true;
    },
    () => {},
  );
  return kept;
}

/** Runs the pool for `fcgi serve --workers` and exits with its status. */
export async function runPoolCommand(
  args: string[],
  parsed: { module: string; options: Omit<ServeOptions, "fetch" | "authorize" | "filter">; pool: PoolFlags },
): Promise<number> {
  const { options, pool } = parsed;
  const listen = options.listen === undefined ? [] : Array.isArray(options.listen) ? options.listen : [options.listen];
  if (listen.length > 1) {
    console.error("fcgi serve: --workers takes one --listen address (or the socket on fd 0)");
    return 2;
  }
  let running;
  try {
    running = await runPool({
      module: resolve(process.cwd(), parsed.module),
      workers: pool.workers!,
      listen: listen[0] === undefined || typeof listen[0] === "string" ? listen[0] : formatAddress(listen[0]),
      socketMode: options.socketMode,
      serveArgs: workerArgs(args),
      recycleAfter: pool.recycleAfter,
      maxRss: pool.maxRss,
      // A worker whose event loop is blocked past the request timeout is killed: serve() in the
      // worker ends async hangs itself, the manager the ones that stop its heartbeat.
      heartbeatTimeout: options.requestTimeout,
      poolName: options.poolName,
      slowRequest: options.slowRequest,
      closeTimeout: options.closeTimeout,
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    console.error(`fcgi serve: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  const code = await running.finished;
  // Nothing of the manager's may keep it alive once the pool has stopped.
  process.exit(code);
}

/** The link to the manager when this `fcgi serve` is one of its workers; when the manager is gone, the worker stops gracefully. */
export function workerLink(): Promise<ManagerLink | undefined> {
  return linkToManager(() => process.kill(process.pid, "SIGTERM"));
}

/** The module's handlers, each recorded by the manager link while it runs (unchanged without a link). */
export function trackHandlers<H extends Partial<Record<"fetch" | "authorize" | "filter", Handler>>>(link: ManagerLink | undefined, handlers: H): H {
  if (!link) return handlers;
  const tracked: Partial<Record<"fetch" | "authorize" | "filter", Handler>> = {};
  for (const name of ["fetch", "authorize", "filter"] as const) {
    const handler = handlers[name];
    if (handler) tracked[name] = link.track(handler);
  }
  return tracked as H;
}
