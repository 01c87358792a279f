/**
 * The incremental record decoder: socket chunks in, record pieces out, as views of the chunks.
 * One WebAssembly call per chunk scans the record headers (wasm/records.ts); the rest of a record
 * that began in an earlier chunk is handed out by JS alone, without copying anything into WASM.
 * @module
 */

import { FastCGIError } from "../errors.ts";
import type { RecordHandler } from "./types.ts";
import { heap } from "./wasm.ts";
import {
  EVENT_WORDS,
  FCGI_HEADER_LEN,
  FCGI_VERSION_1,
  MAX_EVENTS,
  PIECE_END,
  PIECE_START,
  PIECE_WHOLE,
  RECORD_PHASE_CONTENT,
  RECORD_PHASE_HEADER,
  RECORD_PHASE_PADDING,
  RECORD_SLOT_AT,
  RECORD_SLOT_CONTENT_LEFT,
  RECORD_SLOT_PADDING_LEFT,
  RECORD_SLOT_PHASE,
  RECORD_SLOT_REQUEST_ID,
  RECORD_SLOT_STARTED,
  RECORD_SLOT_STATUS,
  RECORD_SLOT_TYPE,
  SCAN_BAD_VERSION,
  SCAN_FULL,
} from "./wasm_interface.ts";

/** Records with at least this much content are decoded by JS header by header (see #longRecords). */
const LONG_RECORD = 4096;

/**
 * How many decode() calls are running, outermost first. A record handler may decode another
 * stream (a gateway, a test); that inner call must not overwrite the event table the outer one
 * is still dispatching from, so inner calls use the second table and copy their events out.
 */
let depth = 0;

/** The content of every empty record: nothing to view, so no view is made (two per request). */
const EMPTY = new Uint8Array(0);

/**
 * Decodes a FastCGI record stream incrementally. Keep one per connection: the state of a record
 * that straddles chunks lives here, while the WebAssembly module is shared by all decoders.
 *
 * Records arrive in order through the handler as pieces (see {@link RecordHandler}): a record
 * within one chunk comes whole, a record split across chunks comes as PIECE_START ... PIECE_END
 * pieces. Content is a view of the chunk passed to decode(), never a copy; padding is skipped.
 *
 * @example
 * ```ts
 * import { RecordDecoder, RecordType } from "fcgi";
 * import { connect } from "node:net";
 *
 * const socket = connect("/run/php/php-fpm.sock");
 * const body: Uint8Array[] = [];
 * const decoder = new RecordDecoder();
 * socket.on("data", (chunk: Uint8Array) => decoder.decode(chunk, (type, requestId, content, flags) => {
 *   if (type === RecordType.STDOUT) body.push(content.slice());
 * }));
 * ```
 */
export class RecordDecoder {
  // The record in progress when the last chunk ended (phase CONTENT or PADDING).
  #type = 0;
  #requestId = 0;
  #contentLeft = 0;
  #paddingLeft = 0;
  #started = false;
  // Up to FCGI_HEADER_LEN - 1 bytes of a header cut by the end of the last chunk.
  #pending: Uint8Array | undefined;
  #pendingLength = 0;
  #failed: unknown = undefined;

  /** True between records: no header, content or padding bytes are outstanding. */
  get idle(): boolean {
    return this.#contentLeft === 0 && this.#paddingLeft === 0 && this.#pendingLength === 0;
  }

  /**
   * Feeds one chunk of the stream; calls `onRecord` for every record piece it completes, in order.
   * Throws FastCGIError("BAD_VERSION") once every record before the bad header was delivered, and
   * from then on throws that error again on every call. If `onRecord` throws, the decoder is
   * likewise failed (the pieces after the failing one are lost) and rethrows that error later.
   */
  decode(chunk: Uint8Array, onRecord: RecordHandler): void {
    if (this.#failed !== undefined) throw this.#failed;
    depth++;
    try {
      this.#decode(chunk, onRecord);
    } catch (error) {
      this.#failed = error;
      throw error;
    } finally {
      depth--;
    }
  }

  #decode(chunk: Uint8Array, onRecord: RecordHandler): void {
    const length = chunk.length;
    if (length === 0) return;
    let pos = 0;
    // The record in progress continues: hand out its content straight from JS.
    if (this.#contentLeft > 0) {
      const n = Math.min(this.#contentLeft, length);
      this.#contentLeft -= n;
      const flags = (this.#started ? 0 : PIECE_START) | (this.#contentLeft === 0 ? PIECE_END : 0);
      this.#started = true;
      pos = n;
      onRecord(this.#type, this.#requestId, n === length ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, n), flags);
      if (pos === length) return;
    }
    if (this.#paddingLeft > 0) {
      const n = Math.min(this.#paddingLeft, length - pos);
      this.#paddingLeft -= n;
      pos += n;
      if (pos === length) return;
    }
    let withHeader = 0;
    if (this.#pendingLength > 0) {
      // Complete the cut header; the scan starts with it (from the module's HEADER area).
      const pending = this.#pending!;
      const need = FCGI_HEADER_LEN - this.#pendingLength;
      if (length - pos < need) {
        pending.set(chunk.subarray(pos), this.#pendingLength);
        this.#pendingLength += length - pos;
        return;
      }
      pending.set(chunk.subarray(pos, pos + need), this.#pendingLength);
      this.#pendingLength = 0;
      pos += need;
      withHeader = 1;
    } else {
      pos = this.#longRecords(chunk, pos, onRecord);
      if (pos === length) return;
    }
    const c = heap();
    if (withHeader === 1) c.u8.set(this.#pending!, c.HEADER);
    const nested = depth > 1;
    const table = nested ? c.EVENTS + MAX_EVENTS * EVENT_WORDS * 4 : c.EVENTS;
    const s = c.STATE >> 2;
    for (;;) {
      c.chunk = chunk;
      const count = c.scanRecords(length, pos, withHeader, table);
      c.chunk = c.u8; // do not keep a large chunk alive from the shared module
      const i32 = c.i32;
      const status = i32[s + RECORD_SLOT_STATUS];
      const at = i32[s + RECORD_SLOT_AT];
      // Save where the chunk ended before any handler runs: a handler may throw or decode more.
      switch (i32[s + RECORD_SLOT_PHASE]) {
        case RECORD_PHASE_HEADER:
          this.#pending ??= new Uint8Array(FCGI_HEADER_LEN);
          this.#pending.set(chunk.subarray(at));
          this.#pendingLength = length - at;
          break;
        case RECORD_PHASE_CONTENT:
          this.#type = i32[s + RECORD_SLOT_TYPE];
          this.#requestId = i32[s + RECORD_SLOT_REQUEST_ID];
          this.#contentLeft = i32[s + RECORD_SLOT_CONTENT_LEFT];
          this.#paddingLeft = i32[s + RECORD_SLOT_PADDING_LEFT];
          this.#started = i32[s + RECORD_SLOT_STARTED] !== 0;
          break;
        case RECORD_PHASE_PADDING:
          this.#paddingLeft = i32[s + RECORD_SLOT_PADDING_LEFT];
          break;
      }
      let events: Int32Array = i32;
      let k = table >> 2;
      if (nested) {
        events = i32.slice(k, k + count * EVENT_WORDS);
        k = 0;
      }
      // new Uint8Array(buffer, offset, length) is a view like subarray(), at half the cost on V8.
      const buffer = chunk.buffer;
      const byteOffset = chunk.byteOffset;
      for (let e = 0; e < count; e++, k += EVENT_WORDS) {
        const word = events[k];
        const contentLength = events[k + 2];
        const content = contentLength === 0 ? EMPTY : new Uint8Array(buffer, byteOffset + events[k + 1], contentLength);
        onRecord(word & 0xff, word >>> 16, content, (word >>> 8) & 0xff);
      }
      if (status === SCAN_FULL) {
        pos = at;
        withHeader = 0;
        continue;
      }
      if (status === SCAN_BAD_VERSION) {
        const version = withHeader === 1 && at < pos ? c.u8[c.HEADER] : chunk[at];
        throw new FastCGIError("BAD_VERSION", `FastCGI record header has version ${version}, expected ${FCGI_VERSION_1}`);
      }
      return;
    }
  }

  /**
   * Decodes, from `pos`, the records a scan would not help with: long ones (a body arriving in
   * records of up to 64 KiB) and one whose content runs to the end of the chunk. Each costs one
   * header read here, where a scan would cost a WASM call and a copy. Stops at the first short
   * record (the scanner's job) and returns where it stopped, or the chunk length when it is done.
   */
  #longRecords(chunk: Uint8Array, pos: number, onRecord: RecordHandler): number {
    const length = chunk.length;
    while (length - pos >= FCGI_HEADER_LEN && chunk[pos] === FCGI_VERSION_1) {
      const contentLength = (chunk[pos + 4] << 8) | chunk[pos + 5];
      const start = pos + FCGI_HEADER_LEN;
      const available = length - start;
      if (contentLength < available && contentLength < LONG_RECORD) break;
      const type = chunk[pos + 1];
      const requestId = (chunk[pos + 2] << 8) | chunk[pos + 3];
      const paddingLength = chunk[pos + 6];
      if (contentLength > available) {
        this.#type = type;
        this.#requestId = requestId;
        this.#contentLeft = contentLength - available;
        this.#paddingLeft = paddingLength;
        this.#started = available > 0;
        if (available > 0) onRecord(type, requestId, new Uint8Array(chunk.buffer, chunk.byteOffset + start, available), PIECE_START);
        return length;
      }
      const end = start + contentLength + paddingLength;
      if (end > length) this.#paddingLeft = end - length;
      onRecord(type, requestId, contentLength === 0 ? EMPTY : new Uint8Array(chunk.buffer, chunk.byteOffset + start, contentLength), PIECE_WHOLE);
      if (end >= length) return length;
      pos = end;
    }
    return pos;
  }
}
