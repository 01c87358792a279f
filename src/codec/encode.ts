/**
 * Record and name-value encoders. Plain TypeScript: the work is writing a few header bytes and
 * turning strings into bytes, which JS must do anyway (measured against WASM in bench/RESULTS.md).
 * Every record is padded to a multiple of 8 bytes; content over 65535 bytes is always split into
 * several records, never truncated to 16 bits.
 * @module
 */

import {
  FCGI_HEADER_LEN,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  RecordType,
} from "./constants.ts";
import type { Bytesish } from "./types.ts";
import { integerInRange } from "../validate.ts";

/**
 * Content per record when a stream is split: the largest multiple of 8 below 65536, so that every
 * record but the last needs no padding and the data goes out as views, never copied.
 */
const STREAM_RECORD_CONTENT = FCGI_MAX_CONTENT_LENGTH & ~7;
/** Longest name or value a 31-bit pair length can declare. */
const MAX_PAIR_LENGTH = 0x7fffffff;
/** Never written: the source of padding pieces. */
const ZEROS = new Uint8Array(8);
const utf8 = new TextEncoder();

function padding(contentLength: number): number {
  return -contentLength & 7;
}

function writeHeader(out: Uint8Array, at: number, type: number, requestId: number, contentLength: number, paddingLength: number): void {
  out[at] = FCGI_VERSION_1;
  out[at + 1] = type;
  out[at + 2] = requestId >>> 8;
  out[at + 3] = requestId & 0xff;
  out[at + 4] = contentLength >>> 8;
  out[at + 5] = contentLength & 0xff;
  out[at + 6] = paddingLength;
  out[at + 7] = 0;
}

/**
 * One record: header, content (at most 65535 bytes) and padding to a multiple of 8, in one buffer.
 *
 * @example
 * ```ts
 * import { encodeRecord, RecordType } from "fcgi";
 *
 * const record = encodeRecord(RecordType.STDOUT, 1, new TextEncoder().encode("Status: 204\r\n\r\n"));
 * ```
 */
export function encodeRecord(type: number, requestId: number, content?: Uint8Array): Uint8Array {
  integerInRange("type", type, 0, 0xff);
  integerInRange("requestId", requestId, 0, 0xffff);
  const length = content === undefined ? 0 : content.length;
  if (length > FCGI_MAX_CONTENT_LENGTH) {
    throw new RangeError(`record content is ${length} bytes, more than ${FCGI_MAX_CONTENT_LENGTH}; use encodeStream`);
  }
  const pad = padding(length);
  const out = new Uint8Array(FCGI_HEADER_LEN + length + pad);
  writeHeader(out, 0, type, requestId, length, pad);
  if (content !== undefined) out.set(content, FCGI_HEADER_LEN);
  return out;
}

/**
 * Appends `data` to `out` as records of a stream (STDOUT, STDERR, STDIN, DATA, PARAMS): one header
 * per record, the data itself as views (never copied), split into records of at most 65535 bytes,
 * padded to 8. Empty data appends nothing (an empty record would end the stream: see
 * {@link encodeStreamEnd}).
 *
 * @example
 * ```ts
 * import { encodeStream, encodeStreamEnd, RecordType } from "fcgi";
 * import { connect } from "node:net";
 *
 * const socket = connect("/run/app.sock");
 * const body = new Uint8Array(100_000);
 * const pieces: Uint8Array[] = [];
 * encodeStream(RecordType.STDOUT, 1, body, pieces);
 * pieces.push(encodeStreamEnd(RecordType.STDOUT, 1));
 * for (const piece of pieces) socket.write(piece);
 * ```
 */
export function encodeStream(type: number, requestId: number, data: Uint8Array, out: Uint8Array[]): void {
  integerInRange("type", type, 0, 0xff);
  integerInRange("requestId", requestId, 0, 0xffff);
  const length = data.length;
  for (let at = 0; at < length; at += STREAM_RECORD_CONTENT) {
    const n = Math.min(STREAM_RECORD_CONTENT, length - at);
    const pad = padding(n);
    const header = new Uint8Array(FCGI_HEADER_LEN);
    writeHeader(header, 0, type, requestId, n, pad);
    out.push(header, at === 0 && n === length ? data : data.subarray(at, at + n));
    if (pad > 0) out.push(ZEROS.subarray(0, pad));
  }
}

/** The empty record that ends a stream (STDOUT, STDERR, STDIN, DATA, PARAMS). */
export function encodeStreamEnd(type: number, requestId: number): Uint8Array {
  return encodeRecord(type, requestId);
}

/**
 * BEGIN_REQUEST: role (RESPONDER, AUTHORIZER, FILTER) and flags (FCGI_KEEP_CONN).
 *
 * @example
 * ```ts
 * import { encodeBeginRequest, FCGI_KEEP_CONN, Role } from "fcgi";
 *
 * const begin = encodeBeginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN);
 * ```
 */
export function encodeBeginRequest(requestId: number, role: number, flags: number): Uint8Array {
  integerInRange("role", role, 0, 0xffff);
  integerInRange("flags", flags, 0, 0xff);
  integerInRange("requestId", requestId, 0, 0xffff);
  const out = new Uint8Array(16);
  writeHeader(out, 0, RecordType.BEGIN_REQUEST, requestId, 8, 0);
  out[8] = role >>> 8;
  out[9] = role & 0xff;
  out[10] = flags;
  return out;
}

/** ABORT_REQUEST: the web server gives up on the request. */
export function encodeAbortRequest(requestId: number): Uint8Array {
  return encodeRecord(RecordType.ABORT_REQUEST, requestId);
}

/**
 * END_REQUEST: the application's exit status (as an unsigned 32-bit number) and protocolStatus.
 *
 * @example
 * ```ts
 * import { encodeEndRequest, ProtocolStatus } from "fcgi";
 *
 * const end = encodeEndRequest(1, 0, ProtocolStatus.REQUEST_COMPLETE);
 * ```
 */
export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Uint8Array {
  integerInRange("appStatus", appStatus, -0x80000000, 0xffffffff); // a signed or unsigned 32-bit number
  integerInRange("protocolStatus", protocolStatus, 0, 0xff);
  integerInRange("requestId", requestId, 0, 0xffff);
  const out = new Uint8Array(16);
  writeHeader(out, 0, RecordType.END_REQUEST, requestId, 8, 0);
  const status = appStatus >>> 0;
  out[8] = status >>> 24;
  out[9] = (status >>> 16) & 0xff;
  out[10] = (status >>> 8) & 0xff;
  out[11] = status & 0xff;
  out[12] = protocolStatus;
  return out;
}

/** UNKNOWN_TYPE: the answer to a management record of a type the application does not know. */
export function encodeUnknownType(type: number): Uint8Array {
  integerInRange("type", type, 0, 0xff);
  const out = new Uint8Array(16);
  writeHeader(out, 0, RecordType.UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, 8, 0);
  out[8] = type;
  return out;
}

// A string as pair bytes: latin1 if every code unit fits a byte, else UTF-8.
function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

function toBytes(value: Bytesish): Uint8Array | string {
  if (typeof value !== "string") return value;
  return isLatin1(value) ? value : utf8.encode(value);
}

function lengthSize(length: number): number {
  if (length > MAX_PAIR_LENGTH) throw new RangeError(`a name or value of ${length} bytes exceeds 2^31 - 1`);
  return length < 128 ? 1 : 4;
}

function writeLength(out: Uint8Array, at: number, length: number): number {
  if (length < 128) {
    out[at] = length;
    return at + 1;
  }
  out[at] = (length >>> 24) | 0x80;
  out[at + 1] = (length >>> 16) & 0xff;
  out[at + 2] = (length >>> 8) & 0xff;
  out[at + 3] = length & 0xff;
  return at + 4;
}

// Writes a name or value; -1 if a string turns out to hold a character over 0xFF (then it must go
// as UTF-8, and the caller starts over with exact sizes).
function writeBytes(out: Uint8Array, at: number, value: Uint8Array | string): number {
  if (typeof value !== "string") {
    out.set(value, at);
    return at + value.length;
  }
  let all = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    all |= c;
    out[at + i] = c;
  }
  return all > 0xff ? -1 : at + value.length;
}

// Name-value pairs prepared for writing: each name and value (strings taken to be latin1 until
// writing shows otherwise: one pass over each string in the usual case), and the total size.
interface PreparedPairs {
  parts: (Uint8Array | string)[];
  size: number;
}

function prepare(pairs: Iterable<readonly [Bytesish, Bytesish]>): PreparedPairs {
  const parts: (Uint8Array | string)[] = [];
  let size = 0;
  for (const pair of pairs) {
    const n = pair[0];
    const v = pair[1];
    size += lengthSize(n.length) + lengthSize(v.length) + n.length + v.length;
    parts.push(n, v);
  }
  return { parts, size };
}

// The same pairs with every string that is not latin1 turned into UTF-8 bytes.
function exact(prepared: PreparedPairs): PreparedPairs {
  const parts = prepared.parts.map(toBytes);
  let size = 0;
  for (let i = 0; i < parts.length; i += 2) {
    size += lengthSize(parts[i].length) + lengthSize(parts[i + 1].length) + parts[i].length + parts[i + 1].length;
  }
  return { parts, size };
}

// Writes the pairs from `at`; returns the end, or -1 if a string was not latin1.
function writePairs(out: Uint8Array, at: number, parts: readonly (Uint8Array | string)[]): number {
  for (let i = 0; i < parts.length && at >= 0; i += 2) {
    const n = parts[i];
    const v = parts[i + 1];
    at = writeLength(out, at, n.length);
    at = writeLength(out, at, v.length);
    at = writeBytes(out, at, n);
    if (at >= 0) at = writeBytes(out, at, v);
  }
  return at;
}

// ---- the fast path ----
// Most pair lists are latin1 strings fitting one record. Writing them in one pass into a scratch
// buffer and copying the result out beats sizing them first (measured in bench/codec_encoders.ts,
// which also shows a WASM kernel doing no better: the strings must be copied by JS either way).
const scratch = new Uint8Array(FCGI_HEADER_LEN + STREAM_RECORD_CONTENT + 4 + 4);
let scratchBusy = false;

type PairList = readonly (readonly [Bytesish, Bytesish])[];

function list(pairs: Iterable<readonly [Bytesish, Bytesish]>): PairList {
  return Array.isArray(pairs) ? (pairs as PairList) : Array.from(pairs);
}

// Writes the pairs into scratch from `at`; returns the end, or -1 if they do not fit one record
// or a string holds a character over 0xFF (both rare: the caller takes the exact path).
function writeScratch(pairs: PairList, at: number): number {
  const out = scratch;
  const limit = at + STREAM_RECORD_CONTENT;
  let all = 0;
  for (let p = 0; p < pairs.length; p++) {
    const pair = pairs[p];
    const n = pair[0];
    const v = pair[1];
    const nameLength = n.length;
    const valueLength = v.length;
    if (at + 8 + nameLength + valueLength > limit) return -1;
    if (nameLength < 128) out[at++] = nameLength;
    else at = writeLength(out, at, nameLength);
    if (valueLength < 128) out[at++] = valueLength;
    else at = writeLength(out, at, valueLength);
    if (typeof n === "string") {
      for (let i = 0; i < nameLength; i++) {
        const c = n.charCodeAt(i);
        all |= c;
        out[at++] = c;
      }
    } else {
      out.set(n, at);
      at += nameLength;
    }
    if (typeof v === "string") {
      for (let i = 0; i < valueLength; i++) {
        const c = v.charCodeAt(i);
        all |= c;
        out[at++] = c;
      }
    } else {
      out.set(v, at);
      at += valueLength;
    }
  }
  return all > 0xff ? -1 : at;
}

/**
 * Name-value pairs as bytes (no record framing): the content of a PARAMS stream or of a
 * GET_VALUES / GET_VALUES_RESULT record. Strings are latin1 when every character fits a byte,
 * else UTF-8; pass a Uint8Array for exact bytes.
 *
 * @example
 * ```ts
 * encodePairs([["REQUEST_METHOD", "GET"], ["SCRIPT_FILENAME", new TextEncoder().encode("/srv/é.php")]]);
 * ```
 */
export function encodePairs(pairs: Iterable<readonly [Bytesish, Bytesish]>): Uint8Array {
  const all = list(pairs);
  if (!scratchBusy) {
    scratchBusy = true;
    try {
      const end = writeScratch(all, 0);
      if (end >= 0) return scratch.slice(0, end);
    } finally {
      scratchBusy = false;
    }
  }
  let prepared = prepare(all);
  for (;;) {
    const out = new Uint8Array(prepared.size);
    if (writePairs(out, 0, prepared.parts) >= 0) return out;
    prepared = exact(prepared);
  }
}

// Frames `content` as a stream of `type` records (split, padded) followed by the empty record.
function frameStream(type: number, requestId: number, content: Uint8Array): Uint8Array {
  const records = Math.ceil(content.length / STREAM_RECORD_CONTENT);
  const last = content.length - (records - 1) * STREAM_RECORD_CONTENT;
  const size = records * FCGI_HEADER_LEN + content.length + (records > 0 ? padding(last) : 0) + FCGI_HEADER_LEN;
  const out = new Uint8Array(size);
  let at = 0;
  for (let from = 0; from < content.length; from += STREAM_RECORD_CONTENT) {
    const n = Math.min(STREAM_RECORD_CONTENT, content.length - from);
    const pad = padding(n);
    writeHeader(out, at, type, requestId, n, pad);
    out.set(content.subarray(from, from + n), at + FCGI_HEADER_LEN);
    at += FCGI_HEADER_LEN + n + pad;
  }
  writeHeader(out, at, type, requestId, 0, 0);
  return out;
}

/**
 * A whole PARAMS stream in one buffer: the pairs in as many PARAMS records as they need, then the
 * empty PARAMS record that ends the stream.
 *
 * @example
 * ```ts
 * import { encodeParams } from "fcgi";
 * import { connect } from "node:net";
 *
 * const socket = connect("/run/php/php-fpm.sock");
 * socket.write(encodeParams(1, Object.entries({ REQUEST_METHOD: "GET", SCRIPT_FILENAME: "/srv/index.php" })));
 * ```
 */
export function encodeParams(requestId: number, pairs: Iterable<readonly [Bytesish, Bytesish]>): Uint8Array {
  integerInRange("requestId", requestId, 0, 0xffff);
  const all = list(pairs);
  if (!scratchBusy) {
    // The usual case, one PARAMS record, framed in place around the pairs.
    scratchBusy = true;
    try {
      const end = writeScratch(all, FCGI_HEADER_LEN);
      if (end >= 0) {
        const size = end - FCGI_HEADER_LEN;
        const pad = padding(size);
        const total = end + pad + (size > 0 ? FCGI_HEADER_LEN : 0);
        if (size > 0) writeHeader(scratch, 0, RecordType.PARAMS, requestId, size, pad);
        scratch.fill(0, end, end + pad);
        writeHeader(scratch, total - FCGI_HEADER_LEN, RecordType.PARAMS, requestId, 0, 0);
        return scratch.slice(0, total);
      }
    } finally {
      scratchBusy = false;
    }
  }
  let prepared = prepare(all);
  for (;;) {
    const size = prepared.size;
    if (size > STREAM_RECORD_CONTENT) {
      const content = new Uint8Array(size);
      if (writePairs(content, 0, prepared.parts) >= 0) return frameStream(RecordType.PARAMS, requestId, content);
      prepared = exact(prepared);
      continue;
    }
    const pad = padding(size);
    const out = new Uint8Array(FCGI_HEADER_LEN + size + pad + (size > 0 ? FCGI_HEADER_LEN : 0));
    if (writePairs(out, FCGI_HEADER_LEN, prepared.parts) >= 0) {
      if (size > 0) writeHeader(out, 0, RecordType.PARAMS, requestId, size, pad);
      writeHeader(out, out.length - FCGI_HEADER_LEN, RecordType.PARAMS, requestId, 0, 0);
      return out;
    }
    prepared = exact(prepared);
  }
}

/**
 * GET_VALUES: asks the application for the values of these names (FCGI_MAX_CONNS, FCGI_MAX_REQS,
 * FCGI_MPXS_CONNS). One management record, so the names must fit in 65535 bytes.
 */
export function encodeGetValues(names: Iterable<Bytesish>): Uint8Array {
  const pairs: [Bytesish, Bytesish][] = [];
  for (const name of names) pairs.push([name, ""]);
  return encodeRecord(RecordType.GET_VALUES, FCGI_NULL_REQUEST_ID, encodePairs(pairs));
}

/** GET_VALUES_RESULT: the application's answer to GET_VALUES. One management record. */
export function encodeGetValuesResult(pairs: Iterable<readonly [Bytesish, Bytesish]>): Uint8Array {
  return encodeRecord(RecordType.GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, encodePairs(pairs));
}
