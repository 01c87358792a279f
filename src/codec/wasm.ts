/**
 * Loads the codec's WebAssembly module (wasm/, embedded as base64) once, on first use, synchronously,
 * and keeps the JS views of its memory. Identical on Node, Deno and Bun: no file access, no flags.
 * @module
 */

import { WASM_MODULE_BASE64 } from "./wasm_module.generated.ts";

/**
 * The scanners of the WebAssembly module, where its buffers lie, and views of its memory. (The
 * sizes, slots and codes both sides agree on are constants in wasm_interface.ts.)
 */
export interface Codec {
  /** Scans a record-stream chunk (see wasm/records.ts); reads it through {@link Codec.chunk}. */
  readonly scanRecords: (chunkLength: number, start: number, withHeader: number, table: number) => number;
  /** Scans name-value bytes placed at PAIR_WINDOW and writes the pair table after them (see wasm/pairs.ts). */
  readonly scanPairs: (length: number, base: number, maxNameLength: number, maxValueLength: number, maxTotalBytes: number, resume: number) => number;
  /** Byte offset of the 8-byte header area (a header completed across chunks). */
  readonly HEADER: number;
  /** Byte offset of the scan state slots (i32). */
  readonly STATE: number;
  /** Byte offset of the event tables (two of MAX_EVENTS events, see wasm_interface.ts). */
  readonly EVENTS: number;
  /** Byte offset of the pair window (PAIR_WINDOW_SIZE bytes, then room for their pair table). */
  readonly PAIR_WINDOW: number;
  /** The well-known parameter names, by id (see wasm/vocab.ts). */
  readonly names: readonly string[];
  /** Byte view of the module's memory; re-created by {@link heap} if memory ever grows. */
  u8: Uint8Array;
  /** i32 view of the module's memory; re-created by {@link heap} if memory ever grows. */
  i32: Int32Array;
  /** The chunk scanRecords is reading; refill copies from it. Set just before each scan. */
  chunk: Uint8Array;
}

let codec: Codec | undefined;

/**
 * The codec module, compiled and instantiated on the first call.
 *
 * @example
 * ```ts
 * import { heap } from "./wasm.ts";
 *
 * const c = heap();
 * c.u8.set(new TextEncoder().encode("\x0b\x01REQUEST_URI/"), c.PAIR_WINDOW); // one name-value pair
 * ```
 */
export function heap(): Codec {
  if (codec === undefined) codec = load();
  // Growing a WebAssembly.Memory detaches the old buffer; the layout is static so this never
  // happens today, but a detached view would silently read zeros, so check the cheap way.
  else if (codec.u8.byteLength === 0) refresh(codec);
  return codec;
}

let memory: WebAssembly.Memory;

function refresh(c: Codec): void {
  c.u8 = new Uint8Array(memory.buffer);
  c.i32 = new Int32Array(memory.buffer);
}

function load(): Codec {
  // atob exists on Node 16+, Deno and Bun; the module is small, so synchronous compilation is fine.
  const text = atob(WASM_MODULE_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  let c: Codec | undefined;
  const env = {
    // The scanner asks for the stretches of the chunk that hold record headers (wasm/records.ts).
    refill(from: number, size: number): number {
      const chunk = c!.chunk;
      const end = Math.min(from + size, chunk.length);
      c!.u8.set(chunk.subarray(from, end), recordWindow);
      return end - from;
    },
  };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env });
  const x = instance.exports as Record<string, unknown>;
  const address = (name: string): number => (x[name] as WebAssembly.Global).value as number;
  memory = x.memory as WebAssembly.Memory;
  const recordWindow = address("RECORD_WINDOW");
  const u8 = new Uint8Array(memory.buffer);
  const names: string[] = [];
  const size = (x.vocabularySize as () => number)();
  for (let id = 0; id < size; id++) {
    const at = (x.vocabularyName as (id: number) => number)(id);
    const length = (x.vocabularyLength as (id: number) => number)(id);
    names.push(String.fromCharCode(...u8.subarray(at, at + length)));
  }
  c = {
    scanRecords: x.scanRecords as Codec["scanRecords"],
    scanPairs: x.scanPairs as Codec["scanPairs"],
    HEADER: address("HEADER"),
    STATE: address("STATE"),
    EVENTS: address("EVENTS"),
    PAIR_WINDOW: address("PAIR_WINDOW"),
    names,
    u8,
    i32: new Int32Array(memory.buffer),
    chunk: u8,
  };
  return c;
}
