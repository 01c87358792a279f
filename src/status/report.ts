/**
 * One process's part of the status page (a {@link ProcessReport}), and how a page is put together
 * from the reports of every process: the one process of a server without workers, or the workers
 * of a pool plus what the manager alone knows (restarts, the counts of workers gone).
 * @module
 */
import { RESTART_CAUSES, type PoolStatus, type ProcessStatus, type RestartCause } from "./types.ts";

/** What one process reports about itself: its row and its counters since it started. */
export interface ProcessReport {
  /** Its row of the page. */
  readonly process: ProcessStatus;
  /** Requests it accepted, status requests included. */
  readonly acceptedConn: number;
  /** Requests it logged as slow. */
  readonly slowRequests: number;
  /** Requests and connections it refused, by limit. */
  readonly refused: Readonly<Record<string, number>>;
}

/** Counters that outlive a process: what the workers that exited had counted. */
export interface RetiredCounts {
  acceptedConn: number;
  slowRequests: number;
  refused: Record<string, number>;
}

/** The accept queue of a listening socket: its length now and its size (null: not exposed). */
export interface ListenQueue {
  readonly queue: number | null;
  readonly len: number | null;
}

/** What the page shows beyond the processes' own reports. */
export interface PoolFacts {
  readonly pool: string;
  readonly processManager: string;
  readonly startTime: number;
  readonly now: number;
  readonly listen: ListenQueue;
  readonly maxListenQueue: number | null;
  readonly maxActiveProcesses: number;
  readonly maxChildrenReached: number;
  readonly restarts: Readonly<Record<RestartCause, number>>;
  /** Counters of processes gone (a pool's exited workers). */
  readonly retired?: RetiredCounts;
}

/** No restarts: a server without a manager. */
export const NO_RESTARTS: Readonly<Record<RestartCause, number>> = Object.freeze(
  Object.fromEntries(RESTART_CAUSES.map((cause) => [cause, 0])) as Record<RestartCause, number>,
);

/** An empty {@link RetiredCounts}. */
export function noRetired(): RetiredCounts {
  return { acceptedConn: 0, slowRequests: 0, refused: {} };
}

/** Adds `from`'s refusals into `into`. */
export function addRefused(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [kind, n] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + n;
}

/** Adds the counters of a process that is gone to `retired`. */
export function retire(retired: RetiredCounts, report: ProcessReport): void {
  retired.acceptedConn += report.acceptedConn;
  retired.slowRequests += report.slowRequests;
  addRefused(retired.refused, report.refused);
}

/** The page: the facts, plus the sums and rows of the reports (one per live process). */
export function poolStatus(facts: PoolFacts, reports: readonly ProcessReport[]): PoolStatus {
  const retired = facts.retired ?? noRetired();
  const refused: Record<string, number> = { ...retired.refused };
  let acceptedConn = retired.acceptedConn;
  let slowRequests = retired.slowRequests;
  let active = 0;
  let requestsInFlight = 0;
  let connectionsOpen = 0;
  for (const report of reports) {
    acceptedConn += report.acceptedConn;
    slowRequests += report.slowRequests;
    addRefused(refused, report.refused);
    if (report.process.state === "Running") active++;
    requestsInFlight += report.process.requestsInFlight;
    connectionsOpen += report.process.connectionsOpen;
  }
  return {
    pool: facts.pool,
    processManager: facts.processManager,
    startTime: facts.startTime,
    now: facts.now,
    acceptedConn,
    listenQueue: facts.listen.queue,
    maxListenQueue: facts.listen.queue === null ? null : Math.max(facts.maxListenQueue ?? 0, facts.listen.queue),
    listenQueueLen: facts.listen.len,
    idleProcesses: reports.length - active,
    activeProcesses: active,
    totalProcesses: reports.length,
    maxActiveProcesses: Math.max(facts.maxActiveProcesses, active),
    maxChildrenReached: facts.maxChildrenReached,
    slowRequests,
    requestsInFlight,
    connectionsOpen,
    refused,
    restarts: { ...facts.restarts },
    processes: reports.map((r) => r.process),
  };
}
