/**
 * A map from request id to a connection's state for that request. Most connections run one request
 * at a time and most of their life none: a Map costs ~180 bytes even empty, held by every idle
 * kept connection (10 000 of them hold two each). This keeps the one request in two fields and
 * makes a Map only while several run at once.
 * @module
 */

const NONE: readonly never[] = [];

/**
 * Values by request id, in insertion order. The first value lives in a slot; a Map holds those
 * added while the slot is taken, and is dropped once it empties. A value goes into the slot only
 * while no Map exists, so the slot's value is always older than the Map's: slot, then Map, is the
 * insertion order.
 */
export class IdMap<T> {
  #id = -1;
  #value: T | undefined;
  #more: Map<number, T> | undefined;

  /** How many values are held. */
  get size(): number {
    return (this.#id === -1 ? 0 : 1) + (this.#more === undefined ? 0 : this.#more.size);
  }

  /** The value of `id`, or undefined. */
  get(id: number): T | undefined {
    if (id === this.#id) return this.#value;
    return this.#more === undefined ? undefined : this.#more.get(id);
  }

  /** Whether `id` has a value. */
  has(id: number): boolean {
    return id === this.#id || (this.#more !== undefined && this.#more.has(id));
  }

  /** Sets the value of `id` (`id` ≥ 0); an id already held keeps its place in the order. */
  set(id: number, value: T): void {
    if (id === this.#id) {
      this.#value = value;
    } else if (this.#id === -1 && this.#more === undefined) {
      this.#id = id;
      this.#value = value;
    } else {
      (this.#more ??= new Map()).set(id, value);
    }
  }

  /** Removes `id`; true if it was held. */
  delete(id: number): boolean {
    if (id === this.#id) {
      this.#id = -1;
      this.#value = undefined;
      return true;
    }
    const more = this.#more;
    if (more === undefined || !more.delete(id)) return false;
    if (more.size === 0) this.#more = undefined;
    return true;
  }

  /** The values, in insertion order, as an array the caller may keep (changes to the map do not touch it). */
  values(): readonly T[] {
    const more = this.#more;
    if (more === undefined) return this.#id === -1 ? NONE : [this.#value as T];
    const values: T[] = this.#id === -1 ? [] : [this.#value as T];
    for (const value of more.values()) values.push(value);
    return values;
  }

  /** Removes every value. */
  clear(): void {
    this.#id = -1;
    this.#value = undefined;
    this.#more = undefined;
  }
}
