/**
 * The name-value pair decoder (PARAMS, GET_VALUES, GET_VALUES_RESULT) and the lazy {@link Params}
 * it produces. The WebAssembly scanner (wasm/pairs.ts) checks every declared length against the
 * limits before anything is sliced and recognises well-known names, so names cost nothing; the
 * bytes become strings only when something is read.
 * @module
 */

import { FastCGIError } from "../errors.ts";
import { numberOption } from "../validate.ts";
import { concatBytes } from "../bytes.ts";
import { decodeLatin1 } from "./latin1.ts";
import type { PairLimits } from "./types.ts";
import { heap, type Codec } from "./wasm.ts";
import {
  PAIR_NAME_TOO_LONG,
  PAIR_PHASE_NAME_LENGTH,
  PAIR_SLOT_ACC,
  PAIR_SLOT_LEFT,
  PAIR_SLOT_NAME_LENGTH,
  PAIR_SLOT_NEED,
  PAIR_SLOT_PAIR_START,
  PAIR_SLOT_PHASE,
  PAIR_VALUE_TOO_LONG,
  PAIR_WINDOW_SIZE,
  PAIR_WORDS,
} from "./wasm_interface.ts";

const DEFAULT_MAX_NAME_LENGTH = 1024;
const DEFAULT_MAX_VALUE_LENGTH = 65536;
const DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024;
/** A 31-bit length never exceeds this, so larger name/value limits are the same as this one. */
const MAX_LENGTH = 0x7fffffff;

// Well-known name -> id (the scanner's vocabulary, wasm/vocab.ts), for lookups by name, and back.
// Set on the first PairDecoder push (no Params exists before one), so the module loads lazily.
let wellKnownIds: Map<string, number> | undefined;
let wellKnownNames: readonly string[] = [];

/** How many of a param's first bytes a refusal names (enough for any CGI variable, or to see "HTTP_"). */
const PARAM_SHOWN = 64;

/**
 * The name (its first PARAM_SHOWN bytes, latin1) of the first pair of `stream` that breaks a
 * limit or runs past its end, or undefined when that pair's name bytes have not arrived. Only
 * for a refusal (a cold path): it walks every pair from the start.
 */
function offendingParam(stream: Uint8Array, maxName: number, maxValue: number, maxTotal: number): string | undefined {
  let at = 0;
  const readLength = (): number => {
    if (at >= stream.length) return -1;
    if (stream[at]! < 0x80) return stream[at++]!;
    if (at + 4 > stream.length) return -1;
    const n = ((stream[at]! & 0x7f) << 24) | (stream[at + 1]! << 16) | (stream[at + 2]! << 8) | stream[at + 3]!;
    at += 4;
    return n;
  };
  for (;;) {
    const nameLength = readLength();
    const valueLength = nameLength < 0 ? -1 : readLength();
    if (valueLength < 0) return undefined;
    const end = at + nameLength + valueLength;
    if (nameLength > maxName || valueLength > maxValue || end > maxTotal || end > stream.length) {
      const shown = Math.min(nameLength, stream.length - at, PARAM_SHOWN);
      return shown > 0 ? decodeLatin1(stream.subarray(at, at + shown)) : undefined;
    }
    at = end;
  }
}

function nameIds(c: Codec): Map<string, number> {
  if (wellKnownIds === undefined) {
    wellKnownNames = c.names;
    wellKnownIds = new Map(c.names.map((name, id) => [name, id]));
  }
  return wellKnownIds;
}

// ---- storage ----
// A decoder copies the bytes it keeps, with its pair table, into a region of a shared slab: an
// ArrayBuffer per request costs hundreds of nanoseconds on Deno (every typed-array allocation
// does) and decoding every stream to strings up front costs as much, whether or not anything is
// read. A Params reads its region once, on first use (one TextDecoder call for all the bytes, one
// copy of the table), and gives it back; a slab whose regions all came back is used again, so a
// server that reads its params allocates no buffers at all. Regions are never handed out: a slab
// holds other requests' params. A Params never read keeps its slab alive until it is collected.
const SLAB_SIZE = 64 * 1024;
/** Regions larger than this get a buffer of their own. */
const OWN_BUFFER = 8 * 1024;
/** Empty slabs kept for reuse. */
const SPARE_SLABS = 4;

interface Slab {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  /** Bytes handed out so far. */
  used: number;
  /** Regions handed out and not yet given back. */
  live: number;
  /** A buffer for one large region: never reused. */
  readonly own: boolean;
}

function newSlab(size: number, own: boolean): Slab {
  const buffer = new ArrayBuffer(size);
  return { u8: new Uint8Array(buffer), i32: new Int32Array(buffer), used: 0, live: 0, own };
}

let slab: Slab = newSlab(SLAB_SIZE, false);
const spares: Slab[] = [];

/** Byte offset of the region the last take() handed out. */
let takenAt = 0;

/** A region of `bytes` bytes (8-aligned); its offset is left in takenAt. */
function take(bytes: number): Slab {
  bytes = (bytes + 7) & ~7;
  if (bytes > OWN_BUFFER) {
    const own = newSlab(bytes, true);
    own.live = 1;
    takenAt = 0;
    return own;
  }
  if (slab.used + bytes > SLAB_SIZE) {
    if (slab.live === 0) slab.used = 0;
    else slab = spares.pop() ?? newSlab(SLAB_SIZE, false);
  }
  takenAt = slab.used;
  slab.used += bytes;
  slab.live++;
  return slab;
}

/** Gives a region back; a slab with nothing left in use becomes a spare. */
function give(s: Slab): void {
  if (--s.live === 0 && !s.own && s !== slab && spares.length < SPARE_SLABS) {
    s.used = 0;
    spares.push(s);
  }
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
 * import { encodePairs, PairDecoder } from "fcgi";
 *
 * const paramsContent = encodePairs([["REQUEST_URI", "/index.php?x=1"]]); // a PARAMS record's content
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
  // The stream's bytes so far: #total of them in a region of #bytesSlab at #bytesAt, #bytesCap reserved.
  #bytesSlab: Slab | undefined;
  #bytesAt = 0;
  #bytesCap = 0;
  #total = 0;
  // The pairs found so far, PAIR_WORDS i32 each: #used words in #tableSlab from word #tableAt, or
  // (the usual case: one push) in the same region as the bytes.
  #tableSlab: Slab | undefined;
  #tableAt = 0;
  #tableCap = 0;
  #used = 0;
  // The scanner's state between pushes (the PAIR_SLOT_* of STATE), kept only inside a pair: at a
  // pair boundary (PAIR_PHASE_NAME_LENGTH) the scanner needs nothing but the stream offset.
  #phase: number = PAIR_PHASE_NAME_LENGTH;
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
      this.#maxNameLength = Math.min(numberOption("maxNameLength", limits.maxNameLength, DEFAULT_MAX_NAME_LENGTH, 0), MAX_LENGTH);
      this.#maxValueLength = Math.min(numberOption("maxValueLength", limits.maxValueLength, DEFAULT_MAX_VALUE_LENGTH, 0), MAX_LENGTH);
      this.#maxTotalBytes = numberOption("maxTotalBytes", limits.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES, 0);
    }
  }

  /** Adds the next piece of the stream (the content of a PARAMS record, or part of it). */
  push(piece: Uint8Array): void {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) throw new Error("PairDecoder.push() after end()");
    const length = piece.length;
    const base = this.#total;
    if (base + length > this.#maxTotalBytes) {
      this.#fail("PARAMS_TOO_LARGE", `name-value stream exceeds maxTotalBytes (${this.#maxTotalBytes})`, "maxTotalBytes", piece);
    }
    if (length === 0) return;
    const c = heap();
    if (wellKnownIds === undefined) nameIds(c);
    const window = PAIR_WINDOW_SIZE;
    if (base === 0 && length <= window) {
      // The usual case, a whole PARAMS stream in one record: scan, then copy the bytes and the
      // pair table the scanner wrote after them into one region, in one go.
      c.u8.set(piece, c.PAIR_WINDOW);
      const n = this.#scan(c, length, 0, piece);
      const words = n * PAIR_WORDS;
      const bytesSize = (length + 7) & ~7;
      const size = bytesSize + words * 4;
      const s = take(size);
      s.u8.set(c.u8.subarray(c.PAIR_WINDOW, c.PAIR_WINDOW + size), takenAt);
      this.#bytesSlab = s;
      this.#bytesAt = takenAt;
      this.#bytesCap = bytesSize;
      this.#total = length;
      this.#tableAt = (takenAt + bytesSize) >> 2;
      this.#tableCap = words;
      this.#used = words;
      return;
    }
    // Several windows or pushes: the bytes and the table grow in regions of their own.
    if (!this.#split) this.#splitRegion();
    this.#keep(piece);
    for (let from = 0; from < length; from += window) {
      const to = Math.min(from + window, length);
      c.u8.set(from === 0 && to === length ? piece : piece.subarray(from, to), c.PAIR_WINDOW);
      const n = this.#scan(c, to - from, base + from, undefined);
      if (n > 0) this.#append(c, n, to - from);
    }
  }

  /** Ends the stream and returns its pairs; throws PAIR_TRUNCATED if it stopped inside a pair. */
  end(): Params {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#params !== undefined) return this.#params;
    if (this.#phase !== PAIR_PHASE_NAME_LENGTH) {
      this.#fail("PAIR_TRUNCATED", "name-value stream ends inside a pair");
    }
    const params = new Params();
    const count = this.#used / PAIR_WORDS;
    if (this.#bytesSlab === undefined) {
      adopt(params, 0, "", []);
    } else if (!this.#split) {
      lend(params, count, this.#bytesSlab, this.#bytesAt, this.#total, this.#tableAt);
    } else {
      // A stream of several pieces (rare): read it now, and look up the names a window or push
      // boundary cut, which the scanner reported as unknown.
      const text = decodeLatin1(this.#bytesSlab.u8.subarray(this.#bytesAt, this.#bytesAt + this.#total));
      const table: number[] = new Array(this.#used);
      const t = this.#tableSlab!.i32;
      const ids = nameIds(heap());
      for (let k = 0; k < this.#used; k++) table[k] = t[this.#tableAt + k];
      for (let k = 0; k < this.#used; k += PAIR_WORDS) {
        if (table[k + 2] < 0) table[k + 2] = ids.get(text.substring(table[k] + table[k + 2] + 1, table[k])) ?? table[k + 2];
      }
      give(this.#bytesSlab);
      if (this.#tableSlab !== undefined) give(this.#tableSlab);
      adopt(params, count, text, table);
    }
    this.#params = params;
    return params;
  }

  // The single-push region (bytes, then the table) turns into a growable bytes region and a
  // separate table region.
  #splitRegion(): void {
    this.#split = true;
    const s = this.#bytesSlab;
    if (s === undefined) return;
    if (this.#used > 0) {
      const t = take(this.#used * 4);
      t.i32.set(s.i32.subarray(this.#tableAt, this.#tableAt + this.#used), takenAt >> 2);
      this.#tableSlab = t;
      this.#tableAt = takenAt >> 2;
      this.#tableCap = this.#used;
    }
  }

  // Runs the scanner over the `length` bytes placed in PAIR_WINDOW (stream offset `base`) with
  // this decoder's state swapped in and out; returns how many pairs it wrote after the bytes.
  // `unkept`: the piece being scanned when #keep has not stored it (the one-push case).
  #scan(c: Codec, length: number, base: number, unkept: Uint8Array | undefined): number {
    const i32 = c.i32;
    const s = c.STATE >> 2;
    const resume = this.#phase !== PAIR_PHASE_NAME_LENGTH;
    if (resume) {
      i32[s + PAIR_SLOT_PHASE] = this.#phase;
      i32[s + PAIR_SLOT_NEED] = this.#need;
      i32[s + PAIR_SLOT_ACC] = this.#acc;
      i32[s + PAIR_SLOT_NAME_LENGTH] = this.#nameLength;
      i32[s + PAIR_SLOT_PAIR_START] = this.#pairStart;
      i32[s + PAIR_SLOT_LEFT] = this.#leftLow;
      i32[s + PAIR_SLOT_LEFT + 1] = this.#leftHigh;
    }
    const n = c.scanPairs(length, base, this.#maxNameLength, this.#maxValueLength, this.#maxTotalBytes, resume ? 1 : 0);
    if (n < 0) {
      if (n === PAIR_NAME_TOO_LONG) this.#fail("NAME_TOO_LONG", `parameter name longer than maxNameLength (${this.#maxNameLength})`, "maxNameLength", unkept);
      if (n === PAIR_VALUE_TOO_LONG) this.#fail("VALUE_TOO_LONG", `parameter value longer than maxValueLength (${this.#maxValueLength})`, "maxValueLength", unkept);
      this.#fail("PARAMS_TOO_LARGE", `name-value stream exceeds maxTotalBytes (${this.#maxTotalBytes})`, "maxTotalBytes", unkept);
    }
    this.#phase = i32[s + PAIR_SLOT_PHASE];
    if (this.#phase !== PAIR_PHASE_NAME_LENGTH) {
      this.#need = i32[s + PAIR_SLOT_NEED];
      this.#acc = i32[s + PAIR_SLOT_ACC];
      this.#nameLength = i32[s + PAIR_SLOT_NAME_LENGTH];
      this.#pairStart = i32[s + PAIR_SLOT_PAIR_START];
      this.#leftLow = i32[s + PAIR_SLOT_LEFT];
      this.#leftHigh = i32[s + PAIR_SLOT_LEFT + 1];
    }
    return n;
  }

  // Keeps a copy of the piece (pieces are views of chunks the caller may reuse), doubling the region.
  #keep(piece: Uint8Array): void {
    const total = this.#total + piece.length;
    if (total > this.#bytesCap) {
      const cap = Math.max(total, this.#bytesCap * 2);
      const s = take(cap);
      const old = this.#bytesSlab;
      if (old !== undefined) {
        s.u8.set(old.u8.subarray(this.#bytesAt, this.#bytesAt + this.#total), takenAt);
        give(old);
      }
      this.#bytesSlab = s;
      this.#bytesAt = takenAt;
      this.#bytesCap = cap;
    }
    this.#bytesSlab!.u8.set(piece, this.#bytesAt + this.#total);
    this.#total = total;
  }

  // Appends the n pairs the last scan of `length` bytes wrote after them, doubling the region.
  #append(c: Codec, n: number, length: number): void {
    const words = n * PAIR_WORDS;
    const used = this.#used;
    if (used + words > this.#tableCap) {
      const cap = Math.max(used + words, this.#tableCap * 2);
      const s = take(cap * 4);
      const old = this.#tableSlab;
      if (old !== undefined) {
        s.i32.set(old.i32.subarray(this.#tableAt, this.#tableAt + used), takenAt >> 2);
        give(old);
      }
      this.#tableSlab = s;
      this.#tableAt = takenAt >> 2;
      this.#tableCap = cap;
    }
    const from = (c.PAIR_WINDOW + ((length + 7) & ~7)) >> 2;
    this.#tableSlab!.i32.set(c.i32.subarray(from, from + words), this.#tableAt + used);
    this.#used = used + words;
  }

  // `unkept`: stream bytes #keep has not stored (see #scan), for naming the pair that broke a limit.
  #fail(code: "PARAMS_TOO_LARGE" | "NAME_TOO_LONG" | "VALUE_TOO_LONG" | "PAIR_TRUNCATED", message: string, limit?: string, unkept?: Uint8Array): never {
    let param: string | undefined;
    if (limit !== undefined) {
      const kept = this.#bytesSlab === undefined ? new Uint8Array(0) : this.#bytesSlab.u8.subarray(this.#bytesAt, this.#bytesAt + this.#total);
      const stream = unkept === undefined ? kept : concatBytes([kept, unkept]);
      param = offendingParam(stream, this.#maxNameLength, this.#maxValueLength, this.#maxTotalBytes);
    }
    this.#failed = new FastCGIError(code, message, param === undefined ? { limit } : { limit, param });
    throw this.#failed;
  }
}

// How PairDecoder hands its pairs to a Params, set by the Params class itself (its fields are
// private): as a string and a table, or still in a slab region (bytes, then the table).
let adopt: (params: Params, count: number, text: string, table: number[]) => void;
let lend: (params: Params, count: number, slab: Slab, bytesAt: number, total: number, tableAt: number) => void;

/**
 * The name-value pairs of a PARAMS (or GET_VALUES) stream, in stream order, duplicates included.
 * Lookups by name see the last pair of that name. Names and values are bytes, read as latin1
 * strings (one character per byte); getBytes() gives the exact bytes, e.g. of UTF-8 paths.
 * Nothing is decoded until something is read; then the whole stream is decoded at once (one
 * native call) and each value is cut from it when asked for.
 *
 * @example
 * ```ts
 * import { PairDecoder } from "fcgi";
 *
 * const decoder = new PairDecoder();
 * const params = decoder.end();
 * const method = params.get("REQUEST_METHOD") ?? "GET";
 * const path = new TextDecoder().decode(params.getBytes("SCRIPT_FILENAME"));
 * ```
 */
export class Params {
  #count = 0;
  // Once read: the stream, one character per byte, and three numbers per pair: the value's
  // offset and length, and the well-known name's id or -(nameLength + 1) (the name ends where
  // the value begins).
  #text = "";
  #table: number[] | undefined;
  // Until read: where the decoder left the bytes and the table. (A Params is made by
  // PairDecoder.end(); one made with `new` is empty.)
  #slab: Slab | undefined;
  #bytesAt = 0;
  #total = 0;
  #tableAt = 0;

  static {
    adopt = (params, count, text, table) => {
      params.#count = count;
      params.#text = text;
      params.#table = table;
    };
    lend = (params, count, slab, bytesAt, total, tableAt) => {
      params.#count = count;
      params.#slab = slab;
      params.#bytesAt = bytesAt;
      params.#total = total;
      params.#tableAt = tableAt;
    };
  }

  /** The value of the last pair with this name, as latin1, or undefined. */
  get(name: string): string | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table!;
    return this.#text.substring(t[k], t[k] + t[k + 1]);
  }

  /** The exact bytes of the last pair's value with this name (a copy), or undefined. */
  getBytes(name: string): Uint8Array | undefined {
    const k = this.#find(name);
    if (k < 0) return undefined;
    const t = this.#table!;
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
    return this.#count;
  }

  /** [name, value] of every pair, in stream order. */
  entries(): IterableIterator<[string, string]> {
    // An array's iterator: several times faster than a generator, and requests iterate params.
    const t = this.#read();
    const out: [string, string][] = new Array(this.#count);
    for (let i = 0, k = 0; i < out.length; i++, k += PAIR_WORDS) out[i] = [this.#name(t, k), this.#text.substring(t[k], t[k] + t[k + 1])];
    return out.values();
  }

  /** The name of every pair, in stream order. */
  keys(): IterableIterator<string> {
    const t = this.#read();
    const out: string[] = new Array(this.#count);
    for (let i = 0, k = 0; i < out.length; i++, k += PAIR_WORDS) out[i] = this.#name(t, k);
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

  // The table, reading the slab region first if that has not happened yet.
  #read(): number[] {
    if (this.#table !== undefined) return this.#table;
    const s = this.#slab;
    if (s === undefined) return (this.#table = []);
    this.#text = decodeLatin1(s.u8.subarray(this.#bytesAt, this.#bytesAt + this.#total));
    const words = this.#count * PAIR_WORDS;
    const table: number[] = new Array(words);
    for (let k = 0; k < words; k++) table[k] = s.i32[this.#tableAt + k];
    this.#table = table;
    this.#slab = undefined;
    give(s);
    return table;
  }

  #name(t: number[], k: number): string {
    const code = t[k + 2];
    return code >= 0 ? wellKnownNames[code] : this.#text.substring(t[k] + code + 1, t[k]);
  }

  // Index in the table of the last pair named `name`, or -1.
  #find(name: string): number {
    const t = this.#read();
    const id = (wellKnownIds ?? nameIds(heap())).get(name);
    if (id !== undefined) {
      for (let k = t.length - PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
        if (t[k + 2] === id) return k;
      }
      return -1;
    }
    // Not a well-known name: compare with the names the scanner did not recognise.
    const code = -1 - name.length;
    for (let k = t.length - PAIR_WORDS; k >= 0; k -= PAIR_WORDS) {
      if (t[k + 2] === code && this.#text.startsWith(name, t[k] - name.length)) return k;
    }
    return -1;
  }
}
