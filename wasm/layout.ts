// The module's memory, laid out statically: every buffer the scanners use is reserved here at compile
// time, so memory never grows at run time and JS views of it stay valid (the loader still re-creates
// them if it ever finds them detached). Pointers are exported so the JS side never hard-codes them;
// the sizes both sides need are in src/codec/wasm_interface.ts.

import { MAX_EVENTS, EVENT_WORDS, PAIR_WINDOW_SIZE, PAIR_WORDS } from "../src/codec/wasm_interface";

/** Bytes of a record-stream chunk the scanner may look at at once (JS copies them in via refill). */
export const RECORD_WINDOW_SIZE: i32 = 65536;
/** The record window. 16 spare bytes so 8-byte loads near its end stay inside memory. */
export const RECORD_WINDOW: usize = memory.data(RECORD_WINDOW_SIZE + 16, 16);
/** One 8-byte record header completed from bytes of two chunks. */
export const HEADER: usize = memory.data(16, 16);

/** State of the last scan (i32 slots, the *_SLOT_* of src/codec/wasm_interface.ts). */
export const STATE: usize = memory.data(64, 16);

/** Bytes per event (EVENT_WORDS i32). */
export const EVENT_SIZE: i32 = EVENT_WORDS * 4;
/**
 * Two event tables: one for the outermost decode() and one for decode() calls made from inside a
 * record handler (those copy their events out before dispatching, so one spare table suffices).
 */
export const EVENTS: usize = memory.data(MAX_EVENTS * EVENT_SIZE * 2, 16);

/** Bytes per pair entry (PAIR_WORDS i32). */
export const PAIR_SIZE: i32 = PAIR_WORDS * 4;
/** Most pairs one window can complete: each takes at least two length bytes, plus one begun earlier. */
const MAX_WINDOW_PAIRS: i32 = PAIR_WINDOW_SIZE / 2 + 1;
/**
 * The pair window. A scan writes its pair table right after the bytes it was given (from the next
 * multiple of 8), so that JS copies bytes and table out with one call. 16 spare bytes at the end
 * for 8-byte loads.
 */
export const PAIR_WINDOW: usize = memory.data(PAIR_WINDOW_SIZE + 8 + MAX_WINDOW_PAIRS * PAIR_SIZE + 16, 16);
