/**
 * The shapes shared by the record codec and anything that consumes it (the protocol core,
 * and the test oracle, which must produce the very same calls).
 * @module
 */

// The piece flags are numbers the WebAssembly scanner writes too, so they live with its interface.
export { PIECE_END, PIECE_START, PIECE_WHOLE } from "./wasm_interface.ts";

/**
 * Receives the decoded records of a byte stream, in order, as pieces.
 *
 * A record whose content lies within one input chunk arrives as one call with
 * `flags === PIECE_WHOLE`; a record split across chunks arrives as several calls, the first
 * with `PIECE_START`, the last with `PIECE_END`, and no piece is empty except the single
 * piece of an empty record. `content` is a view of the caller's chunk, never a copy: it is
 * valid only until the caller reuses that chunk's memory. Padding never reaches the handler.
 */
export type RecordHandler = (type: number, requestId: number, content: Uint8Array, flags: number) => void;

/** Limits the name-value decoder checks before it slices anything. */
export interface PairLimits {
  /** Largest name length, in bytes. Default 1024. */
  maxNameLength?: number;
  /** Largest value length, in bytes. Default 65536. */
  maxValueLength?: number;
  /** Largest total size of the whole name-value stream, in bytes. Default 1 MiB. */
  maxTotalBytes?: number;
}

/** A string or raw bytes, as name-value encoders accept them. */
export type Bytesish = string | Uint8Array;
