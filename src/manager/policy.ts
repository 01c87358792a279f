/**
 * The process manager's decisions, without IO: when to restart a crashed worker, when many
 * crashes are an emergency, and after how many requests a worker is recycled.
 * @module
 */

/** The first restart delay of a crash loop, and the longest. */
export const BACKOFF = { firstMs: 100, maxMs: 10_000 } as const;

/** A worker that exits sooner than this after its start, or before it was ready, is crash-looping. */
export const CRASH_LOOP_MS = 1000;

/** PHP-FPM's emergency_restart_threshold and interval: this many crashes within the window are logged loudly. */
export const EMERGENCY = { crashes: 10, windowMs: 60_000 } as const;

/** How far recycling limits spread around `--recycle-after`, so workers do not recycle together. */
export const RECYCLE_JITTER = 0.1;

/**
 * The delay before restarting a worker after its `failures`-th crash in a row: none after a
 * worker that ran a while (failures 0), then 100 ms doubling up to 10 s.
 */
export function restartDelay(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** Math.min(failures - 1, 30));
}

/**
 * True when an exit counts as a crash loop: before the worker was ready, or too soon after start.
 * A ready worker that exits with status 0 drained on a SIGTERM from outside (an operator, a
 * deploy script): never a crash, however young.
 */
export function isCrashLoop(livedMs: number, wasReady: boolean, exitedCleanly: boolean): boolean {
  if (wasReady && exitedCleanly) return false;
  return !wasReady || livedMs < CRASH_LOOP_MS;
}

/** Counts crashes in a sliding window and says once per window when they reach the threshold. */
export class CrashWindow {
  readonly #limit: number;
  readonly #windowMs: number;
  #times: number[] = [];
  #reportedAt = -Infinity;

  constructor(limit: number = EMERGENCY.crashes, windowMs: number = EMERGENCY.windowMs) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Records a crash at `now`; returns the number of crashes in the window when it reached the limit (and was not yet reported in this window), else 0. */
  record(now: number): number {
    this.#times = this.#times.filter((t) => now - t < this.#windowMs);
    this.#times.push(now);
    if (this.#times.length < this.#limit || now - this.#reportedAt < this.#windowMs) return 0;
    this.#reportedAt = now;
    return this.#times.length;
  }
}

/**
 * One worker's recycling limit: `base` requests spread by ±{@link RECYCLE_JITTER}; `random` is in
 * [0, 1) (Math.random() in the manager, fixed in tests). Never below 1.
 */
export function recycleLimit(base: number, random: number): number {
  const spread = Math.floor(base * RECYCLE_JITTER);
  return Math.max(1, base - spread + Math.floor(random * (2 * spread + 1)));
}

/** Why a worker should be recycled now, or undefined. */
export function recycleReason(served: number, limit: number | undefined, rss: number, maxRss: number | undefined): string | undefined {
  if (limit !== undefined && served >= limit) return `served ${served} requests (limit ${limit})`;
  if (maxRss !== undefined && rss > maxRss) return `resident memory ${formatBytes(rss)} is over ${formatBytes(maxRss)}`;
  return undefined;
}

/** Bytes in the largest whole unit, for log lines. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
