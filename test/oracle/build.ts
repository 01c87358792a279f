// A tiny reference writer for FastCGI bytes, written from the spec (sections 3.3 and 3.4) and
// independent of src/codec/encode.ts, so tests can build exact streams (including malformed ones)
// and check the real encoders against something other than themselves.

/** Bytes from a latin1 string (one byte per code unit; the test's own strings stay ≤ 0xFF). */
export function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`latin1: code unit ${c} at ${i}`);
    out[i] = c;
  }
  return out;
}

/** Bytes as given, or a latin1 string as bytes. */
export function asBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? latin1(data) : data;
}

/** One array holding all parts in order. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** What a record header holds; `version` defaults to 1, `reserved` to 0. */
export interface HeaderFields {
  version?: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
  reserved?: number;
}

/** The 8-byte record header (FCGI_Header): version, type, requestId B1 B0, contentLength B1 B0, padding, reserved. */
export function header(h: HeaderFields): Uint8Array {
  return Uint8Array.of(
    h.version ?? 1,
    h.type,
    (h.requestId >> 8) & 0xff,
    h.requestId & 0xff,
    (h.contentLength >> 8) & 0xff,
    h.contentLength & 0xff,
    h.paddingLength,
    h.reserved ?? 0,
  );
}

/** The padding the spec recommends: enough to end the record on a multiple of 8 bytes. */
export function padTo8(contentLength: number): number {
  return (8 - (contentLength % 8)) % 8;
}

/** Options of {@link record}. */
export interface RecordOptions {
  /** Padding length (filled with `padByte`), or the exact padding bytes. Default: pad to 8. */
  padding?: number | Uint8Array;
  /** Value of every padding byte when `padding` is a number. Default 0. */
  padByte?: number;
  /** Version byte. Default 1. */
  version?: number;
}

/** One whole record: header, content (≤ 65535 bytes), padding. */
export function record(type: number, requestId: number, content: string | Uint8Array = new Uint8Array(0), options: RecordOptions = {}): Uint8Array {
  const body = asBytes(content);
  if (body.length > 0xffff) throw new RangeError("record content over 65535 bytes");
  const pad = options.padding ?? padTo8(body.length);
  const padBytes = typeof pad === "number" ? new Uint8Array(pad).fill(options.padByte ?? 0) : pad;
  const head = header({ version: options.version, type, requestId, contentLength: body.length, paddingLength: padBytes.length });
  return concat([head, body, padBytes]);
}

/** A whole stream: the data cut into records of at most `size` bytes, then the closing empty record. */
export function stream(type: number, requestId: number, data: string | Uint8Array, size: number = 0xffff): Uint8Array {
  const bytes = asBytes(data);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) parts.push(record(type, requestId, bytes.subarray(at, at + size)));
  parts.push(record(type, requestId));
  return concat(parts);
}

/** A name-value length: one byte below 128 unless `wide`, else four bytes big-endian with the top bit set. */
export function pairLength(n: number, wide: boolean = n > 127): Uint8Array {
  if (!wide) {
    if (n > 127) throw new RangeError("one-byte length over 127");
    return Uint8Array.of(n);
  }
  if (n > 0x7fff_ffff) throw new RangeError("length over 31 bits");
  return Uint8Array.of(((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Options of {@link pair}: force the four-byte length layout even for short names or values. */
export interface PairOptions {
  wideName?: boolean;
  wideValue?: boolean;
}

/** One name-value pair: nameLength, valueLength, name, value. */
export function pair(name: string | Uint8Array, value: string | Uint8Array, options: PairOptions = {}): Uint8Array {
  const n = asBytes(name);
  const v = asBytes(value);
  return concat([pairLength(n.length, options.wideName || n.length > 127), pairLength(v.length, options.wideValue || v.length > 127), n, v]);
}

/** Several pairs back to back. */
export function pairs(list: Iterable<readonly [string | Uint8Array, string | Uint8Array]>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [n, v] of list) parts.push(pair(n, v));
  return concat(parts);
}

/** Cuts bytes at the given offsets (ascending, each in 1..length-1) into views. */
export function cutAt(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const at of offsets) {
    out.push(bytes.subarray(prev, at));
    prev = at;
  }
  out.push(bytes.subarray(prev));
  return out;
}

/** Cuts bytes into views of `size` bytes (the last may be shorter). */
export function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  if (out.length === 0) out.push(bytes);
  return out;
}
