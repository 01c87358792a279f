// The reference name-value decoder: FastCGI spec section 3.4 plus the limit rules the real
// PairDecoder promises, written for obviousness (it keeps every unconsumed byte in a plain array
// and re-reads the current pair from its start after each push). Tests only.
import { FastCGIError, type FastCGIErrorCode } from "../../src/errors.ts";
import type { PairLimits } from "../../src/codec/types.ts";

/** The limits the real decoder applies when a field is not given. */
export const DEFAULT_LIMITS: Required<PairLimits> = {
  maxNameLength: 1024,
  maxValueLength: 65536,
  maxTotalBytes: 1024 * 1024,
};

/** The decoded pairs, with the same reading API as the real Params. */
export class OracleParams {
  /** Every pair in stream order, duplicates included, as raw bytes. */
  readonly list: ReadonlyArray<readonly [Uint8Array, Uint8Array]>;

  /** The names as latin1 strings, decoded once. */
  private readonly names: readonly string[];

  constructor(list: ReadonlyArray<readonly [Uint8Array, Uint8Array]>) {
    this.list = list;
    this.names = list.map(([n]) => text(n));
  }

  private lastIndexOf(name: string): number {
    return this.names.lastIndexOf(name);
  }

  /** The value of the last pair with this name. */
  get(name: string): string | undefined {
    const i = this.lastIndexOf(name);
    return i < 0 ? undefined : text(this.list[i]![1]);
  }

  /** The raw value bytes of the last pair with this name. */
  getBytes(name: string): Uint8Array | undefined {
    const i = this.lastIndexOf(name);
    return i < 0 ? undefined : this.list[i]![1];
  }

  /** Whether any pair has this name. */
  has(name: string): boolean {
    return this.lastIndexOf(name) >= 0;
  }

  /** Number of pairs in the stream, duplicates included. */
  get size(): number {
    return this.list.length;
  }

  /** Every pair in stream order as latin1 strings. */
  *entries(): IterableIterator<[string, string]> {
    for (const [n, v] of this.list) yield [text(n), text(v)];
  }

  /** Every name in stream order. */
  *keys(): IterableIterator<string> {
    for (const [n] of this.list) yield text(n);
  }

  /** Same as {@link entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** A plain object, last value winning; names like `__proto__` stay ordinary own properties. */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, v] of this.entries()) Object.defineProperty(out, n, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  }
}

/** Latin1: one char per byte, so every byte sequence round-trips. */
function text(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Reads a name-value length at `at`: [value, byteCount], or undefined when its bytes are not all there. */
function readLength(buf: readonly number[], at: number): [number, number] | undefined {
  if (at >= buf.length) return undefined;
  const b0 = buf[at]!;
  if (b0 < 0x80) return [b0, 1];
  if (at + 4 > buf.length) return undefined;
  return [(b0 & 0x7f) * 0x100_0000 + buf[at + 1]! * 0x1_0000 + buf[at + 2]! * 0x100 + buf[at + 3]!, 4];
}

/**
 * Decodes a name-value stream pushed in arbitrary pieces, like PairDecoder.
 *
 * Rules, in order: a push whose bytes would take the stream past maxTotalBytes is refused
 * (PARAMS_TOO_LARGE) before anything in it is read; each pair, as soon as both lengths are
 * known, is checked for NAME_TOO_LONG, then VALUE_TOO_LONG, then whether it would end past
 * maxTotalBytes (PARAMS_TOO_LARGE); end() refuses a stream that stops inside a pair (PAIR_TRUNCATED).
 * After an error, every call throws it again.
 */
export class OraclePairDecoder {
  private readonly limits: Required<PairLimits>;
  private pending: number[] = [];
  /** Stream offset of pending[0]. */
  private offset = 0;
  /** Whether the pair at pending[0] already passed its length checks. */
  private checked = false;
  private readonly done: Array<readonly [Uint8Array, Uint8Array]> = [];
  private failure: FastCGIError | undefined;

  constructor(limits: PairLimits = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...stripUndefined(limits) };
  }

  /** Adds the next piece of the stream. */
  push(piece: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.read(piece);
    } catch (e) {
      this.failure = e as FastCGIError;
      throw e;
    }
  }

  private read(piece: Uint8Array): void {
    const total = this.offset + this.pending.length;
    if (total + piece.length > this.limits.maxTotalBytes) fail("PARAMS_TOO_LARGE", "stream over maxTotalBytes");
    for (const b of piece) this.pending.push(b);
    // `at` is where the current pair starts in `pending`; consumed pairs are dropped once, at the end.
    let at = 0;
    try {
      for (;;) {
        const name = readLength(this.pending, at);
        if (!name) return;
        const value = readLength(this.pending, at + name[1]);
        if (!value) return;
        const head = name[1] + value[1];
        if (!this.checked) {
          if (name[0] > this.limits.maxNameLength) fail("NAME_TOO_LONG", `name length ${name[0]}`);
          if (value[0] > this.limits.maxValueLength) fail("VALUE_TOO_LONG", `value length ${value[0]}`);
          if (this.offset + at + head + name[0] + value[0] > this.limits.maxTotalBytes) fail("PARAMS_TOO_LARGE", "pair ends past maxTotalBytes");
          this.checked = true;
        }
        const size = head + name[0] + value[0];
        if (this.pending.length - at < size) return;
        const nameAt = at + head;
        this.done.push([Uint8Array.from(this.pending.slice(nameAt, nameAt + name[0])), Uint8Array.from(this.pending.slice(nameAt + name[0], at + size))]);
        at += size;
        this.checked = false;
      }
    } finally {
      if (at > 0) this.pending = this.pending.slice(at);
      this.offset += at;
    }
  }

  /** Ends the stream and returns its pairs; throws PAIR_TRUNCATED if it stopped inside a pair. */
  end(): OracleParams {
    if (this.failure !== undefined) throw this.failure;
    if (this.pending.length > 0) fail("PAIR_TRUNCATED", `stream ends ${this.pending.length} bytes into a pair`);
    return new OracleParams(this.done);
  }
}

function fail(code: FastCGIErrorCode, message: string): never {
  throw new FastCGIError(code, `oracle: ${message}`);
}

function stripUndefined(limits: PairLimits): PairLimits {
  const out: PairLimits = {};
  if (limits.maxNameLength !== undefined) out.maxNameLength = limits.maxNameLength;
  if (limits.maxValueLength !== undefined) out.maxValueLength = limits.maxValueLength;
  if (limits.maxTotalBytes !== undefined) out.maxTotalBytes = limits.maxTotalBytes;
  return out;
}
