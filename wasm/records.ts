// The record scanner: walks the record headers of one socket chunk and reports, per record, where
// its content lies in the chunk. Content bytes are never read, so JS copies in (through refill) only
// the stretches that hold headers; the content itself reaches the caller as views of the chunk.

import { RECORD_WINDOW, RECORD_WINDOW_SIZE, HEADER, STATE, EVENT_SIZE } from "./layout";
import {
  FCGI_VERSION_1, FCGI_HEADER_LEN, PIECE_START, PIECE_WHOLE, MAX_EVENTS,
  RECORD_SLOT_STATUS, RECORD_SLOT_AT, RECORD_SLOT_PHASE, RECORD_SLOT_TYPE, RECORD_SLOT_REQUEST_ID,
  RECORD_SLOT_CONTENT_LEFT, RECORD_SLOT_PADDING_LEFT, RECORD_SLOT_STARTED,
  SCAN_DONE, SCAN_FULL, SCAN_BAD_VERSION,
  RECORD_PHASE_BOUNDARY, RECORD_PHASE_HEADER, RECORD_PHASE_CONTENT, RECORD_PHASE_PADDING,
} from "../src/codec/wasm_interface";

/**
 * Asks JS to copy `size` bytes of the current chunk, from chunk offset `from`, into RECORD_WINDOW.
 * The scanner knows how far it got, so it asks for small windows after skipping a long content and
 * for doubling ones while headers come densely; returns the number of bytes copied.
 */
// @ts-ignore: decorator
@external("env", "refill")
declare function refill(from: i32, size: i32): i32;

/** Refill size after a long skip: enough for several small records, cheap when only one header is needed. */
const MIN_FILL: i32 = 2048;

// @ts-ignore: decorator
@inline function stop(status: i32, at: i32, phase: i32): void {
  store<i32>(STATE, status, RECORD_SLOT_STATUS << 2);
  store<i32>(STATE, at, RECORD_SLOT_AT << 2);
  store<i32>(STATE, phase, RECORD_SLOT_PHASE << 2);
}

// @ts-ignore: decorator
@inline function event(table: usize, n: i32, type: i32, flags: i32, requestId: i32, offset: i32, length: i32): void {
  const e = table + <usize>(n * EVENT_SIZE);
  store<i32>(e, type | (flags << 8) | (requestId << 16), 0);
  store<i32>(e, offset, 4);
  store<i32>(e, length, 8);
}

/**
 * Scans a chunk of `chunkLength` bytes from offset `start`, which must be a record boundary; if
 * `withHeader` is 1, a header completed from the previous chunk waits in HEADER and its content
 * begins at `start`. Writes events to `table` and the end state to STATE; returns the event count.
 */
export function scanRecords(chunkLength: i32, start: i32, withHeader: i32, table: usize): i32 {
  let n = 0;
  let pos = start;
  let windowStart = 0;
  let windowEnd = 0;
  let filled = false;
  let fill = MIN_FILL;
  let first = withHeader != 0;
  while (true) {
    let h: usize;
    let contentStart: i32;
    if (first) {
      first = false;
      h = HEADER;
      contentStart = start;
    } else {
      const left = chunkLength - pos;
      if (left == 0) { stop(SCAN_DONE, pos, RECORD_PHASE_BOUNDARY); return n; }
      if (n == MAX_EVENTS) { stop(SCAN_FULL, pos, RECORD_PHASE_BOUNDARY); return n; }
      if (left < FCGI_HEADER_LEN) { stop(SCAN_DONE, pos, RECORD_PHASE_HEADER); return n; }
      if (pos + FCGI_HEADER_LEN > windowEnd) {
        // Grow the window while the gaps between headers are small (dense small records),
        // start small again after a long content was skipped.
        fill = filled && pos - windowEnd <= fill ? min(fill << 1, RECORD_WINDOW_SIZE) : MIN_FILL;
        filled = true;
        windowStart = pos;
        windowEnd = pos + refill(pos, min(fill, left));
      }
      h = RECORD_WINDOW + <usize>(pos - windowStart);
      contentStart = pos + FCGI_HEADER_LEN;
    }
    if (load<u8>(h) != FCGI_VERSION_1) { stop(SCAN_BAD_VERSION, contentStart - FCGI_HEADER_LEN, RECORD_PHASE_BOUNDARY); return n; }
    const type = <i32>load<u8>(h, 1);
    const requestId = (<i32>load<u8>(h, 2) << 8) | <i32>load<u8>(h, 3);
    const contentLength = (<i32>load<u8>(h, 4) << 8) | <i32>load<u8>(h, 5);
    const paddingLength = <i32>load<u8>(h, 6);
    const available = chunkLength - contentStart;
    if (contentLength <= available) {
      event(table, n++, type, PIECE_WHOLE, requestId, contentStart, contentLength);
      const end = contentStart + contentLength + paddingLength;
      if (end > chunkLength) {
        stop(SCAN_DONE, chunkLength, RECORD_PHASE_PADDING);
        store<i32>(STATE, end - chunkLength, RECORD_SLOT_PADDING_LEFT << 2);
        return n;
      }
      pos = end;
    } else {
      // The content runs past the chunk: report what is here, JS takes the rest from later chunks.
      if (available > 0) event(table, n++, type, PIECE_START, requestId, contentStart, available);
      stop(SCAN_DONE, chunkLength, RECORD_PHASE_CONTENT);
      store<i32>(STATE, type, RECORD_SLOT_TYPE << 2);
      store<i32>(STATE, requestId, RECORD_SLOT_REQUEST_ID << 2);
      store<i32>(STATE, contentLength - available, RECORD_SLOT_CONTENT_LEFT << 2);
      store<i32>(STATE, paddingLength, RECORD_SLOT_PADDING_LEFT << 2);
      store<i32>(STATE, available > 0 ? 1 : 0, RECORD_SLOT_STARTED << 2);
      return n;
    }
  }
}
