// The module's memory, laid out statically: every buffer the scanners use is reserved here at compile
// time, so memory never grows at run time and JS views of it stay valid (the loader still re-creates
// them if it ever finds them detached). Pointers are exported so the JS side never hard-codes them.

/** Bytes of a record-stream chunk the scanner may look at at once (JS copies them in via refill). */
export const RECORD_WINDOW_SIZE: i32 = 65536;
/** The record window. 16 spare bytes so 8-byte loads near its end stay inside memory. */
export const RECORD_WINDOW: usize = memory.data(RECORD_WINDOW_SIZE + 16, 16);
/** One 8-byte record header completed from bytes of two chunks. */
export const HEADER: usize = memory.data(16, 16);

/** Output state of the last scan (i32 slots, see records.ts / pairs.ts). */
export const STATE: usize = memory.data(64, 16);

/** Events one scan may report before it stops and asks to be called again. */
export const MAX_EVENTS: i32 = 4096;
/** Bytes per event: three i32 (type | flags << 8 | requestId << 16, offset, length). */
export const EVENT_SIZE: i32 = 12;
/**
 * Two event tables: one for the outermost decode() and one for decode() calls made from inside a
 * record handler (those copy their events out before dispatching, so one spare table suffices).
 */
export const EVENTS: usize = memory.data(MAX_EVENTS * EVENT_SIZE * 2, 16);

/** Bytes of a name-value stream one pair scan looks at. */
export const PAIR_WINDOW_SIZE: i32 = 32768;
/** Bytes per pair entry: three i32 (valueOffset, valueLength, name id or -(nameLength + 1)). */
export const PAIR_SIZE: i32 = 12;
/** Most pairs one window can complete: each takes at least two length bytes, plus one begun earlier. */
const MAX_WINDOW_PAIRS: i32 = PAIR_WINDOW_SIZE / 2 + 1;
/**
 * The pair window. A scan writes its pair table right after the bytes it was given (from the next
 * multiple of 8), so that JS copies bytes and table out with one call. 16 spare bytes at the end
 * for 8-byte loads.
 */
export const PAIR_WINDOW: usize = memory.data(PAIR_WINDOW_SIZE + 8 + MAX_WINDOW_PAIRS * PAIR_SIZE + 16, 16);
