// Seeded differential cases shared by test/codec_differential.test.ts and bench/fuzz.ts: each seed
// makes one small stream (records, name-value pairs, PARAMS carried in records, or several decoders
// used interleaved and re-entrantly) plus a chunking; running a case against an implementation
// yields a trace of every observable effect, and two traces must be identical.
import { FastCGIError } from "../../src/errors.ts";
import type { PairLimits, RecordHandler } from "../../src/codec/types.ts";
import { concat, header, pairLength, padTo8 } from "./build.ts";
import { OracleRecordDecoder } from "./decoder.ts";
import { OraclePairDecoder } from "./pairs.ts";
import { Prng, caseSeed } from "./prng.ts";

/** What the tests need of a record decoder (the real RecordDecoder and the oracle both fit). */
export interface RecordDecoderLike {
  decode(chunk: Uint8Array, onRecord: RecordHandler): void;
  readonly idle: boolean;
}

/** What the tests read of decoded pairs (the real Params and OracleParams both fit). */
export interface ParamsLike {
  get(name: string): string | undefined;
  has(name: string): boolean;
  readonly size: number;
  entries(): Iterable<[string, string]>;
  keys(): Iterable<string>;
  [Symbol.iterator](): Iterator<[string, string]>;
  toObject(): Record<string, string>;
  getBytes(name: string): Uint8Array | undefined;
}

/** What the tests need of a name-value decoder. */
export interface PairDecoderLike {
  push(piece: Uint8Array): void;
  end(): ParamsLike;
}

/** One codec implementation under test. */
export interface CodecImpl {
  readonly name: string;
  newRecordDecoder(): RecordDecoderLike;
  newPairDecoder(limits?: PairLimits): PairDecoderLike;
}

/** The reference implementation. */
export const oracle: CodecImpl = {
  name: "oracle",
  newRecordDecoder: () => new OracleRecordDecoder(),
  newPairDecoder: (limits) => new OraclePairDecoder(limits),
};

/** One observable effect: a description, plus bytes where bytes were delivered. */
export interface TraceEntry {
  readonly what: string;
  readonly bytes?: Uint8Array;
}

/** Everything a run of a case observed, in order. */
export type Trace = TraceEntry[];

// ---------------------------------------------------------------------------------------------
// Cases

/** Record stream fed to one RecordDecoder. `chunks` are chunk sizes (0 = an empty decode call). */
export interface RecordsCase {
  readonly kind: "records";
  readonly stream: Uint8Array;
  readonly chunks: readonly number[];
  /** What the generator meant (for descriptions and the oracle's self-check). */
  readonly records: readonly RecordSpec[];
  /** Bytes dropped from the end of the built stream (a stream that stops mid-record). */
  readonly truncated: number;
}

/** Name-value stream fed to one PairDecoder. */
export interface PairsCase {
  readonly kind: "pairs";
  readonly stream: Uint8Array;
  readonly chunks: readonly number[];
  readonly limits: PairLimits | undefined;
  /** The pairs the generator wrote, when the stream is exactly them (no damage). */
  readonly pairs: ReadonlyArray<readonly [Uint8Array, Uint8Array]> | undefined;
}

/** A PARAMS stream cut into records among other records, decoded by a RecordDecoder feeding a PairDecoder. */
export interface ParamsCase {
  readonly kind: "params";
  readonly stream: Uint8Array;
  readonly chunks: readonly number[];
  readonly limits: PairLimits | undefined;
  readonly requestId: number;
}

/** Several decoders used in turn, and some decode/push calls made from inside a record handler. */
export interface InterleaveCase {
  readonly kind: "interleave";
  /** Record streams, each with its chunk sizes. */
  readonly recordStreams: ReadonlyArray<{ stream: Uint8Array; chunks: readonly number[] }>;
  /** Pair streams, each with its piece sizes and limits. */
  readonly pairStreams: ReadonlyArray<{ stream: Uint8Array; chunks: readonly number[]; limits: PairLimits | undefined }>;
  /** Steps: [decoder index (record decoders first, then pair decoders), nested: run the next step inside this one's first handler call]. */
  readonly schedule: ReadonlyArray<readonly [number, boolean]>;
}

/** Any differential case. */
export type Case = RecordsCase | PairsCase | ParamsCase | InterleaveCase;

/** One record as the generator wrote it. */
export interface RecordSpec {
  readonly version: number;
  readonly type: number;
  readonly requestId: number;
  readonly content: Uint8Array;
  readonly padding: number;
}

/** How big generated cases get: "test" keeps them tiny (100k in seconds), "fuzz" allows large ones. */
export type Profile = "test" | "fuzz";

// CGI variables web servers send (the names a codec is likely to special-case), and near misses.
const KNOWN_NAMES = [
  "REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME",
  "SCRIPT_FILENAME", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME", "HTTPS",
  "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT",
  "SERVER_NAME", "REDIRECT_STATUS", "PATH_INFO", "PATH_TRANSLATED", "HTTP_HOST", "HTTP_USER_AGENT",
  "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_COOKIE", "HTTP_PROXY", "HTTP_AUTHORIZATION", "PATH",
  "FCGI_DATA_LENGTH", "FCGI_DATA_LAST_MOD", "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS",
  "AUTH_TYPE", "REMOTE_USER", "HTTP_X_FORWARDED_FOR", "HTTP_SEC_FETCH_USER", "HTTP_TE",
];
const NEAR_NAMES = ["REQUEST_METHOd", "REQUEST_METHODS", "EQUEST_METHOD", "HTTP_HOSTX", "HTTP_HOS", "PAT", "PATH\0", "H", "", "__proto__", "constructor", "toString", "hasOwnProperty", "0", "10"];

/** The case for one seed. */
export function makeCase(seed: number, profile: Profile = "test"): Case {
  const r = new Prng(caseSeed(seed));
  const roll = r.below(100);
  if (roll < 50) return makeRecordsCase(r, profile);
  if (roll < 80) return makePairsCase(r, profile);
  if (roll < 93) return makeParamsCase(r, profile);
  return makeInterleaveCase(r, profile);
}

function contentLength(r: Prng, profile: Profile): number {
  const roll = r.below(1000);
  if (roll < 300) return 0;
  if (roll < 800) return r.range(1, 16);
  if (roll < 920) return r.range(17, 64);
  if (roll < 970) return r.pick([127, 128, 255, 256]);
  if (profile === "test") return r.range(65, 300);
  if (roll < 990) return r.range(1, 4096);
  return r.pick([65535, 65534, 65528, 32768, 40000, r.range(1, 65535)]);
}

function paddingLength(r: Prng, length: number): number {
  const roll = r.below(100);
  if (roll < 60) return padTo8(length);
  if (roll < 85) return 0;
  if (roll < 92) return r.range(1, 16);
  if (roll < 97) return r.range(0, 255);
  return 255;
}

function recordType(r: Prng): number {
  const roll = r.below(20);
  if (roll < 14) return r.range(1, 11);
  if (roll < 16) return 0;
  if (roll < 18) return r.range(12, 255);
  return r.pick([12, 127, 128, 255]);
}

function requestId(r: Prng): number {
  const roll = r.below(10);
  if (roll < 4) return 1;
  if (roll < 6) return 0;
  if (roll < 8) return r.range(2, 5);
  if (roll < 9) return 0xffff;
  return r.below(0x10000);
}

function genRecords(r: Prng, profile: Profile, count: number): RecordSpec[] {
  const out: RecordSpec[] = [];
  // Now and then thousands of tiny records: more than one WASM scan reports, over more than its window.
  const dense = profile === "fuzz" && r.chance(0.02);
  if (dense) count = r.range(4000, 9000);
  for (let i = 0; i < count; i++) {
    const length = dense ? r.pick([0, 0, 1, 2, 8]) : contentLength(r, profile);
    let content = r.bytes(length);
    // Content that looks like record headers must not make the decoder resynchronise.
    if (length >= 8 && r.chance(0.1)) content.set(header({ type: 4, requestId: 1, contentLength: 3, paddingLength: 5 }), r.below(length - 7));
    if (r.chance(0.05)) content = content.fill(1);
    const version = r.chance(0.03) ? r.pick([0, 2, 0xff, r.range(2, 255)]) : 1;
    out.push({ version, type: recordType(r), requestId: requestId(r), content, padding: paddingLength(r, length) });
  }
  return out;
}

function buildRecords(r: Prng, records: readonly RecordSpec[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const spec of records) {
    parts.push(header({ version: spec.version, type: spec.type, requestId: spec.requestId, contentLength: spec.content.length, paddingLength: spec.padding, reserved: r.chance(0.1) ? r.below(256) : 0 }));
    parts.push(spec.content);
    // Padding bytes carry no meaning; random ones catch a decoder that reads them.
    parts.push(r.chance(0.5) ? new Uint8Array(spec.padding) : r.bytes(spec.padding));
  }
  return concat(parts);
}

/** Chunk sizes for a stream: whole, single bytes, fixed sizes, random cuts, cuts at record edges, empty chunks. */
export function chunking(r: Prng, profile: Profile, length: number, edges: readonly number[] = []): number[] {
  const sizes: number[] = [];
  const roll = r.below(10);
  if (roll === 0 || length === 0) sizes.push(length);
  else if (roll === 1 && (length <= 96 || profile === "fuzz") && length <= 4096) for (let i = 0; i < length; i++) sizes.push(1);
  else if (roll <= 3) {
    let size = r.pick([2, 3, 7, 8, 9, 15, 16, 17, 64, 1000, r.range(1, 300)]);
    // Keep the number of decode calls sane on big streams.
    if (length / size > 2000) size = Math.ceil(length / r.range(100, 2000));
    for (let at = 0; at < length; at += size) sizes.push(Math.min(size, length - at));
  } else {
    const cuts = new Set<number>();
    const n = r.range(1, Math.min(profile === "fuzz" ? 16 : 6, length));
    for (let i = 0; i < n; i++) cuts.add(r.range(1, length - 1));
    // Cuts at or next to record boundaries: headers split right at their edges.
    if (roll >= 7) for (const e of edges) if (r.chance(0.5)) cuts.add(Math.max(1, Math.min(length - 1, e + r.range(-1, 1))));
    let prev = 0;
    for (const c of [...cuts].filter((c) => c > 0 && c < length).sort((a, b) => a - b)) {
      sizes.push(c - prev);
      prev = c;
    }
    sizes.push(length - prev);
  }
  if (r.chance(0.1)) sizes.splice(r.range(0, sizes.length), 0, 0);
  return sizes;
}

function recordEdges(records: readonly RecordSpec[]): number[] {
  const edges: number[] = [];
  let at = 0;
  for (const spec of records) {
    edges.push(at, at + 8);
    at += 8 + spec.content.length + spec.padding;
  }
  edges.push(at);
  return edges;
}

function makeRecordsCase(r: Prng, profile: Profile): RecordsCase {
  const records = genRecords(r, profile, r.range(0, profile === "fuzz" ? 12 : 4));
  let stream = buildRecords(r, records);
  let truncated = 0;
  if (stream.length > 0 && r.chance(0.1)) {
    truncated = r.range(1, Math.min(stream.length, 20));
    stream = stream.subarray(0, stream.length - truncated);
  }
  return { kind: "records", stream, chunks: chunking(r, profile, stream.length, recordEdges(records)), records, truncated };
}

function pairText(r: Prng, maxRandom: number): Uint8Array {
  const roll = r.below(20);
  if (roll < 4) return textBytes(r.pick(KNOWN_NAMES));
  if (roll < 5) {
    // A well-known name with one byte changed, dropped or added.
    const name = textBytes(r.pick(KNOWN_NAMES));
    const at = r.below(name.length);
    const how = r.below(3);
    if (how === 0) name[at] ^= 1 << r.below(8);
    return how === 0 ? name : how === 1 ? concat([name.subarray(0, at), name.subarray(at + 1)]) : concat([name.subarray(0, at), r.bytes(1), name.subarray(at)]);
  }
  if (roll < 6) return textBytes(r.pick(NEAR_NAMES));
  if (roll < 8) return new Uint8Array(0);
  if (roll < 9) return r.bytes(r.pick([127, 128, 129]));
  return r.bytes(r.range(1, maxRandom));
}

function textBytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A generated pair stream: bytes, the pairs when undamaged, and the limits to decode it with. */
interface GenPairs {
  stream: Uint8Array;
  pairs: Array<readonly [Uint8Array, Uint8Array]> | undefined;
  limits: PairLimits | undefined;
}

function genPairs(r: Prng, profile: Profile): GenPairs {
  const list: Array<readonly [Uint8Array, Uint8Array]> = [];
  const parts: Uint8Array[] = [];
  // Now and then thousands of tiny pairs: more than one WASM pair window holds.
  const count = profile === "fuzz" && r.chance(0.02) ? r.range(10_000, 20_000) : r.range(0, profile === "fuzz" ? 20 : 4);
  // Big values, but not thousands of them: 20 000 values of up to 70 KB made a 200 MB case whose
  // traces (every value as a JSON string, twice) ran the fuzzer out of heap. (The draw stays, so
  // every other seed makes the same case as before.)
  const big = profile === "fuzz" && r.chance(0.05) && count <= 20;
  for (let i = 0; i < count; i++) {
    const name = pairText(r, 24);
    const value = big && r.chance(0.3) ? r.bytes(r.range(1, 70000)) : r.chance(0.3) && list.length > 0 ? r.pick(list)[1] : pairText(r, 40);
    // Duplicated names: the last one wins in get().
    const useName = list.length > 0 && r.chance(0.15) ? r.pick(list)[0] : name;
    list.push([useName, value]);
    // A four-byte length for a short value is legal.
    parts.push(pairLength(useName.length, useName.length > 127 || r.chance(0.15)), pairLength(value.length, value.length > 127 || r.chance(0.15)), useName, value);
  }
  let stream = concat(parts);
  let pairs: Array<readonly [Uint8Array, Uint8Array]> | undefined = list;
  const damage = r.below(20);
  if (damage === 0 && stream.length > 0) {
    // Stops inside a pair (maybe inside its length bytes).
    stream = stream.subarray(0, r.range(0, stream.length - 1));
    pairs = undefined;
  } else if (damage === 1) {
    // A pair declaring a huge length: near 2^31, just over a limit, or whatever.
    const n = r.pick([0x7fff_ffff, 0x7fff_fffe, 0x4000_0000, 1025, 65537, 1024, 65536, r.below(0x8000_0000)]);
    const v = r.pick([0x7fff_ffff, 0x7fff_fff0, 0, 1, 65536, 65537, r.below(0x8000_0000)]);
    stream = concat([stream, pairLength(n, true), pairLength(v, v > 127 || r.chance(0.5)), r.bytes(r.range(0, 10))]);
    pairs = undefined;
  } else if (damage === 2) {
    stream = concat([stream, r.bytes(r.range(1, 12))]);
    pairs = undefined;
  }
  let limits: PairLimits | undefined;
  if (r.chance(0.5)) {
    limits = {};
    if (r.chance(0.5)) limits.maxNameLength = r.pick([0, 1, 13, 14, 15, 127, 128, 1024, r.range(0, 200)]);
    if (r.chance(0.5)) limits.maxValueLength = r.pick([0, 1, 39, 40, 127, 128, 65536, r.range(0, 200)]);
    if (r.chance(0.5)) limits.maxTotalBytes = r.pick([0, 1, stream.length, Math.max(0, stream.length - 1), stream.length + 1, r.range(0, stream.length + 8)]);
  } else if (r.chance(0.05)) {
    // Limits past 31 bits: no length can exceed them, and they must not wrap around to small ones.
    const huge = (): number => r.pick([0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0005, Number.MAX_SAFE_INTEGER, Infinity]);
    limits = { maxNameLength: huge(), maxValueLength: huge(), maxTotalBytes: huge() };
  }
  return { stream, pairs, limits };
}

function makePairsCase(r: Prng, profile: Profile): PairsCase {
  const g = genPairs(r, profile);
  return { kind: "pairs", stream: g.stream, chunks: chunking(r, profile, g.stream.length), limits: g.limits, pairs: g.pairs };
}

function makeParamsCase(r: Prng, profile: Profile): ParamsCase {
  const g = genPairs(r, profile);
  const id = requestId(r) || 1;
  const parts: Uint8Array[] = [];
  const others = (): void => {
    if (r.chance(0.2)) parts.push(buildRecords(r, genRecords(r, "test", 1).map((s) => ({ ...s, version: 1, type: s.type === 4 ? 5 : s.type }))));
  };
  others();
  // The PARAMS stream cut into records at arbitrary places (pairs straddle records).
  for (let at = 0; at < g.stream.length;) {
    const n = Math.min(g.stream.length - at, r.chance(0.2) ? 0xffff : r.range(1, 40));
    const pad = paddingLength(r, n);
    parts.push(header({ type: 4, requestId: id, contentLength: n, paddingLength: pad }), g.stream.subarray(at, at + n), r.bytes(pad));
    at += n;
    others();
  }
  parts.push(header({ type: 4, requestId: id, contentLength: 0, paddingLength: 0 }));
  if (r.chance(0.05)) parts.push(header({ version: 0, type: 4, requestId: id, contentLength: 0, paddingLength: 0 }));
  const stream = concat(parts);
  return { kind: "params", stream, chunks: chunking(r, profile, stream.length), limits: g.limits, requestId: id };
}

function makeInterleaveCase(r: Prng, profile: Profile): InterleaveCase {
  const recordStreams = [];
  const pairStreams = [];
  const nr = r.range(1, 3);
  const np = r.range(0, 2);
  for (let i = 0; i < nr; i++) {
    const stream = buildRecords(r, genRecords(r, profile, r.range(1, profile === "fuzz" ? 6 : 3)));
    recordStreams.push({ stream, chunks: chunking(r, profile, stream.length) });
  }
  for (let i = 0; i < np; i++) {
    const g = genPairs(r, profile);
    pairStreams.push({ stream: g.stream, chunks: chunking(r, profile, g.stream.length), limits: g.limits });
  }
  const pending = [...recordStreams.map((s) => s.chunks.length), ...pairStreams.map((s) => s.chunks.length)];
  const schedule: Array<readonly [number, boolean]> = [];
  for (;;) {
    const live = pending.map((n, i) => (n > 0 ? i : -1)).filter((i) => i >= 0);
    if (live.length === 0) break;
    const d = r.pick(live);
    pending[d]!--;
    schedule.push([d, d < nr && r.chance(0.4)]);
  }
  // A decoder is never re-entered from its own handler (that is not a supported use): every run of
  // nested steps must name distinct decoders.
  let chain = new Set<number>();
  for (let i = 0; i < schedule.length; i++) {
    const [d, nested] = schedule[i]!;
    chain.add(d);
    const following = schedule[i + 1];
    if (nested && (following === undefined || chain.has(following[0]))) schedule[i] = [d, false];
    if (!schedule[i]![1]) chain = new Set();
  }
  return { kind: "interleave", recordStreams, pairStreams, schedule };
}

// ---------------------------------------------------------------------------------------------
// Running a case

function errorText(e: unknown): string {
  if (e instanceof FastCGIError) return `error ${e.code}`;
  return `non-FastCGIError ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
}

/**
 * Copies the chunks out of the stream into one fresh buffer, with a gap byte before each (so
 * byteOffset ≠ 0 and neighbouring chunks are not contiguous), and returns views of it.
 */
function sliceChunks(stream: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const buf = new Uint8Array(stream.length + sizes.length + 1);
  const out: Uint8Array[] = [];
  let at = 0;
  let to = 1;
  for (const n of sizes) {
    buf.set(stream.subarray(at, at + n), to);
    out.push(buf.subarray(to, to + n));
    at += n;
    to += n + 1;
  }
  return out;
}

/** Overwrites a chunk after use: a decoder that kept a view instead of copying then sees garbage. */
function scribble(chunk: Uint8Array): void {
  chunk.fill(0xa5);
}

function pieceHandler(trace: Trace, label: string, chunk: () => Uint8Array, inner?: () => void): RecordHandler {
  let innerDone = inner === undefined;
  return (type, requestId, content, flags) => {
    const c = chunk();
    const isView = content.length === 0 || (content.buffer === c.buffer && content.byteOffset >= c.byteOffset && content.byteOffset + content.length <= c.byteOffset + c.length);
    trace.push({ what: `${label}piece type=${type} id=${requestId} flags=${flags} length=${content.length}${isView ? "" : " NOT A VIEW OF THE CHUNK"}`, bytes: content.slice() });
    if (!innerDone) {
      innerDone = true;
      inner!();
    }
  };
}

function runRecords(c: RecordsCase | { stream: Uint8Array; chunks: readonly number[] }, impl: CodecImpl): Trace {
  const trace: Trace = [];
  const d = impl.newRecordDecoder();
  const chunks = sliceChunks(c.stream, c.chunks);
  let current = chunks[0] ?? new Uint8Array(0);
  const onRecord = pieceHandler(trace, "", () => current);
  for (let i = 0; i < chunks.length; i++) {
    current = chunks[i]!;
    try {
      d.decode(current, onRecord);
    } catch (e) {
      trace.push({ what: `chunk ${i}: ${errorText(e)}` });
      // A failed decoder stays failed, even on good bytes.
      try {
        d.decode(header({ type: 1, requestId: 1, contentLength: 0, paddingLength: 0 }), onRecord);
        trace.push({ what: "decoded again after the error" });
      } catch (e2) {
        trace.push({ what: `again: ${errorText(e2)}` });
      }
      return trace;
    }
    scribble(current);
    trace.push({ what: `chunk ${i} done, idle=${d.idle}` });
  }
  return trace;
}

const PROBES = ["", "missing", "__proto__", "REQUEST_METHOD", "\u00ff"];

/** Everything readable from a Params, in a fixed order. */
export function dumpParams(p: ParamsLike, trace: Trace, label = ""): void {
  const entries: string[] = [];
  for (const [n, v] of p.entries()) entries.push(n, v);
  // Look up every name, or with thousands of pairs the first and last 100 (lookups scan linearly).
  const all = entries.filter((_, i) => i % 2 === 0);
  const names = new Set<string>([...PROBES, ...(all.length > 300 ? [...all.slice(0, 100), ...all.slice(-100)] : all)]);
  const keys = [...p.keys()];
  const iterated = [...p].flat();
  trace.push({ what: `${label}size=${p.size} entries ${JSON.stringify(entries)}` });
  if (keys.join("\u0100") !== entries.filter((_, i) => i % 2 === 0).join("\u0100")) trace.push({ what: `${label}keys ${JSON.stringify(keys)}` });
  if (iterated.join("\u0100") !== entries.join("\u0100")) trace.push({ what: `${label}iterator ${JSON.stringify(iterated)}` });
  trace.push({ what: `${label}toObject ${JSON.stringify(Object.entries(p.toObject()))}` });
  for (const n of names) {
    const bytes = p.getBytes(n);
    trace.push({ what: `${label}get ${JSON.stringify(n)}: ${JSON.stringify(p.get(n))} has=${p.has(n)} bytes=${bytes === undefined ? "undefined" : bytes.length}`, bytes });
  }
}

function runPairs(c: PairsCase, impl: CodecImpl): Trace {
  const trace: Trace = [];
  const d = impl.newPairDecoder(c.limits);
  const pieces = sliceChunks(c.stream, c.chunks);
  for (let i = 0; i < pieces.length; i++) {
    try {
      d.push(pieces[i]!);
    } catch (e) {
      trace.push({ what: `push ${i}: ${errorText(e)}` });
      // A failed decoder stays failed.
      try {
        d.end();
        trace.push({ what: "ended after the error" });
      } catch (e2) {
        trace.push({ what: `end: ${errorText(e2)}` });
      }
      return trace;
    }
    scribble(pieces[i]!);
  }
  let p: ParamsLike;
  try {
    p = d.end();
  } catch (e) {
    trace.push({ what: `end: ${errorText(e)}` });
    return trace;
  }
  dumpParams(p, trace);
  return trace;
}

function runParams(c: ParamsCase, impl: CodecImpl): Trace {
  const trace: Trace = [];
  const d = impl.newRecordDecoder();
  let pairs: PairDecoderLike | undefined = impl.newPairDecoder(c.limits);
  const chunks = sliceChunks(c.stream, c.chunks);
  let current = chunks[0] ?? new Uint8Array(0);
  const onRecord: RecordHandler = (type, requestId, content) => {
    trace.push({ what: `piece type=${type} id=${requestId} length=${content.length}` });
    if (type !== 4 || requestId !== c.requestId || pairs === undefined) return;
    try {
      if (content.length === 0) {
        const p = pairs.end();
        pairs = undefined;
        dumpParams(p, trace);
      } else pairs.push(content);
    } catch (e) {
      pairs = undefined;
      trace.push({ what: `pairs: ${errorText(e)}` });
    }
  };
  for (let i = 0; i < chunks.length; i++) {
    current = chunks[i]!;
    try {
      d.decode(current, onRecord);
    } catch (e) {
      trace.push({ what: `chunk ${i}: ${errorText(e)}` });
      return trace;
    }
    scribble(current);
  }
  trace.push({ what: `end idle=${d.idle} params ${pairs === undefined ? "closed" : "open"}` });
  return trace;
}

function runInterleave(c: InterleaveCase, impl: CodecImpl): Trace {
  const trace: Trace = [];
  const nr = c.recordStreams.length;
  const recordDecoders = c.recordStreams.map(() => impl.newRecordDecoder());
  const pairDecoders = c.pairStreams.map((s) => impl.newPairDecoder(s.limits));
  const chunks = [...c.recordStreams.map((s) => sliceChunks(s.stream, s.chunks)), ...c.pairStreams.map((s) => sliceChunks(s.stream, s.chunks))];
  const next = chunks.map(() => 0);
  const failed = chunks.map(() => false);
  let step = 0;
  const runStep = (): void => {
    if (step >= c.schedule.length) return;
    const [d, nested] = c.schedule[step++]!;
    const i = next[d]!++;
    const chunk = chunks[d]![i]!;
    const label = `#${d}.${i} `;
    if (failed[d]) {
      trace.push({ what: `${label}skipped (failed)` });
      return;
    }
    try {
      if (d < nr) {
        // A nested step runs inside this decoder's first handler call, like a handler that feeds another connection.
        const onRecord = pieceHandler(trace, label, () => chunk, nested ? runStep : undefined);
        recordDecoders[d]!.decode(chunk, onRecord);
        trace.push({ what: `${label}done idle=${recordDecoders[d]!.idle}` });
      } else {
        pairDecoders[d - nr]!.push(chunk);
        trace.push({ what: `${label}pushed` });
      }
    } catch (e) {
      failed[d] = true;
      trace.push({ what: `${label}${errorText(e)}` });
    }
  };
  while (step < c.schedule.length) runStep();
  for (let j = 0; j < pairDecoders.length; j++) {
    if (failed[nr + j]) continue;
    try {
      dumpParams(pairDecoders[j]!.end(), trace, `#${nr + j} `);
    } catch (e) {
      trace.push({ what: `#${nr + j} end: ${errorText(e)}` });
    }
  }
  return trace;
}

/** Runs a case against one implementation and returns all it observed. */
export function runCase(c: Case, impl: CodecImpl): Trace {
  switch (c.kind) {
    case "records":
      return runRecords(c, impl);
    case "pairs":
      return runPairs(c, impl);
    case "params":
      return runParams(c, impl);
    case "interleave":
      return runInterleave(c, impl);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparing and describing

/** Hex of up to `max` bytes (with the total when longer). */
export function hex(bytes: Uint8Array, max = 64): string {
  let s = "";
  for (let i = 0; i < Math.min(bytes.length, max); i++) s += bytes[i]!.toString(16).padStart(2, "0");
  return bytes.length > max ? `${s}… (${bytes.length} bytes)` : s;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function entryText(e: TraceEntry | undefined): string {
  if (e === undefined) return "(nothing)";
  return e.bytes === undefined ? e.what : `${e.what} [${hex(e.bytes)}]`;
}

/** The first difference between two traces, described, or undefined when they are identical. */
export function diffTraces(expected: Trace, actual: Trace, expectedName = "oracle", actualName = "actual"): string | undefined {
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const a = expected[i];
    const b = actual[i];
    if (a !== undefined && b !== undefined && a.what === b.what && sameBytes(a.bytes, b.bytes)) continue;
    const before = expected.slice(Math.max(0, i - 3), i).map((e) => `    ${entryText(e)}`).join("\n");
    return `traces differ at entry ${i}:\n  same before:\n${before || "    (nothing)"}\n  ${expectedName}: ${entryText(a)}\n  ${actualName}: ${entryText(b)}`;
  }
  return undefined;
}

/** A short description of a case: enough to rebuild it by hand. */
export function describeCase(c: Case): string {
  switch (c.kind) {
    case "records":
      return `records case: stream ${hex(c.stream, 256)}, chunk sizes [${c.chunks.join(",")}], records ${c.records.map((s) => `{v${s.version} type ${s.type} id ${s.requestId} len ${s.content.length} pad ${s.padding}}`).join(" ")}${c.truncated ? `, last ${c.truncated} bytes cut off` : ""}`;
    case "pairs":
      return `pairs case: stream ${hex(c.stream, 256)}, piece sizes [${c.chunks.join(",")}], limits ${JSON.stringify(c.limits)}`;
    case "params":
      return `params case (PARAMS id ${c.requestId}): stream ${hex(c.stream, 256)}, chunk sizes [${c.chunks.join(",")}], limits ${JSON.stringify(c.limits)}`;
    case "interleave":
      return `interleave case: ${c.recordStreams.map((s, i) => `record stream #${i} ${hex(s.stream, 128)} chunks [${s.chunks.join(",")}]`).join("; ")}; ${c.pairStreams.map((s, i) => `pair stream #${c.recordStreams.length + i} ${hex(s.stream, 128)} pieces [${s.chunks.join(",")}] limits ${JSON.stringify(s.limits)}`).join("; ")}; schedule ${c.schedule.map(([d, n]) => `${d}${n ? "(nested)" : ""}`).join(" ")}`;
  }
}

/** Runs a case on both implementations; returns the difference, or undefined when they agree. */
export function checkCase(c: Case, impl: CodecImpl, reference: CodecImpl = oracle): string | undefined {
  let actual: Trace;
  try {
    actual = runCase(c, impl);
  } catch (e) {
    // The harness catches codec errors itself, so this is a crash inside a handler call or the harness.
    actual = [{ what: `crashed: ${errorText(e)}` }];
  }
  return diffTraces(runCase(c, reference), actual, reference.name, impl.name);
}

/**
 * Shrinks a diverging records/pairs case: merges chunks, then deletes stream bytes, as long as the
 * two implementations still disagree. Other kinds are returned unchanged. Bounded by `budget` runs.
 */
export function shrinkCase(c: Case, impl: CodecImpl, budget = 5000): Case {
  if (c.kind !== "records" && c.kind !== "pairs") return c;
  let best: RecordsCase | PairsCase = c;
  const fails = (x: RecordsCase | PairsCase): boolean => budget-- > 0 && checkCase(x, impl) !== undefined;
  const withParts = (stream: Uint8Array, chunks: number[]): RecordsCase | PairsCase => ({ ...best, stream, chunks, ...(best.kind === "records" ? { records: [], truncated: 0 } : { pairs: undefined }) });
  let progress = true;
  while (progress && budget > 0) {
    progress = false;
    // Fewer chunks: merge each neighbour pair.
    for (let i = 0; i + 1 < best.chunks.length; i++) {
      const chunks = [...best.chunks];
      chunks.splice(i, 2, chunks[i]! + chunks[i + 1]!);
      const x = withParts(best.stream, chunks);
      if (fails(x)) {
        best = x;
        progress = true;
        i--;
      }
    }
    // Fewer bytes: delete runs, halving the run size, taking the bytes out of whichever chunk holds them.
    for (let size = Math.max(1, best.stream.length >> 1); size >= 1; size >>= 1) {
      for (let at = 0; at + size <= best.stream.length; ) {
        const stream = concat([best.stream.subarray(0, at), best.stream.subarray(at + size)]);
        const chunks = removeFromChunks(best.chunks, at, size);
        const x = withParts(stream, chunks);
        if (fails(x)) {
          best = x;
          progress = true;
        } else at += size;
      }
    }
  }
  return best;
}

function removeFromChunks(chunks: readonly number[], at: number, size: number): number[] {
  const out: number[] = [];
  let start = 0;
  for (const n of chunks) {
    const lo = Math.max(start, at);
    const hi = Math.min(start + n, at + size);
    const left = n - Math.max(0, hi - lo);
    if (left > 0 || n === 0) out.push(left);
    start += n;
  }
  return out.length ? out : [0];
}

/** The records the oracle decodes from a whole stream, pieces joined (for checking the oracle against the generator). */
export function oracleRecords(stream: Uint8Array): { records: Array<{ type: number; requestId: number; content: Uint8Array }>; error: string | undefined } {
  const records: Array<{ type: number; requestId: number; content: Uint8Array }> = [];
  let parts: Uint8Array[] = [];
  try {
    new OracleRecordDecoder().decode(stream, (type, requestId, content, flags) => {
      parts.push(content);
      if (flags & 2) {
        records.push({ type, requestId, content: concat(parts) });
        parts = [];
      }
    });
  } catch (e) {
    return { records, error: errorText(e) };
  }
  return { records, error: undefined };
}
