/**
 * The name-value pair decoder (PARAMS, GET_VALUES, GET_VALUES_RESULT) and the lazy {@link Params}
 * it produces. The WebAssembly scanner (wasm/pairs.ts) checks every declared length against the
 * limits before anything is sliced and recognises well-known names; values are decoded to strings
 * only when read.
 * @module
 */

import { FastCGIError } from "../errors.ts";
import type { PairLimits } from "./types.ts";
import { heap, type Codec } from "./wasm.ts";

const DEFAULT_MAX_NAME_LENGTH = 1024;
const DEFAULT_MAX_VALUE_LENGTH = 65536;
const DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024;
/** A 31-bit length never exceeds this, so larger name/value limits are the same as this one. */
const MAX_LENGTH = 0x7fffffff;

// Results and entry layout of scanPairs (wasm/pairs.ts).
const PAIR_NAME_TOO_LONG = -1;
const PAIR_VALUE_TOO_LONG = -2;
const PAIR_WORDS = 5;
const NAME_UNKNOWN = -1;
const NAME_UNRESOLVED = -2;

let wellKnown: readonly string[] | undefined;
let wellKnownIds: Map<string, number> | undefined;

function nameIds(c: Codec): Map<string, number> {
  if (wellKnownIds === undefined) {
    wellKnown = c.names;
    wellKnownIds = new Map(c.names.map((name, id) => [name, id]));
  }
  return wellKnownIds;
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

/**
 * Decodes a name-value stream incrementally: push() the content of each record (pieces may cut a
 * pair anywhere, even inside its length bytes), then end() returns the {@link Params}.
 *
 * Errors (FastCGIError), checked in this order: on push, PARAMS_TOO_LARGE if the bytes so far
 * plus this piece exceed maxTotalBytes; then, for each pair as soon as both its lengths are known,
 * NAME_TOO_LONG, VALUE_TOO_LONG, or PARAMS_TOO_LARGE if the pair would end past maxTotalBytes;
 * on end, PAIR_TRUNCATED if the stream stops inside a pair. After an error every call rethrows it.
 *
 * The decoder copies the bytes it keeps, so pieces may be views of buffers the caller reuses.
 *
 * @example
 * ```ts
 * const pairs = new PairDecoder({ maxTotalBytes: 64 * 1024 });
 * pairs.push(paramsContent);       // once per PARAMS record
 * const params = pairs.end();      // at the empty PARAMS record
 * params.get("REQUEST_URI");       // "/index.php?x=1"
 * ```
 */
export class PairDecoder {
  readonly #maxNameLength: number;
  readonly #maxValueLength: number;
  readonly #maxTotalBytes: number;
  // Every byte pushed so far (a copy), and the pairs found in it, PAIR_WORDS i32 each.
  #bytes: Uint8Array = EMPTY_BYTES;
  #total = 0;
  #table: Int32Array = EMPTY_TABLE;
  #count = 0;
  // The scanner's state between pushes (STATE slots of wasm/pairs.ts).
  #phase = 0;
  #need = 0;
  #acc = 0;
  #nameLength = 0;
  #pairStart = 0;
  #leftLow = 0;
  #leftHigh = 0;
  #failed: FastCGIError | undefined;
  #params: Params | undefined;

  /** Limits default to 1024-byte names, 65536-byte values and 1 MiB in all. */
  constructor(limits?: PairLimits) {
    this.#maxNameLength = Math.min(limit(limits?.maxNameLength, DEFAULT_MAX_NAME_LENGTH, "maxNameLength"), MAX_LENGTH);
    this.#maxValueLength = Math.min(limit(limits?.maxValueLength, DEFAULT_MAX_VALUE_LENGTH, "maxValueLength"), MAX_LENGTH);
    this.#maxTotalBytes = limit(limits?.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES, "maxTotalBytes");
  }

  /** Adds the next piece of the stream (the content of a PARAMS record, or part of it). */
  push(piece: Uint8Array): void {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) throw new Error("PairDecoder.push() after end()");
    const length = piece.length;
    const base = this.#total;
    if (base + length > this.#maxTotalBytes) {
      this.#fail("PARAMS_TOO_LARGE", `name-value stream exceeds maxTotalBytes (${this.#maxTotalBytes})`, "maxTotalBytes");
    }
    if (length === 0) return;
    this.#keep(piece);
    const c = heap();
    const window = c.PAIR_WINDOW_SIZE;
    for (let from = 0; from < length; from += window) {
      const to = Math.min(from + window, length);
      c.u8.set(from === 0 && to === length ? piece : piece.subarray(from, to), c.PAIR_WINDOW);
      const i32 = c.i32;
      const s = c.STATE >> 2;
      i32[s] = this.#phase;
      i32[s + 1] = this.#need;
      i32[s + 2] = this.#acc;
      i32[s + 3] = this.#nameLength;
      i32[s + 4] = this.#pairStart;
      i32[s + 6] = this.#leftLow;
      i32[s + 7] = this.#leftHigh;
      const n = c.scanPairs(to - from, base + from, this.#maxNameLength, this.#maxValueLength, this.#maxTotalBytes);
      if (n < 0) {
        if (n === PAIR_NAME_TOO_LONG) this.#fail("NAME_TOO_LONG", `parameter name longer than maxNameLength (${this.#maxNameLength})`, "maxNameLength");
        if (n === PAIR_VALUE_TOO_LONG) this.#fail("VALUE_TOO_LONG", `parameter value longer than maxValueLength (${this.#maxValueLength})`, "maxValueLength");
        this.#fail("PARAMS_TOO_LARGE", `name-value stream exceeds maxTotalBytes (${this.#maxTotalBytes})`, "maxTotalBytes");
      }
      this.#phase = i32[s];
      this.#need = i32[s + 1];
      this.#acc = i32[s + 2];
      this.#nameLength = i32[s + 3];
      this.#pairStart = i32[s + 4];
      this.#leftLow = i32[s + 6];
      this.#leftHigh = i32[s + 7];
      if (n > 0) this.#append(i32, c.PAIRS >> 2, n);
    }
  }

  /** Ends the stream and returns its pairs; throws PAIR_TRUNCATED if it stopped inside a pair. */
  end(): Params {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) return this.#params;
    if (this.#phase !== 0) {
      this.#fail("PAIR_TRUNCATED", "name-value stream ends inside a pair");
    }
    const table = this.#table;
    const ids = nameIds(heap());
    // A name cut between two pushes was not looked up by the scanner; do it here.
    for (let k = 4; k < this.#count * PAIR_WORDS; k += PAIR_WORDS) {
      if (table[k] === NAME_UNRESOLVED) {
        table[k] = ids.get(latin1(this.#bytes, table[k - 4], table[k - 3])) ?? NAME_UNKNOWN;
      }
    }
    this.#params = new Params(this.#bytes, table, this.#count);
    return this.#params;
  }

  #fail(code: "PARAMS_TOO_LARGE" | "NAME_TOO_LONG" | "VALUE_TOO_LONG" | "PAIR_TRUNCATED", message: string, limit?: string): never {
    this.#failed = new FastCGIError(code, message, { limit });
    throw this.#failed;
  }

  // Keeps a copy of the piece: pieces are views of chunks the caller may reuse.
  #keep(piece: Uint8Array): void {
    const total = this.#total + piece.length;
    if (this.#total === 0) {
      this.#bytes = piece.slice();
    } else {
      if (total > this.#bytes.length) {
        const grown = new Uint8Array(Math.max(total, this.#bytes.length * 2));
        grown.set(this.#bytes.subarray(0, this.#total));
        this.#bytes = grown;
      }
      this.#bytes.set(piece, this.#total);
    }
    this.#total = total;
  }

  #append(i32: Int32Array, from: number, n: number): void {
    const words = n * PAIR_WORDS;
    if (this.#count === 0) {
      this.#table = i32.slice(from, from + words);
    } else {
      const used = this.#count * PAIR_WORDS;
      if (used + words > this.#table.length) {
        const grown = new Int32Array(Math.max(used + words, this.#table.length * 2));
        grown.set(this.#table.subarray(0, used));
        this.#table = grown;
      }
      this.#table.set(i32.subarray(from, from + words), used);
    }
    this.#count += n;
  }
}

const EMPTY_BYTES = new Uint8Array(0);
const EMPTY_TABLE = new Int32Array(0);

/**
 * Decodes bytes as latin1: one character per byte, 0x80-0x9F included (TextDecoder("latin1") is
 * windows-1252 and would map those to other characters).
 */
function latin1(bytes: Uint8Array, start: number, length: number): string {
  if (length <= 24) {
    let s = "";
    for (let i = start; i < start + length; i++) s += String.fromCharCode(bytes[i]);
    return s;
  }
  let s = "";
  for (let i = start; i < start + length; i += 8192) {
    const part = bytes.subarray(i, Math.min(i + 8192, start + length));
    s += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return s;
}

/**
 * The name-value pairs of a PARAMS (or GET_VALUES) stream. Behaves like a read-only
 * `Map<string, string>` built from the pairs in order: the last of duplicate names wins, and
 * names iterate in order of first appearance. Names and values are bytes, decoded as latin1
 * (one character per byte) when read; getBytes() gives the raw bytes, e.g. for UTF-8 paths.
 *
 * @example
 * ```ts
 * const params = decoder.end();
 * const method = params.get("REQUEST_METHOD") ?? "GET";
 * const path = new TextDecoder().decode(params.getBytes("SCRIPT_FILENAME"));
 * ```
 */
export class Params {
  readonly #bytes: Uint8Array;
  readonly #table: Int32Array;
  readonly #count: number;
  // name -> index of its last pair, in order of first appearance; built on first need.
  #index: Map<string, number> | undefined;

  /** Wraps a decoder's bytes and pair table; use {@link PairDecoder.end} rather than this. */
  constructor(bytes: Uint8Array, table: Int32Array, count: number) {
    this.#bytes = bytes;
    this.#table = table;
    this.#count = count;
  }

  /** The value of the last pair with this name, decoded as latin1, or undefined. */
  get(name: string): string | undefined {
    const i = this.#find(name);
    if (i < 0) return undefined;
    const t = this.#table;
    return latin1(this.#bytes, t[i + 2], t[i + 3]);
  }

  /** The raw bytes of the last pair's value with this name (a view of this object's copy), or undefined. */
  getBytes(name: string): Uint8Array | undefined {
    const i = this.#find(name);
    if (i < 0) return undefined;
    const t = this.#table;
    return this.#bytes.subarray(t[i + 2], t[i + 2] + t[i + 3]);
  }

  /** Whether a pair with this name exists. */
  has(name: string): boolean {
    return this.#find(name) >= 0;
  }

  /** The number of distinct names. */
  get size(): number {
    return this.#names().size;
  }

  /** [name, value] for each distinct name, in order of first appearance, with the last value. */
  *entries(): IterableIterator<[string, string]> {
    const t = this.#table;
    for (const [name, i] of this.#names()) yield [name, latin1(this.#bytes, t[i + 2], t[i + 3])];
  }

  /** The distinct names, in order of first appearance. */
  keys(): IterableIterator<string> {
    return this.#names().keys();
  }

  /** Same as {@link Params.entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** A plain object of name -> value (own properties only, `__proto__` included as a plain key). */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.entries()) {
      Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  // Index (in table words) of the last pair named `name`, or -1.
  #find(name: string): number {
    const t = this.#table;
    const id = (wellKnownIds ?? nameIds(heap())).get(name);
    if (id !== undefined) {
      for (let k = (this.#count - 1) * PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
        if (t[k + 4] === id) return k;
      }
      return -1;
    }
    // Not a well-known name: compare bytes with the names the scanner did not recognise.
    const bytes = this.#bytes;
    const length = name.length;
    outer: for (let k = (this.#count - 1) * PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
      if (t[k + 4] !== NAME_UNKNOWN || t[k + 1] !== length) continue;
      const at = t[k];
      for (let j = 0; j < length; j++) {
        if (bytes[at + j] !== name.charCodeAt(j)) continue outer;
      }
      return k;
    }
    return -1;
  }

  #names(): Map<string, number> {
    if (this.#index === undefined) {
      nameIds(heap());
      const names = wellKnown!;
      const t = this.#table;
      const index = new Map<string, number>();
      for (let k = 0; k < this.#count * PAIR_WORDS; k += PAIR_WORDS) {
        const id = t[k + 4];
        index.set(id >= 0 ? names[id] : latin1(this.#bytes, t[k], t[k + 1]), k);
      }
      this.#index = index;
    }
    return this.#index;
  }
}
