/**
 * Reused stores for the copies a Response makes of large byte bodies.
 *
 * `new Response(bytes)` copies `bytes` (the Fetch spec's rule: a later change to them must not
 * show). Allocating a fresh megabyte for every such copy costs more than the copy: page faults,
 * external-memory pressure that brings on collections, and an RSS that rises and falls with the
 * collector. Once the socket has written a copy, nothing can reach it any more (the connection
 * hands it back here), so the next Response may copy into the same store.
 * @module
 */

/** Bodies below this are copied into a store of their own: small allocations are cheap. */
export const POOLED_MIN: number = 32 * 1024;
/** Bodies above this are copied into a store of their own: too rare to keep one around. */
export const POOLED_MAX: number = 8 * 1024 * 1024;
/** Bytes of free stores kept at most; beyond it a store given back is left to the collector. */
export const POOL_LIMIT: number = 32 * 1024 * 1024;

/** How long free stores may stay unused before trim() lets them go. */
export const TRIM_PERIOD: number = 10_000;

const MIN_SHIFT = 15; // log2(POOLED_MIN)
const CLASSES = 9; // POOLED_MIN << 8 === POOLED_MAX

/**
 * Free stores by size class (powers of two from POOLED_MIN to POOLED_MAX). Only stores that nothing
 * else references may be given back; {@link BodyPool.copy} hands out views of stores that only
 * the Response holding them references.
 */
export class BodyPool {
  readonly #free: ArrayBuffer[][] = Array.from({ length: CLASSES }, () => []);
  #freeBytes = 0;
  #usedSinceTrim = false;
  #trimmedAt = 0;
  readonly #limit: number;

  constructor(limit: number = POOL_LIMIT) {
    this.#limit = limit;
  }

  /** Bytes held in free stores. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** A copy of `bytes`, in a reused store when its size is in the pooled range. */
  copy(bytes: Uint8Array): Uint8Array {
    const length = bytes.byteLength;
    if (length < POOLED_MIN || length > POOLED_MAX) return bytes.slice();
    const index = classOf(length);
    this.#usedSinceTrim = true;
    let store = this.#free[index].pop();
    if (store === undefined) store = new ArrayBuffer(POOLED_MIN << index);
    else this.#freeBytes -= store.byteLength;
    const view = new Uint8Array(store, 0, length);
    view.set(bytes);
    return view;
  }

  /**
   * Takes back a store nothing else references any more; false when it is not one this pool
   * keeps (its size is no class size) or the pool is full: the caller may free it otherwise.
   */
  give(store: ArrayBufferLike): boolean {
    const size = store.byteLength;
    if (size < POOLED_MIN || size > POOLED_MAX || (size & (size - 1)) !== 0 || !(store instanceof ArrayBuffer)) return false;
    if (this.#freeBytes + size > this.#limit) return false;
    this.#free[classOf(size)].push(store);
    this.#freeBytes += size;
    return true;
  }

  /**
   * Called often (`now` in ms); every TRIM_PERIOD, lets the collector have every free store when
   * none was taken during the period before: a server that stopped sending large bodies holds none.
   */
  trim(now: number): void {
    if (now - this.#trimmedAt < TRIM_PERIOD) return;
    this.#trimmedAt = now;
    if (!this.#usedSinceTrim && this.#freeBytes > 0) {
      for (const list of this.#free) list.length = 0;
      this.#freeBytes = 0;
    }
    this.#usedSinceTrim = false;
  }
}

function classOf(length: number): number {
  // 32 - clz32(n - 1) is ceil(log2(n)).
  return Math.max(0, 32 - Math.clz32(length - 1) - MIN_SHIFT);
}

/** The pool Responses copy into (Responses are made without a server at hand, so there is one). */
export const bodyPool: BodyPool = new BodyPool();
