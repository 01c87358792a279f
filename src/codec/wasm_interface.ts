/**
 * The numbers the codec's WebAssembly module (wasm/) and its TypeScript face (decoder.ts, pairs.ts)
 * must agree on: table sizes, the slots of the scan state, result and phase codes. Both compilers
 * read this one file (wasm/ imports it), so it holds integer constants and nothing else:
 * AssemblyScript types each as i32. Addresses are not here: the module places its buffers itself
 * (wasm/layout.ts) and exports where they are.
 * @module
 */

// ---- the record header (src/codec/constants.ts gives them with the other protocol numbers) ----

/** The only protocol version there is; any other version byte is a decode error. */
export const FCGI_VERSION_1 = 1;
/** Size of every record header. */
export const FCGI_HEADER_LEN = 8;

// ---- record pieces (RecordHandler flags) ----

/** Flag bit on a record piece: the record starts in this piece. */
export const PIECE_START = 1;
/** Flag bit on a record piece: the record's content ends in this piece. */
export const PIECE_END = 2;
/** Flags of a record that arrived whole in one chunk. */
export const PIECE_WHOLE = 3;

// ---- the record scanner (wasm/records.ts scanRecords) ----

/** Events one scan reports at most before it stops and asks to be called again. */
export const MAX_EVENTS = 4096;
/** i32 words per event: type | flags << 8 | requestId << 16, then content offset, content length. */
export const EVENT_WORDS = 3;

// Where the scan stopped, in i32 slots of STATE.
/** Slot: a SCAN_* status. */
export const RECORD_SLOT_STATUS = 0;
/** Slot: chunk offset where the scan stopped (the next header, the partial header, or the bad header). */
export const RECORD_SLOT_AT = 1;
/** Slot: a RECORD_PHASE_*: what the chunk ended in. */
export const RECORD_SLOT_PHASE = 2;
/** Slot, in RECORD_PHASE_CONTENT: the type of the record the chunk cut. */
export const RECORD_SLOT_TYPE = 3;
/** Slot, in RECORD_PHASE_CONTENT: its requestId. */
export const RECORD_SLOT_REQUEST_ID = 4;
/** Slot, in RECORD_PHASE_CONTENT: its content bytes still to come. */
export const RECORD_SLOT_CONTENT_LEFT = 5;
/** Slot, in RECORD_PHASE_CONTENT or RECORD_PHASE_PADDING: its padding bytes still to come. */
export const RECORD_SLOT_PADDING_LEFT = 6;
/** Slot, in RECORD_PHASE_CONTENT: 1 if a piece of the record was reported already, else 0. */
export const RECORD_SLOT_STARTED = 7;

/** Status: the chunk is consumed. */
export const SCAN_DONE = 0;
/** Status: the event table is full; call again from the stop offset. */
export const SCAN_FULL = 1;
/** Status: the header at the stop offset has a version other than 1. */
export const SCAN_BAD_VERSION = 2;

/** Phase: the chunk ended between records. */
export const RECORD_PHASE_BOUNDARY = 0;
/** Phase: the chunk ended inside a header (its bytes start at the stop offset). */
export const RECORD_PHASE_HEADER = 1;
/** Phase: the chunk ended inside a record's content. */
export const RECORD_PHASE_CONTENT = 2;
/** Phase: the chunk ended inside a record's padding. */
export const RECORD_PHASE_PADDING = 3;

// ---- the name-value pair scanner (wasm/pairs.ts scanPairs) ----

/** Bytes of a name-value stream one pair scan looks at. */
export const PAIR_WINDOW_SIZE = 32768;
/** i32 words per pair entry: valueOffset, valueLength, then the name's id or -(nameLength + 1). */
export const PAIR_WORDS = 3;

// The scanner's state inside a pair, in i32 slots of STATE (JS saves and restores it per decoder).
/** Slot: a PAIR_PHASE_*. */
export const PAIR_SLOT_PHASE = 0;
/** Slot: length bytes still needed. */
export const PAIR_SLOT_NEED = 1;
/** Slot: the length accumulated so far (u32). */
export const PAIR_SLOT_ACC = 2;
/** Slot: the pair's nameLength. */
export const PAIR_SLOT_NAME_LENGTH = 3;
/** Slot: stream offset of the pair's first length byte. */
export const PAIR_SLOT_PAIR_START = 4;
/** Slots 6 (low word) and 7 (high word), 8-aligned: name and value bytes left, an i64 (two 31-bit lengths sum past 32 bits). */
export const PAIR_SLOT_LEFT = 6;

/** Phase: at a pair boundary, the next byte starts a nameLength (the scanner needs no other state). */
export const PAIR_PHASE_NAME_LENGTH = 0;
/** Phase: inside a 4-byte nameLength. */
export const PAIR_PHASE_NAME_LENGTH_MORE = 1;
/** Phase: the next byte starts the valueLength. */
export const PAIR_PHASE_VALUE_LENGTH = 2;
/** Phase: inside a 4-byte valueLength. */
export const PAIR_PHASE_VALUE_LENGTH_MORE = 3;
/** Phase: inside the name and value bytes. */
export const PAIR_PHASE_BODY = 4;

/** Error (a negative count): a nameLength above the limit. */
export const PAIR_NAME_TOO_LONG = -1;
/** Error: a valueLength above the limit. */
export const PAIR_VALUE_TOO_LONG = -2;
/** Error: a pair that would end past the stream's total limit. */
export const PAIR_PARAMS_TOO_LARGE = -3;
