// The record scanner: walks the record headers of one socket chunk and reports, per record, where
// its content lies in the chunk. Content bytes are never read, so JS copies in (through refill) only
// the stretches that hold headers; the content itself reaches the caller as views of the chunk.

import { RECORD_WINDOW, RECORD_WINDOW_SIZE, HEADER, STATE, MAX_EVENTS, EVENT_SIZE } from "./layout";

/**
 * Asks JS to copy `size` bytes of the current chunk, from chunk offset `from`, into RECORD_WINDOW.
 * The scanner knows how far it got, so it asks for small windows after skipping a long content and
 * for doubling ones while headers come densely; returns the number of bytes copied.
 */
// @ts-ignore: decorator
@external("env", "refill")
declare function refill(from: i32, size: i32): i32;

// Piece flags, as in src/codec/types.ts.
const PIECE_START: i32 = 1;
const PIECE_WHOLE: i32 = 3;

// STATE slots written by scanRecords (i32 each).
// 0 status: 0 the chunk is consumed, 1 the event table is full (call again from `at`), 2 a header has version != 1
// 1 at: chunk offset where the scan stopped (the next header, the partial header, or the bad header)
// 2 phase: what the chunk ended in: 0 between records, 1 a partial header (bytes from `at`), 2 content, 3 padding
// 3 type, 4 requestId, 5 contentLeft, 6 paddingLeft, 7 started (a piece of this record was reported)
export const SCAN_DONE: i32 = 0;
export const SCAN_FULL: i32 = 1;
export const SCAN_BAD_VERSION: i32 = 2;
export const PHASE_BOUNDARY: i32 = 0;
export const PHASE_HEADER: i32 = 1;
export const PHASE_CONTENT: i32 = 2;
export const PHASE_PADDING: i32 = 3;

/** Refill size after a long skip: enough for several small records, cheap when only one header is needed. */
const MIN_FILL: i32 = 2048;

// @ts-ignore: decorator
@inline function stop(status: i32, at: i32, phase: i32): void {
  store<i32>(STATE, status, 0);
  store<i32>(STATE, at, 4);
  store<i32>(STATE, phase, 8);
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
      if (left == 0) { stop(SCAN_DONE, pos, PHASE_BOUNDARY); return n; }
      if (n == MAX_EVENTS) { stop(SCAN_FULL, pos, PHASE_BOUNDARY); return n; }
      if (left < 8) { stop(SCAN_DONE, pos, PHASE_HEADER); return n; }
      if (pos + 8 > windowEnd) {
        // Grow the window while the gaps between headers are small (dense small records),
        // start small again after a long content was skipped.
        fill = filled && pos - windowEnd <= fill ? min(fill << 1, RECORD_WINDOW_SIZE) : MIN_FILL;
        filled = true;
        windowStart = pos;
        windowEnd = pos + refill(pos, min(fill, left));
      }
      h = RECORD_WINDOW + <usize>(pos - windowStart);
      contentStart = pos + 8;
    }
    if (load<u8>(h) != 1) { stop(SCAN_BAD_VERSION, contentStart - 8, PHASE_BOUNDARY); return n; }
    const type = <i32>load<u8>(h, 1);
    const requestId = (<i32>load<u8>(h, 2) << 8) | <i32>load<u8>(h, 3);
    const contentLength = (<i32>load<u8>(h, 4) << 8) | <i32>load<u8>(h, 5);
    const paddingLength = <i32>load<u8>(h, 6);
    const available = chunkLength - contentStart;
    if (contentLength <= available) {
      event(table, n++, type, PIECE_WHOLE, requestId, contentStart, contentLength);
      const end = contentStart + contentLength + paddingLength;
      if (end > chunkLength) {
        stop(SCAN_DONE, chunkLength, PHASE_PADDING);
        store<i32>(STATE, end - chunkLength, 24);
        return n;
      }
      pos = end;
    } else {
      // The content runs past the chunk: report what is here, JS takes the rest from later chunks.
      if (available > 0) event(table, n++, type, PIECE_START, requestId, contentStart, available);
      stop(SCAN_DONE, chunkLength, PHASE_CONTENT);
      store<i32>(STATE, type, 12);
      store<i32>(STATE, requestId, 16);
      store<i32>(STATE, contentLength - available, 20);
      store<i32>(STATE, paddingLength, 24);
      store<i32>(STATE, available > 0 ? 1 : 0, 28);
      return n;
    }
  }
}
