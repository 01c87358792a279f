/**
 * A first-in first-out queue with O(1) shift: an array and the index of its head. `Array#shift`
 * moves every element, which an event, body or request queue under load cannot afford.
 * @module
 */

/** The array of every empty queue: an idle connection's queues hold no array of their own. Frozen, so a push to it would throw. */
const NONE: never[] = Object.freeze([]) as never[];

/** A FIFO queue; the array is compacted when it empties or when most of it is consumed. */
export class Queue<T> {
  #items: (T | undefined)[] = NONE;
  #head = 0;

  /** How many items are waiting. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds an item at the tail. */
  push(item: T): void {
    if (this.#items === NONE) this.#items = [item];
    else this.#items.push(item);
  }

  /** Puts an item back at the head (it will be the next one shifted). */
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else if (this.#items === NONE) this.#items = [item];
    else this.#items.unshift(item);
  }

  /** The item at the head, without taking it. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Takes the item at the head, or undefined when empty. */
  shift(): T | undefined {
    const items = this.#items;
    if (this.#head === items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined; // let it be collected now, not at the next compaction
    if (this.#head === items.length) {
      this.#items = NONE;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 > items.length) {
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Takes every waiting item, in order, and leaves the queue empty. */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.clear();
    return items;
  }

  /** Drops every waiting item. */
  clear(): void {
    this.#items = NONE;
    this.#head = 0;
  }

  /** The waiting items, head first, without taking them. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}
