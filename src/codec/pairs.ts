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

// Results and entry layout of scanPairs (wasm/pairs.ts): nameOffset, nameLength, valueLength, nameId.
const PAIR_NAME_TOO_LONG = -1;
const PAIR_VALUE_TOO_LONG = -2;
const PAIR_WORDS = 4;
const NAME_UNKNOWN = -1;
const NAME_UNRESOLVED = -2;

// Well-known name -> id (the scanner's vocabulary, wasm/vocab.ts), for lookups by name.
let wellKnownIds: Map<string, number> | undefined;

function nameIds(c: Codec): Map<string, number> {
  wellKnownIds ??= new Map(c.names.map((name, id) => [name, id]));
  return wellKnownIds;
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

// ---- storage ----
// Each decoder copies the bytes it keeps and the pair table it builds. One ArrayBuffer per request
// costs about a microsecond on Deno (and 50-80 ns elsewhere), more than decoding the request, so
// small regions are carved out of shared 64 KiB slabs instead (like Node's Buffer pool): a slab
// lives as long as any Params still uses a region of it. Larger regions get their own buffer.
const SLAB_SIZE = 64 * 1024;
const OWN_BUFFER = 8 * 1024;
let slabU8 = new Uint8Array(0);
let slabI32 = new Int32Array(0);
let slabUsed = 0;
// What take() hands out: views of the buffer holding the region, and the region's byte offset.
let takenU8: Uint8Array = slabU8;
let takenI32: Int32Array = slabI32;
let takenAt = 0;

function take(bytes: number): void {
  bytes = (bytes + 7) & ~7;
  if (bytes > OWN_BUFFER) {
    const buffer = new ArrayBuffer(bytes);
    takenU8 = new Uint8Array(buffer);
    takenI32 = new Int32Array(buffer);
    takenAt = 0;
    return;
  }
  if (slabUsed + bytes > slabU8.length) {
    const buffer = new ArrayBuffer(SLAB_SIZE);
    slabU8 = new Uint8Array(buffer);
    slabI32 = new Int32Array(buffer);
    slabUsed = 0;
  }
  takenU8 = slabU8;
  takenI32 = slabI32;
  takenAt = slabUsed;
  slabUsed += bytes;
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
  // The stream's bytes so far (a copy) live in #bytes from #bytesAt; #bytesCap bytes are reserved.
  #bytes: Uint8Array = EMPTY_BYTES;
  #bytesAt = 0;
  #bytesCap = 0;
  #total = 0;
  #ascii = true;
  // The pairs found so far, PAIR_WORDS i32 each, in #table from word #tableAt; #tableCap words reserved.
  #table: Int32Array = EMPTY_TABLE;
  #tableAt = 0;
  #tableCap = 0;
  #count = 0;
  // The scanner's state between pushes (STATE slots of wasm/pairs.ts).
  #phase = 0;
  #need = 0;
  #acc = 0;
  #nameLength = 0;
  #pairStart = 0;
  #leftLow = 0;
  #leftHigh = 0;
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
    const window = c.PAIR_WINDOW_SIZE;
    if (base === 0 && length <= window) {
      // The usual case, a whole PARAMS stream in one record: scan first, then keep the bytes and
      // the pair table in one region sized exactly.
      c.u8.set(piece, c.PAIR_WINDOW);
      const n = this.#scan(c, length, 0);
      const bytesSize = (length + 7) & ~7;
      take(bytesSize + n * PAIR_WORDS * 4);
      takenU8.set(piece, takenAt);
      this.#bytes = takenU8;
      this.#bytesAt = takenAt;
      this.#bytesCap = bytesSize;
      this.#total = length;
      if (n > 0) {
        const from = c.PAIRS >> 2;
        this.#table = takenI32;
        this.#tableAt = (takenAt + bytesSize) >> 2;
        this.#tableCap = n * PAIR_WORDS;
        takenI32.set(c.i32.subarray(from, from + n * PAIR_WORDS), this.#tableAt);
        this.#count = n;
      }
      return;
    }
    // Names cut by a window or push boundary were not looked up by the scanner: end() does it.
    this.#split = true;
    this.#keep(piece);
    for (let from = 0; from < length; from += window) {
      const to = Math.min(from + window, length);
      c.u8.set(from === 0 && to === length ? piece : piece.subarray(from, to), c.PAIR_WINDOW);
      const n = this.#scan(c, to - from, base + from);
      if (n > 0) this.#append(c.i32, c.PAIRS >> 2, n);
    }
  }

  /** Ends the stream and returns its pairs; throws PAIR_TRUNCATED if it stopped inside a pair. */
  end(): Params {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) return this.#params;
    if (this.#phase !== 0) {
      this.#fail("PAIR_TRUNCATED", "name-value stream ends inside a pair");
    }
    if (this.#split) {
      const t = this.#table;
      const ids = nameIds(heap());
      for (let k = this.#tableAt; k < this.#tableAt + this.#count * PAIR_WORDS; k += PAIR_WORDS) {
        if (t[k + 3] === NAME_UNRESOLVED) t[k + 3] = ids.get(latin1(this.#bytes, this.#bytesAt + t[k], t[k + 1])) ?? NAME_UNKNOWN;
      }
    }
    this.#params = new Params(this.#bytes, this.#bytesAt, this.#total, this.#ascii, this.#table, this.#tableAt, this.#count);
    return this.#params;
  }

  // Runs the scanner over the `length` bytes placed in PAIR_WINDOW (stream offset `base`), with
  // this decoder's state swapped in and out; returns the number of pairs it wrote to PAIRS.
  #scan(c: Codec, length: number, base: number): number {
    const i32 = c.i32;
    const s = c.STATE >> 2;
    i32[s] = this.#phase;
    i32[s + 1] = this.#need;
    i32[s + 2] = this.#acc;
    i32[s + 3] = this.#nameLength;
    i32[s + 4] = this.#pairStart;
    i32[s + 6] = this.#leftLow;
    i32[s + 7] = this.#leftHigh;
    const n = c.scanPairs(length, base, this.#maxNameLength, this.#maxValueLength, this.#maxTotalBytes);
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
    if (i32[s + 8] === 0) this.#ascii = false;
    return n;
  }

  #fail(code: "PARAMS_TOO_LARGE" | "NAME_TOO_LONG" | "VALUE_TOO_LONG" | "PAIR_TRUNCATED", message: string, limit?: string): never {
    this.#failed = new FastCGIError(code, message, { limit });
    throw this.#failed;
  }

  // Keeps a copy of the piece: pieces are views of chunks the caller may reuse.
  #keep(piece: Uint8Array): void {
    const total = this.#total + piece.length;
    if (total > this.#bytesCap) {
      // Exact size for the first piece (most streams are one record), doubling after that.
      const cap = this.#total === 0 ? total : Math.max(total, this.#bytesCap * 2);
      take(cap);
      if (this.#total > 0) takenU8.set(this.#bytes.subarray(this.#bytesAt, this.#bytesAt + this.#total), takenAt);
      this.#bytes = takenU8;
      this.#bytesAt = takenAt;
      this.#bytesCap = cap;
    }
    this.#bytes.set(piece, this.#bytesAt + this.#total);
    this.#total = total;
  }

  #append(i32: Int32Array, from: number, n: number): void {
    const words = n * PAIR_WORDS;
    const used = this.#count * PAIR_WORDS;
    if (used + words > this.#tableCap) {
      const cap = used === 0 ? words : Math.max(used + words, this.#tableCap * 2);
      take(cap * 4);
      const at = takenAt >> 2;
      if (used > 0) takenI32.set(this.#table.subarray(this.#tableAt, this.#tableAt + used), at);
      this.#table = takenI32;
      this.#tableAt = at;
      this.#tableCap = cap;
    }
    this.#table.set(i32.subarray(from, from + words), this.#tableAt + used);
    this.#count += n;
  }
}

const EMPTY_BYTES = new Uint8Array(0);
const EMPTY_TABLE = new Int32Array(0);
const utf8 = new TextDecoder();

/**
 * Decodes bytes as latin1: one character per byte, 0x80-0x9F included (TextDecoder("latin1") is
 * windows-1252 and would map those to other characters).
 */
function latin1(bytes: Uint8Array, start: number, length: number): string {
  const end = start + length;
  if (length <= 16) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
    return s;
  }
  let s = "";
  for (let i = start; i < end; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(i + 8192, end)) as unknown as number[]);
  }
  return s;
}

/**
 * The name-value pairs of a PARAMS (or GET_VALUES) stream, in stream order, duplicates included.
 * Lookups by name see the last pair of that name. Names and values are bytes, decoded as latin1
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
  readonly #bytesAt: number;
  readonly #total: number;
  readonly #ascii: boolean;
  readonly #table: Int32Array;
  readonly #tableAt: number;
  readonly #count: number;
  // The whole stream as one string, when it is all ASCII: decoding it once with TextDecoder and
  // cutting substrings is several times faster than building each string from its bytes.
  #text: string | undefined;

  /**
   * Wraps what a {@link PairDecoder} collected: use {@link PairDecoder.end} rather than this.
   * `bytes[bytesAt ...]` holds the `total` stream bytes; `table[tableAt ...]` holds `count` pairs of
   * four words (nameOffset, nameLength, valueLength, nameId); `ascii` says no byte is over 0x7F.
   */
  constructor(bytes: Uint8Array, bytesAt: number, total: number, ascii: boolean, table: Int32Array, tableAt: number, count: number) {
    this.#bytes = bytes;
    this.#bytesAt = bytesAt;
    this.#total = total;
    this.#ascii = ascii;
    this.#table = table;
    this.#tableAt = tableAt;
    this.#count = count;
  }

  /** The value of the last pair with this name, decoded as latin1, or undefined. */
  get(name: string): string | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table;
    return this.#string(t[k] + t[k + 1], t[k + 2]);
  }

  /** The raw bytes of the last pair's value with this name (a view of this object's copy), or undefined. */
  getBytes(name: string): Uint8Array | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table;
    const at = this.#bytesAt + t[k] + t[k + 1];
    return this.#bytes.subarray(at, at + t[k + 2]);
  }

  /** Whether a pair with this name exists. */
  has(name: string): boolean {
    return this.#find(name) >= 0;
  }

  /** The number of pairs, duplicates included. */
  get size(): number {
    return this.#count;
  }

  /** [name, value] of every pair, in stream order. */
  *entries(): IterableIterator<[string, string]> {
    const t = this.#table;
    for (let k = this.#tableAt; k < this.#tableAt + this.#count * PAIR_WORDS; k += PAIR_WORDS) {
      yield [this.#name(k), this.#string(t[k] + t[k + 1], t[k + 2])];
    }
  }

  /** The name of every pair, in stream order. */
  *keys(): IterableIterator<string> {
    for (let k = this.#tableAt; k < this.#tableAt + this.#count * PAIR_WORDS; k += PAIR_WORDS) yield this.#name(k);
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

  // The stream bytes at [offset, offset + length) as a string.
  #string(offset: number, length: number): string {
    if (!this.#ascii) return latin1(this.#bytes, this.#bytesAt + offset, length);
    this.#text ??= utf8.decode(this.#bytes.subarray(this.#bytesAt, this.#bytesAt + this.#total));
    return this.#text.substring(offset, offset + length);
  }

  #name(k: number): string {
    const id = this.#table[k + 3];
    return id >= 0 ? heap().names[id] : this.#string(this.#table[k], this.#table[k + 1]);
  }

  // Index (in table words) of the last pair named `name`, or -1.
  #find(name: string): number {
    const t = this.#table;
    const first = this.#tableAt;
    const id = (wellKnownIds ?? nameIds(heap())).get(name);
    if (id !== undefined) {
      for (let k = first + (this.#count - 1) * PAIR_WORDS; k >= first; k -= PAIR_WORDS) {
        if (t[k + 3] === id) return k;
      }
      return -1;
    }
    // Not a well-known name: compare bytes with the names the scanner did not recognise.
    const bytes = this.#bytes;
    const length = name.length;
    outer: for (let k = first + (this.#count - 1) * PAIR_WORDS; k >= first; k -= PAIR_WORDS) {
      if (t[k + 3] !== NAME_UNKNOWN || t[k + 1] !== length) continue;
      const at = this.#bytesAt + t[k];
      for (let j = 0; j < length; j++) {
        if (bytes[at + j] !== name.charCodeAt(j)) continue outer;
      }
      return k;
    }
    return -1;
  }
}
