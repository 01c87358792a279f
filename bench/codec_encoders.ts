// Should the encoders be WASM? encodeParams (TypeScript, src/codec/encode.ts) against the same job
// done the WASM way: JS writes each name and value into WASM memory (a JS string cannot be read
// from WASM, so this loop is the same as the TypeScript encoder's), a WASM kernel writes the record
// header, the length prefixes and the padding around them, and JS copies the result out. The kernel
// is compiled here, from the AssemblyScript source below, with the pinned compiler.
// Also times encodeStream (headers only; the data goes out as views) for a 64 MiB body.
// Run: node scripts/run-ts.mjs bench/codec_encoders.ts | npx deno run -A bench/codec_encoders.ts | npx bun bench/codec_encoders.ts
import { encodeParams, encodeStream } from "../src/codec/encode.ts";
import { RecordType } from "../src/protocol/constants.ts";

declare const Deno: { version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

const KERNEL = `
// Pairs as JS left them: lengths (name, value) per pair at LENGTHS, their bytes back to back at BYTES.
export const LENGTHS: usize = memory.data(8 * 4096, 8);
export const BYTES: usize = memory.data(256 * 1024, 8);
export const OUT: usize = memory.data(300 * 1024, 8);

// @ts-ignore: decorator
@inline function writeLength(at: usize, n: i32): usize {
  if (n < 128) { store<u8>(at, <u8>n); return at + 1; }
  store<u32>(at, bswap<u32>(<u32>n | 0x80000000));
  return at + 4;
}

// @ts-ignore: decorator
@inline function header(at: usize, type: i32, id: i32, length: i32, padding: i32): void {
  store<u8>(at, 1); store<u8>(at, <u8>type, 1);
  store<u8>(at, <u8>(id >> 8), 2); store<u8>(at, <u8>id, 3);
  store<u8>(at, <u8>(length >> 8), 4); store<u8>(at, <u8>length, 5);
  store<u8>(at, <u8>padding, 6); store<u8>(at, 0, 7);
}

/** One PARAMS record with every pair, padded, then the empty PARAMS; returns its size. */
export function encodeParams(count: i32, requestId: i32): i32 {
  let at = OUT + 8;
  let from = BYTES;
  for (let i = 0; i < count; i++) {
    const nameLength = load<i32>(LENGTHS + <usize>(i * 8));
    const valueLength = load<i32>(LENGTHS + <usize>(i * 8), 4);
    at = writeLength(at, nameLength);
    at = writeLength(at, valueLength);
    memory.copy(at, from, nameLength + valueLength);
    at += nameLength + valueLength;
    from += nameLength + valueLength;
  }
  const length = <i32>(at - OUT - 8);
  const padding = -length & 7;
  header(OUT, 4, requestId, length, padding);
  memory.fill(at, 0, padding);
  at += padding;
  header(at, 4, requestId, 0, 0);
  return <i32>(at + 8 - OUT);
}
`;

async function compileKernel(): Promise<WebAssembly.Instance> {
  const specifier = "assemblyscript/asc";
  const { default: asc } = await import(specifier);
  const { binary, error, stderr } = await asc.compileString(KERNEL, { optimizeLevel: 3, runtime: "stub", noAssert: true, use: ["abort="] });
  if (error || !binary) throw new Error(`kernel did not compile: ${error}\n${stderr}`);
  return new WebAssembly.Instance(new WebAssembly.Module(binary), {});
}

const kernel = await compileKernel();
const k = kernel.exports as Record<string, unknown>;
const memory = k.memory as WebAssembly.Memory;
const u8 = new Uint8Array(memory.buffer);
const i32 = new Int32Array(memory.buffer);
const LENGTHS = (k.LENGTHS as WebAssembly.Global).value as number;
const BYTES = (k.BYTES as WebAssembly.Global).value as number;
const OUT = (k.OUT as WebAssembly.Global).value as number;
const kernelEncode = k.encodeParams as (count: number, requestId: number) => number;

/** encodeParams the WASM way, for latin1 strings only (enough for the comparison). */
function wasmEncodeParams(requestId: number, pairs: readonly (readonly [string, string])[]): Uint8Array {
  let at = BYTES;
  let l = LENGTHS >> 2;
  for (const [name, value] of pairs) {
    for (let i = 0; i < name.length; i++) u8[at++] = name.charCodeAt(i);
    for (let i = 0; i < value.length; i++) u8[at++] = value.charCodeAt(i);
    i32[l++] = name.length;
    i32[l++] = value.length;
  }
  const size = kernelEncode(pairs.length, requestId);
  return u8.slice(OUT, OUT + size);
}

function nginxParams(i: number): [string, string][] {
  return [
    ["QUERY_STRING", `page=${i % 17}&sort=date`], ["REQUEST_METHOD", "GET"], ["CONTENT_TYPE", ""], ["CONTENT_LENGTH", ""],
    ["SCRIPT_NAME", "/index.php"], ["REQUEST_URI", `/index.php/articles/${i}?page=${i % 17}&sort=date`],
    ["DOCUMENT_URI", "/index.php"], ["DOCUMENT_ROOT", "/var/www/html"], ["SERVER_PROTOCOL", "HTTP/1.1"],
    ["REQUEST_SCHEME", "https"], ["HTTPS", "on"], ["GATEWAY_INTERFACE", "CGI/1.1"], ["SERVER_SOFTWARE", "nginx/1.26.3"],
    ["REMOTE_ADDR", `203.0.113.${i % 250}`], ["REMOTE_PORT", String(40000 + (i % 20000))], ["SERVER_ADDR", "192.0.2.10"],
    ["SERVER_PORT", "443"], ["SERVER_NAME", "example.com"], ["REDIRECT_STATUS", "200"],
    ["SCRIPT_FILENAME", "/var/www/html/index.php"], ["HTTP_HOST", "example.com"],
    ["HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"],
    ["HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
    ["HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"], ["HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"],
  ];
}

const SETS = 20_000;
const paramSets = Array.from({ length: SETS }, (_, i) => nginxParams(i));
// Both must produce the same bytes, or the comparison means nothing.
for (let i = 0; i < 50; i++) {
  const a = encodeParams(1, paramSets[i]);
  const b = wasmEncodeParams(1, paramSets[i]);
  if (a.length !== b.length || a.some((x, j) => x !== b[j])) throw new Error(`WASM kernel output differs for set ${i}`);
}

const BODY = 64 * 1024 * 1024;
const body = new Uint8Array(BODY);

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}
/** Median seconds of each function over `runs` rounds, the functions taking turns (load drifts). */
function timeTogether(fns: (() => unknown)[], runs = 9): number[] {
  for (const fn of fns) fn(), fn();
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < runs; r++) {
    fns.forEach((fn, i) => {
      const t0 = performance.now();
      fn();
      times[i].push((performance.now() - t0) / 1000);
    });
  }
  return times.map(median);
}

let sink = 0;
const [tsTime, wasmTime] = timeTogether([
  () => { for (const p of paramSets) sink += encodeParams(1, p).length; },
  () => { for (const p of paramSets) sink += wasmEncodeParams(1, p).length; },
]);
const ts = SETS / tsTime;
const wasm = SETS / wasmTime;
const [streamTime] = timeTogether([() => {
  const out: Uint8Array[] = [];
  encodeStream(RecordType.STDOUT, 1, body, out);
  sink += out.length;
}]);
const stream = BODY / 1e9 / streamTime;

const runtime = typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;
console.log(`${runtime}: encoders, median of 9 runs (${sink > 0 ? "ok" : "?"})`);
console.log("| encoder | TypeScript | WASM kernel | TS/WASM |");
console.log("|---|---:|---:|---:|");
console.log(`| encodeParams, 25 nginx params (sets/s) | ${(ts / 1e6).toFixed(3)} M | ${(wasm / 1e6).toFixed(3)} M | ${(ts / wasm).toFixed(2)}× |`);
console.log(`| encodeStream, 64 MiB body in views (GB/s) | ${stream.toFixed(1)} | – | – |`);
