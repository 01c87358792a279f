/**
 * What the status page shows: the pool's counters and one row per process, with PHP-FPM's fields
 * (so that its dashboards and exporters read them) and the ones a JavaScript pool adds. Plain
 * data: the app side and the process manager fill it in, src/status/format.ts writes it out.
 * @module
 */

/** Why the process manager replaced a worker. */
export type RestartCause = "crash" | "hang" | "recycle" | "reload";

/** The restart causes, in the order the status page lists them. */
export const RESTART_CAUSES: readonly RestartCause[] = ["crash", "hang", "recycle", "reload"];

/** One process of the pool (a worker, or the one process of a server without workers). */
export interface ProcessStatus {
  /** Its process id. */
  readonly pid: number;
  /** "Idle" when no request runs (the status request itself aside), else "Running". */
  readonly state: "Idle" | "Running";
  /** When it started (ms since the epoch). */
  readonly startTime: number;
  /** Requests it has accepted, this status request included. */
  readonly requests: number;
  /** How long the current request has run, or how long the last one took (µs, as PHP-FPM). */
  readonly requestDuration: number;
  /** The current or last request's method ("-" before the first). */
  readonly requestMethod: string;
  /** The current or last request's REQUEST_URI ("-" before the first). */
  readonly requestUri: string;
  /** The current or last request's CONTENT_LENGTH (0 when none). */
  readonly contentLength: number;
  /** The current or last request's REMOTE_USER ("-" when none). */
  readonly user: string;
  /** The current or last request's SCRIPT_FILENAME ("-" when none). */
  readonly script: string;
  /**
   * CPU use over the last sampling second, in percent of one core. (PHP-FPM measures its last
   * request; a JavaScript process runs many requests at once, so the process's recent use is what
   * can be measured honestly.)
   */
  readonly lastRequestCpu: number;
  /** Resident memory at the last sample, in bytes (PHP-FPM: the last request's peak). */
  readonly lastRequestMemory: number;
  /** Requests running now, the status request aside. */
  readonly requestsInFlight: number;
  /** FastCGI connections open now. */
  readonly connectionsOpen: number;
  /** The event loop's worst delay over the last sampling second, in milliseconds. */
  readonly eventLoopDelay: number;
}

/** The whole pool, as one status page shows it. */
export interface PoolStatus {
  /** The pool's name (`--pool-name`, default "fcgi"). */
  readonly pool: string;
  /** "static" for a pool of workers, "single" for one process without a manager. */
  readonly processManager: string;
  /** When the pool (or the single process) started (ms since the epoch). */
  readonly startTime: number;
  /** When this snapshot was taken (ms since the epoch). */
  readonly now: number;
  /** Requests accepted since the start, status requests included (PHP-FPM's "accepted conn"). */
  readonly acceptedConn: number;
  /**
   * Connections waiting in the listening socket's accept queue; null where the platform does not
   * expose it (Unix sockets, systems without /proc/net/tcp).
   */
  readonly listenQueue: number | null;
  /** The most `listenQueue` has been, as sampled since the start. */
  readonly maxListenQueue: number | null;
  /** The accept queue's size (the listen backlog); null where not exposed. */
  readonly listenQueueLen: number | null;
  /** Processes with no request running. */
  readonly idleProcesses: number;
  /** Processes running a request. */
  readonly activeProcesses: number;
  /** idle + active. */
  readonly totalProcesses: number;
  /** The most processes that were active at once, as sampled since the start. */
  readonly maxActiveProcesses: number;
  /** How many times every process was busy at once, as sampled. */
  readonly maxChildrenReached: number;
  /** Requests that ran past the slow-request time. */
  readonly slowRequests: number;
  /** Requests running now over the pool, the status request aside. */
  readonly requestsInFlight: number;
  /** FastCGI connections open now over the pool. */
  readonly connectionsOpen: number;
  /** Requests and connections refused by a limit, by the limit's name (maxRequests, maxParamsBytes, …). */
  readonly refused: Readonly<Record<string, number>>;
  /** Workers replaced, by cause (all 0 without a pool). */
  readonly restarts: Readonly<Record<RestartCause, number>>;
  /** One row per process. */
  readonly processes: readonly ProcessStatus[];
}
