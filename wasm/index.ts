// Entry point of the codec's WebAssembly module: numbers in, numbers out. The TypeScript face is
// src/codec/ (wasm.ts loads this module; decoder.ts and pairs.ts drive the scanners).

export {
  RECORD_WINDOW, RECORD_WINDOW_SIZE, HEADER, STATE, MAX_EVENTS, EVENT_SIZE, EVENTS,
  PAIR_WINDOW, PAIR_WINDOW_SIZE,
} from "./layout";
export { scanRecords } from "./records";
export { scanPairs } from "./pairs";
export { vocabularySize, vocabularyName, vocabularyLength } from "./vocab";
