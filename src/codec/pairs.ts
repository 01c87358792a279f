/**
 * The name-value pair decoder (PARAMS, GET_VALUES, GET_VALUES_RESULT) and the {@link Params} it
 * produces. The WebAssembly scanner (wasm/pairs.ts) checks every declared length against the limits
 * before anything is sliced and recognises well-known names, so a request's names cost nothing and
 * a value becomes a string (a substring of the stream) only when it is read.
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

// Results and entry layout of scanPairs (wasm/pairs.ts): valueOffset, valueLength, and the name's
// id (>= 0) if it is well-known, else -(nameLength + 1) (the name ends where the value begins).
const PAIR_NAME_TOO_LONG = -1;
const PAIR_VALUE_TOO_LONG = -2;
const PAIR_WORDS = 3;

// Well-known name -> id (the scanner's vocabulary, wasm/vocab.ts), for lookups by name, and back.
// Set on the first PairDecoder push (no Params exists before one), so the module loads lazily.
let wellKnownIds: Map<string, number> | undefined;
let wellKnownNames: readonly string[] = [];

function nameIds(c: Codec): Map<string, number> {
  if (wellKnownIds === undefined) {
    wellKnownNames = c.names;
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

// ---- bytes as latin1 text ----
// The decoder keeps what it was given as a string with one character per byte (latin1). A string
// is the cheapest copy there is on every runtime: one native TextDecoder call, no ArrayBuffer
// (allocating those costs up to a microsecond each on Deno and adds GC pressure on V8), and the
// values come out of it as substrings.
const ascii = new TextDecoder();
// TextDecoder("latin1") is windows-1252 by the Encoding Standard (Deno, Bun; Node 20 decodes true
// ISO-8859-1): bytes 0x80-0x9F may come back as other characters, which FROM_1252 maps back.
const windows1252 = new TextDecoder("windows-1252");
const NOT_LATIN1 = /[^\x00-\xff]/g;
const FROM_1252 = new Map<string, string>();
{
  const high = new Uint8Array(32);
  for (let i = 0; i < 32; i++) high[i] = 0x80 + i;
  const decoded = windows1252.decode(high);
  for (let i = 0; i < 32; i++) FROM_1252.set(decoded[i], String.fromCharCode(0x80 + i));
}

/** Bytes as a latin1 string: every byte, 0x80-0x9F included, one character of the same code. */
function latin1(bytes: Uint8Array, isAscii: boolean): string {
  if (isAscii) return ascii.decode(bytes);
  return windows1252.decode(bytes).replace(NOT_LATIN1, (ch) => FROM_1252.get(ch)!);
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
 * The decoder copies what it keeps, so pieces may be views of buffers the caller reuses.
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
  /** The stream so far, one character per byte. */
  #text = "";
  #total = 0;
  /** The pairs found so far, PAIR_WORDS numbers each. */
  #table: number[] = EMPTY_TABLE;
  #used = 0;
  // The scanner's state between pushes (STATE slots of wasm/pairs.ts), kept only inside a pair:
  // phase 0 is a pair boundary, where the scanner needs nothing but the stream offset.
  #phase = 0;
  #need = 0;
  #acc = 0;
  #nameLength = 0;
  #pairStart = 0;
  #leftLow = 0;
  #leftHigh = 0;
  /** A name may have been cut by a window or push boundary, so end() must look some names up. */
  #split = false;
  #failed: FastCGIError | undefined;
  #params: Params | undefined;

  /** Limits default to 1024-byte names, 65536-byte values and 1 MiB in all. */
  constructor(limits?: PairLimits) {
    if (limits === undefined) {
      this.#maxNameLength = DEFAULT_MAX_NAME_LENGTH;
      this.#maxValueLength = DEFAULT_MAX_VALUE_LENGTH;
      this.#maxTotalBytes = DEFAULT_MAX_TOTAL_BYTES;
    } else {
      this.#maxNameLength = Math.min(limit(limits.maxNameLength, DEFAULT_MAX_NAME_LENGTH, "maxNameLength"), MAX_LENGTH);
      this.#maxValueLength = Math.min(limit(limits.maxValueLength, DEFAULT_MAX_VALUE_LENGTH, "maxValueLength"), MAX_LENGTH);
      this.#maxTotalBytes = limit(limits.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES, "maxTotalBytes");
    }
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
    const c = heap();
    if (wellKnownIds === undefined) nameIds(c);
    const window = c.PAIR_WINDOW_SIZE;
    if (base > 0 || length > window) this.#split = true;
    let isAscii = true;
    for (let from = 0; from < length; from += window) {
      const to = Math.min(from + window, length);
      c.u8.set(from === 0 && to === length ? piece : piece.subarray(from, to), c.PAIR_WINDOW);
      isAscii = this.#scan(c, to - from, base + from) && isAscii;
    }
    // Only now, with every pair in the piece within the limits, is the piece kept.
    const text = latin1(piece, isAscii);
    this.#text = base === 0 ? text : this.#text + text;
    this.#total = base + length;
  }

  /** Ends the stream and returns its pairs; throws PAIR_TRUNCATED if it stopped inside a pair. */
  end(): Params {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) return this.#params;
    if (this.#phase !== 0) {
      this.#fail("PAIR_TRUNCATED", "name-value stream ends inside a pair");
    }
    const table = this.#table;
    if (table.length > this.#used) table.length = this.#used;
    if (this.#split) {
      // A name the scanner saw only part of was reported as unknown: look those up here.
      const ids = nameIds(heap());
      for (let k = 0; k < table.length; k += PAIR_WORDS) {
        if (table[k + 2] < 0) {
          const id = ids.get(this.#text.substring(table[k] + table[k + 2] + 1, table[k]));
          if (id !== undefined) table[k + 2] = id;
        }
      }
    }
    this.#params = new Params(this.#text, table);
    return this.#params;
  }

  // Runs the scanner over the `length` bytes placed in PAIR_WINDOW (stream offset `base`) with
  // this decoder's state swapped in and out, and appends the pairs it found to the table.
  // Returns whether the window was all ASCII.
  #scan(c: Codec, length: number, base: number): boolean {
    const i32 = c.i32;
    const s = c.STATE >> 2;
    const resume = this.#phase !== 0;
    if (resume) {
      i32[s] = this.#phase;
      i32[s + 1] = this.#need;
      i32[s + 2] = this.#acc;
      i32[s + 3] = this.#nameLength;
      i32[s + 4] = this.#pairStart;
      i32[s + 6] = this.#leftLow;
      i32[s + 7] = this.#leftHigh;
    }
    const n = c.scanPairs(length, base, this.#maxNameLength, this.#maxValueLength, this.#maxTotalBytes, resume ? 1 : 0);
    if (n < 0) {
      if (n === PAIR_NAME_TOO_LONG) this.#fail("NAME_TOO_LONG", `parameter name longer than maxNameLength (${this.#maxNameLength})`, "maxNameLength");
      if (n === PAIR_VALUE_TOO_LONG) this.#fail("VALUE_TOO_LONG", `parameter value longer than maxValueLength (${this.#maxValueLength})`, "maxValueLength");
      this.#fail("PARAMS_TOO_LARGE", `name-value stream exceeds maxTotalBytes (${this.#maxTotalBytes})`, "maxTotalBytes");
    }
    this.#phase = i32[s];
    if (this.#phase !== 0) {
      this.#need = i32[s + 1];
      this.#acc = i32[s + 2];
      this.#nameLength = i32[s + 3];
      this.#pairStart = i32[s + 4];
      this.#leftLow = i32[s + 6];
      this.#leftHigh = i32[s + 7];
    }
    if (n > 0) {
      // Into a plain array sized up front (several times cheaper than push() or a typed array,
      // whose allocation alone costs hundreds of nanoseconds on Deno), doubled when it fills.
      const from = c.PAIRS >> 2;
      const words = n * PAIR_WORDS;
      const used = this.#used;
      let table = this.#table;
      if (used + words > table.length) {
        const old = table;
        table = new Array(used === 0 ? words : Math.max(used + words, 2 * used));
        for (let k = 0; k < used; k++) table[k] = old[k];
        this.#table = table;
      }
      for (let k = 0; k < words; k++) table[used + k] = i32[from + k];
      this.#used = used + words;
    }
    return i32[s + 8] !== 0;
  }

  #fail(code: "PARAMS_TOO_LARGE" | "NAME_TOO_LONG" | "VALUE_TOO_LONG" | "PAIR_TRUNCATED", message: string, limit?: string): never {
    this.#failed = new FastCGIError(code, message, { limit });
    throw this.#failed;
  }
}

const EMPTY_TABLE: number[] = [];

/**
 * The name-value pairs of a PARAMS (or GET_VALUES) stream, in stream order, duplicates included.
 * Lookups by name see the last pair of that name. Names and values are bytes, read as latin1
 * strings (one character per byte); getBytes() gives the exact bytes, e.g. of UTF-8 paths.
 *
 * @example
 * ```ts
 * const params = decoder.end();
 * const method = params.get("REQUEST_METHOD") ?? "GET";
 * const path = new TextDecoder().decode(params.getBytes("SCRIPT_FILENAME"));
 * ```
 */
export class Params {
  readonly #text: string;
  readonly #table: readonly number[];

  /**
   * Wraps what a {@link PairDecoder} collected; use {@link PairDecoder.end} rather than this.
   * `text` is the stream, one character per byte; `table` holds three numbers per pair: the
   * value's offset and length, and the well-known name's id or -(nameLength + 1) (the name ends
   * where the value begins).
   */
  constructor(text: string, table: readonly number[]) {
    this.#text = text;
    this.#table = table;
  }

  /** The value of the last pair with this name, as latin1, or undefined. */
  get(name: string): string | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table;
    return this.#text.substring(t[k], t[k] + t[k + 1]);
  }

  /** The exact bytes of the last pair's value with this name (a new copy), or undefined. */
  getBytes(name: string): Uint8Array | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table;
    const out = new Uint8Array(t[k + 1]);
    for (let i = 0; i < out.length; i++) out[i] = this.#text.charCodeAt(t[k] + i);
    return out;
  }

  /** Whether a pair with this name exists. */
  has(name: string): boolean {
    return this.#find(name) >= 0;
  }

  /** The number of pairs, duplicates included. */
  get size(): number {
    return this.#table.length / PAIR_WORDS;
  }

  /** [name, value] of every pair, in stream order. */
  entries(): IterableIterator<[string, string]> {
    // An array's iterator: several times faster than a generator, and requests iterate params.
    const t = this.#table;
    const out: [string, string][] = new Array(t.length / PAIR_WORDS);
    for (let k = 0, i = 0; k < t.length; k += PAIR_WORDS, i++) out[i] = [this.#name(k), this.#text.substring(t[k], t[k] + t[k + 1])];
    return out.values();
  }

  /** The name of every pair, in stream order. */
  keys(): IterableIterator<string> {
    const t = this.#table;
    const out: string[] = new Array(t.length / PAIR_WORDS);
    for (let k = 0, i = 0; k < t.length; k += PAIR_WORDS, i++) out[i] = this.#name(k);
    return out.values();
  }

  /** Same as {@link Params.entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** A plain object of name -> value, the last pair of a name winning; `__proto__` stays a plain own key. */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.entries()) {
      Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  #name(k: number): string {
    const t = this.#table;
    const code = t[k + 2];
    return code >= 0 ? wellKnownNames[code] : this.#text.substring(t[k] + code + 1, t[k]);
  }

  // Index in the table of the last pair named `name`, or -1.
  #find(name: string): number {
    const t = this.#table;
    const id = (wellKnownIds ?? nameIds(heap())).get(name);
    if (id !== undefined) {
      for (let k = t.length - PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
        if (t[k + 2] === id) return k;
      }
      return -1;
    }
    // Not a well-known name: compare with the names the scanner did not recognise.
    const text = this.#text;
    const code = -1 - name.length;
    for (let k = t.length - PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
      if (t[k + 2] === code && text.startsWith(name, t[k] - name.length)) return k;
    }
    return -1;
  }
}
