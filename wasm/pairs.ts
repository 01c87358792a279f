// The name-value pair scanner (PARAMS, GET_VALUES, GET_VALUES_RESULT): reads the length bytes of
// each pair, checks both lengths against the limits before anything is sliced, and reports where
// the name and the value lie in the stream. Incremental: a pair may straddle windows anywhere,
// even inside its length bytes; the scanner's state lives in STATE between calls (JS saves and
// restores it per decoder, since many decoders share this module).

import { PAIR_WINDOW, STATE, PAIR_SIZE } from "./layout";
import { lookupName } from "./vocab";
import {
  PAIR_SLOT_PHASE, PAIR_SLOT_NEED, PAIR_SLOT_ACC, PAIR_SLOT_NAME_LENGTH, PAIR_SLOT_PAIR_START, PAIR_SLOT_LEFT,
  PAIR_PHASE_NAME_LENGTH, PAIR_PHASE_NAME_LENGTH_MORE, PAIR_PHASE_VALUE_LENGTH, PAIR_PHASE_VALUE_LENGTH_MORE, PAIR_PHASE_BODY,
  PAIR_NAME_TOO_LONG, PAIR_VALUE_TOO_LONG, PAIR_PARAMS_TOO_LARGE,
} from "../src/codec/wasm_interface";

/**
 * Scans `length` bytes in PAIR_WINDOW, which sit at stream offset `base`, continuing from the state
 * in STATE if `resume` is 1 (else from a pair boundary). Writes one entry per pair whose two
 * lengths became known, right after the bytes (from the next multiple of 8): valueOffset (a
 * stream offset), valueLength, and the well-known name's id, or -(nameLength + 1) for any other
 * name (it ends where the value begins; a name the window cuts is reported this way too, and JS
 * looks it up). Returns the count, or a PAIR_* error.
 * Name and value limits are at most 2^31 - 1 (JS clamps them: a 31-bit length never exceeds that);
 * the total limit is a double so that any JS number, Infinity included, compares exactly.
 */
export function scanPairs(length: i32, base: i32, maxNameLength: i32, maxValueLength: i32, maxTotalBytes: f64, resume: i32): i32 {
  let phase = PAIR_PHASE_NAME_LENGTH;
  let need = 0;
  let acc: u32 = 0;
  let nameLength = 0;
  let pairStart = base;
  let left: i64 = 0;
  if (resume) {
    phase = load<i32>(STATE, PAIR_SLOT_PHASE << 2);
    need = load<i32>(STATE, PAIR_SLOT_NEED << 2);
    acc = load<u32>(STATE, PAIR_SLOT_ACC << 2);
    nameLength = load<i32>(STATE, PAIR_SLOT_NAME_LENGTH << 2);
    pairStart = load<i32>(STATE, PAIR_SLOT_PAIR_START << 2);
    left = load<i64>(STATE, PAIR_SLOT_LEFT << 2);
  }
  let i = 0;
  let n = 0;
  const table = PAIR_WINDOW + <usize>((length + 7) & ~7);
  while (true) {
    let valueLength = -1;
    if (phase == PAIR_PHASE_NAME_LENGTH) {
      if (length - i >= 8) {
        // The usual case: both lengths (at most 4 + 4 bytes) lie in the window; no state machine.
        const p = PAIR_WINDOW + <usize>i;
        const b = <u32>load<u8>(p);
        if (b < 0x80) { nameLength = b; i += 1; }
        else { nameLength = <i32>(bswap<u32>(load<u32>(p)) & 0x7fffffff); i += 4; }
        const q = PAIR_WINDOW + <usize>i;
        const c = <u32>load<u8>(q);
        if (c < 0x80) { valueLength = c; i += 1; }
        else { valueLength = <i32>(bswap<u32>(load<u32>(q)) & 0x7fffffff); i += 4; }
      } else {
        if (i == length) break;
        const b = <u32>load<u8>(PAIR_WINDOW + i++);
        if (b < 0x80) { nameLength = b; phase = PAIR_PHASE_VALUE_LENGTH; }
        else { acc = b & 0x7f; need = 3; phase = PAIR_PHASE_NAME_LENGTH_MORE; }
      }
    } else if (phase == PAIR_PHASE_NAME_LENGTH_MORE) {
      while (need > 0 && i < length) { acc = (acc << 8) | <u32>load<u8>(PAIR_WINDOW + i++); need--; }
      if (need > 0) break;
      nameLength = <i32>acc;
      phase = PAIR_PHASE_VALUE_LENGTH;
    } else if (phase == PAIR_PHASE_VALUE_LENGTH) {
      if (i == length) break;
      const b = <u32>load<u8>(PAIR_WINDOW + i++);
      if (b < 0x80) valueLength = b;
      else { acc = b & 0x7f; need = 3; phase = PAIR_PHASE_VALUE_LENGTH_MORE; }
    } else if (phase == PAIR_PHASE_VALUE_LENGTH_MORE) {
      while (need > 0 && i < length) { acc = (acc << 8) | <u32>load<u8>(PAIR_WINDOW + i++); need--; }
      if (need > 0) break;
      valueLength = <i32>acc;
    } else {
      // PAIR_PHASE_BODY, continued from an earlier window: the bytes are only skipped (JS keeps a copy).
      const skip = <i32>min(left, <i64>(length - i));
      i += skip;
      left -= skip;
      if (left > 0) break;
      phase = PAIR_PHASE_NAME_LENGTH;
      pairStart = base + i;
    }
    if (valueLength >= 0) {
      // Both lengths known: check before anything is sliced. The sums are done in doubles (exact
      // below 2^53): two lengths near 2^31 must not wrap around (libfcgi CVE-2025-23016).
      if (nameLength > maxNameLength) return PAIR_NAME_TOO_LONG;
      if (valueLength > maxValueLength) return PAIR_VALUE_TOO_LONG;
      const nameOffset = base + i;
      if (<f64>nameOffset + <f64>nameLength + <f64>valueLength > maxTotalBytes) return PAIR_PARAMS_TOO_LARGE;
      const e = table + <usize>(n++ * PAIR_SIZE);
      const rest = length - i;
      const id = nameLength <= rest ? lookupName(PAIR_WINDOW + i, nameLength) : -1;
      store<i32>(e, nameOffset + nameLength, 0);
      store<i32>(e, valueLength, 4);
      store<i32>(e, id >= 0 ? id : -1 - nameLength, 8);
      const body = <i64>nameLength + <i64>valueLength;
      if (body <= <i64>rest) {
        i += <i32>body;
        phase = PAIR_PHASE_NAME_LENGTH;
        pairStart = base + i;
      } else {
        left = body - <i64>rest;
        i = length;
        phase = PAIR_PHASE_BODY;
        break;
      }
    }
  }
  store<i32>(STATE, phase, PAIR_SLOT_PHASE << 2);
  store<i32>(STATE, need, PAIR_SLOT_NEED << 2);
  store<u32>(STATE, acc, PAIR_SLOT_ACC << 2);
  store<i32>(STATE, nameLength, PAIR_SLOT_NAME_LENGTH << 2);
  store<i32>(STATE, pairStart, PAIR_SLOT_PAIR_START << 2);
  store<i64>(STATE, left, PAIR_SLOT_LEFT << 2);
  return n;
}
