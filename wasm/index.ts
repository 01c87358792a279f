// Entry point of the codec's WebAssembly module: numbers in, numbers out. The TypeScript face is
// src/codec/ (wasm.ts loads this module; decoder.ts and pairs.ts drive the scanners). Exported:
// the scanners, the vocabulary, and the addresses of the buffers JS reads and writes; the numbers
// both sides agree on are in src/codec/wasm_interface.ts.

export { RECORD_WINDOW, HEADER, STATE, EVENTS, PAIR_WINDOW } from "./layout";
export { scanRecords } from "./records";
export { scanPairs } from "./pairs";
export { vocabularySize, vocabularyName, vocabularyLength } from "./vocab";
