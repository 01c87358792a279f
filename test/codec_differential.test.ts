// Holds the WASM codec (RecordDecoder, PairDecoder) to the plain-TypeScript oracle in test/oracle/:
// the same streams, cut every possible way, must give the same pieces, pairs and errors. Also checks
// the oracle against hand-written expectations, and the encoders against the oracle decoder.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import process from "node:process";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { heap } from "../src/codec/wasm.ts";
import {
  encodeAbortRequest, encodeBeginRequest, encodeEndRequest, encodeGetValues, encodeGetValuesResult, encodePairs,
  encodeParams, encodeRecord, encodeStream, encodeStreamEnd, encodeUnknownType,
} from "../src/codec/encode.ts";
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import type { PairLimits } from "../src/codec/types.ts";
import { chunksOf, concat, header, latin1, pair, pairLength, pairs, record, stream } from "./oracle/build.ts";
import {
  type Case, type CodecImpl, checkCase, describeCase, diffTraces, makeCase, oracle, oracleRecords, runCase, shrinkCase,
} from "./oracle/cases.ts";
import { OraclePairDecoder, type OracleParams } from "./oracle/pairs.ts";
import { Prng } from "./oracle/prng.ts";

const wasm: CodecImpl = {
  name: "wasm",
  newRecordDecoder: () => new RecordDecoder(),
  newPairDecoder: (limits) => new PairDecoder(limits),
};

/** Asserts WASM and oracle agree on a case; on failure the message holds a shrunk case. */
function agree(c: Case, label: string): void {
  const diff = checkCase(c, wasm);
  if (diff === undefined) return;
  const small = shrinkCase(c, wasm, 2000);
  assert.fail(`${label}: WASM and oracle disagree\n${describeCase(small)}\n${checkCase(small, wasm) ?? diff}`);
}

const recordsCase = (bytes: Uint8Array, chunks: number[]): Case => ({ kind: "records", stream: bytes, chunks, records: [], truncated: 0 });
const pairsCase = (bytes: Uint8Array, chunks: number[], limits?: PairLimits): Case => ({ kind: "pairs", stream: bytes, chunks, limits, pairs: undefined });

/** Every way to cut `n` bytes once, every way twice when short, one byte at a time, and with empty chunks. */
function chunkings(n: number, rich = n <= 48): number[][] {
  const out: number[][] = [[n], n > 0 ? Array(n).fill(1) : [0], [0, n], [n, 0]];
  for (let i = 1; i < n; i++) {
    out.push([i, n - i], [i, 0, n - i]);
    if (rich) for (let j = i + 1; j < n; j++) out.push([i, j - i, n - j]);
  }
  return out;
}

function everyCut(bytes: Uint8Array, label: string, make: (chunks: number[]) => Case = (chunks) => recordsCase(bytes, chunks)): number {
  const all = chunkings(bytes.length);
  for (const chunks of all) agree(make(chunks), `${label}, chunks [${chunks.join(",")}]`);
  return all.length;
}

// ---------------------------------------------------------------------------------------------
// Seeded random streams

const SEED_BASE = Number(process.env.FCGI_DIFF_SEED ?? 1);
const CASES = Number(process.env.FCGI_DIFF_CASES ?? 100_000);

// 8-15 s on an idle 2-core machine, several times that on a busy one.
test(`${CASES} seeded random streams decode identically on WASM and the oracle`, { timeout: 180_000 }, () => {
  const started = Date.now();
  const failures: string[] = [];
  const kinds: Record<string, number> = {};
  for (let seed = SEED_BASE; seed < SEED_BASE + CASES; seed++) {
    const c = makeCase(seed);
    kinds[c.kind] = (kinds[c.kind] ?? 0) + 1;
    const diff = checkCase(c, wasm);
    if (diff === undefined) continue;
    const small = shrinkCase(c, wasm, 2000);
    failures.push(`seed ${seed}: ${describeCase(small)}\n${checkCase(small, wasm) ?? diff}`);
    if (failures.length >= 5) break;
  }
  console.log(`differential: seeds ${SEED_BASE}..${SEED_BASE + CASES - 1} (${JSON.stringify(kinds)}) in ${Date.now() - started} ms`);
  assert.deepEqual(failures, [], failures.join("\n\n"));
});

test("the oracle decodes what the reference builder wrote, record by record and pair by pair", () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const c = makeCase(seed);
    if (c.kind === "records") {
      // Walk the written records: complete ones are expected, a bad version header ends the stream.
      const expected: Array<[number, number, number[]]> = [];
      let error: string | undefined;
      for (let at = 0, i = 0; i < c.records.length && at + 8 <= c.stream.length; i++) {
        const s = c.records[i]!;
        if (s.version !== 1) {
          error = "error BAD_VERSION";
          break;
        }
        if (at + 8 + s.content.length > c.stream.length) break;
        expected.push([s.type, s.requestId, [...s.content]]);
        at += 8 + s.content.length + s.padding;
      }
      const got = oracleRecords(c.stream);
      assert.equal(got.error, error, `seed ${seed}`);
      assert.deepEqual(got.records.map((r) => [r.type, r.requestId, [...r.content]]), expected, `seed ${seed}`);
    } else if (c.kind === "pairs" && c.pairs !== undefined) {
      const d = new OraclePairDecoder({ maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: Infinity });
      d.push(c.stream);
      assert.deepEqual(d.end().list.map(([n, v]) => [[...n], [...v]]), c.pairs.map(([n, v]) => [[...n], [...v]]), `seed ${seed}`);
    }
  }
});

test("a trace difference is reported with the entry where the two runs part", () => {
  // The harness itself must be able to fail: a decoder that drops padding handling diverges.
  const broken: CodecImpl = {
    name: "broken",
    newRecordDecoder: () => {
      const d = new RecordDecoder();
      return { decode: (chunk, on) => d.decode(chunk, (t, id, c, f) => on(t, id + 1, c, f)), get idle() { return d.idle; } };
    },
    newPairDecoder: (limits) => new PairDecoder(limits),
  };
  const c = recordsCase(record(RecordType.STDIN, 1, "abc"), [3, 8]);
  const diff = checkCase(c, broken);
  assert.ok(diff?.includes("id=2"), diff);
  assert.equal(diffTraces(runCase(c, oracle), runCase(c, wasm)), undefined);
});

// ---------------------------------------------------------------------------------------------
// Hand-made record streams, cut at every point

const hello = latin1("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello");
const beginBody = Uint8Array.of(0, Role.RESPONDER, FCGI_KEEP_CONN, 0, 0, 0, 0, 0);

/** Named streams with the records the oracle must find in them (type, requestId, content). */
const RECORD_STREAMS: Array<[string, Uint8Array, Array<[number, number, string]>, string?]> = [
  ["an empty stream", new Uint8Array(0), []],
  ["one empty record", record(RecordType.STDIN, 1), [[5, 1, ""]]],
  ["a whole responder request", concat([
    record(RecordType.BEGIN_REQUEST, 1, beginBody),
    record(RecordType.PARAMS, 1, pairs([["REQUEST_METHOD", "GET"], ["QUERY_STRING", "a=1"]])),
    record(RecordType.PARAMS, 1),
    record(RecordType.STDIN, 1, "body"),
    record(RecordType.STDIN, 1),
  ]), [[1, 1, "\0\x01\x01\0\0\0\0\0"], [4, 1, "\x0e\x03REQUEST_METHODGET\x0c\x03QUERY_STRINGa=1"], [4, 1, ""], [5, 1, "body"], [5, 1, ""]]],
  ["a whole response", concat([record(RecordType.STDOUT, 1, hello), record(RecordType.STDOUT, 1), record(RecordType.END_REQUEST, 1, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0))]),
    [[6, 1, String.fromCharCode(...hello)], [6, 1, ""], [3, 1, "\0\0\0\0\0\0\0\0"]]],
  ["records with no padding at all", concat([record(7, 3, "x", { padding: 0 }), record(7, 3, "yz", { padding: 0 }), record(7, 3, "", { padding: 0 })]), [[7, 3, "x"], [7, 3, "yz"], [7, 3, ""]]],
  ["an empty record with 255 padding bytes that look like headers", concat([record(8, 2, "", { padding: 255, padByte: 1 }), record(8, 2, "d")]), [[8, 2, ""], [8, 2, "d"]]],
  ["content that looks like a record header", record(5, 1, header({ type: 4, requestId: 1, contentLength: 1, paddingLength: 0 })), [[5, 1, "\x01\x04\0\x01\0\x01\0\0"]]],
  ["an unknown type with requestId 0", record(200, 0, "??"), [[200, 0, "??"]]],
  ["type 0 and type 255", concat([record(0, 0), record(255, 65535, "z")]), [[0, 0, ""], [255, 65535, "z"]]],
  ["a reserved byte that is not zero", concat([header({ type: 5, requestId: 1, contentLength: 1, paddingLength: 0, reserved: 0xff }), latin1("q")]), [[5, 1, "q"]]],
  ["requestId 0x0102 is big-endian", record(5, 0x0102, "b"), [[5, 0x0102, "b"]]],
  ["a 127-byte and a 128-byte record", concat([record(6, 1, "a".repeat(127)), record(6, 1, "b".repeat(128))]), [[6, 1, "a".repeat(127)], [6, 1, "b".repeat(128)]]],
  ["a bad version first", record(5, 1, "x", { version: 0 }), [], "BAD_VERSION"],
  ["a bad version after two good records", concat([record(5, 1, "a"), record(5, 1), record(5, 1, "x", { version: 2 }), record(5, 1, "never")]), [[5, 1, "a"], [5, 1, ""]], "BAD_VERSION"],
  ["version 0xff after an empty record", concat([record(11, 0), header({ version: 0xff, type: 1, requestId: 1, contentLength: 0, paddingLength: 0 })]), [[11, 0, ""]], "BAD_VERSION"],
  ["a stream that stops inside a header", concat([record(5, 1, "a"), header({ type: 5, requestId: 1, contentLength: 4, paddingLength: 0 }).subarray(0, 5)]), [[5, 1, "a"]]],
  ["a stream that stops inside content", concat([record(5, 1, "a"), header({ type: 5, requestId: 1, contentLength: 4, paddingLength: 0 }), latin1("ab")]), [[5, 1, "a"]]],
];

for (const [name, bytes, expected, error] of RECORD_STREAMS) {
  test(`records: ${name} — the oracle finds exactly the records written, and WASM agrees at every cut`, () => {
    const got = oracleRecords(bytes);
    assert.deepEqual(got.records.map((r) => [r.type, r.requestId, String.fromCharCode(...r.content)]), expected);
    assert.equal(got.error, error === undefined ? undefined : `error ${error}`);
    everyCut(bytes, name);
  });
}

test("records: 65535-byte content, 255 padding, cut around every header and at sampled points", () => {
  const big = new Prng(7).bytes(65535);
  const bytes = concat([record(5, 1, big, { padding: 255, padByte: 0xee }), record(5, 1, "after"), record(5, 1)]);
  const edges = [0, 8, 65543, 65543 + 255, 65543 + 255 + 8, 65543 + 255 + 16, bytes.length - 8];
  const cuts = new Set<number>();
  for (const e of edges) for (let d = -9; d <= 9; d++) if (e + d > 0 && e + d < bytes.length) cuts.add(e + d);
  const r = new Prng(8);
  for (let i = 0; i < 100; i++) cuts.add(r.range(1, bytes.length - 1));
  for (const c of cuts) agree(recordsCase(bytes, [c, bytes.length - c]), `cut at ${c}`);
  for (const size of [1000, 4096, 65536, 65537]) agree(recordsCase(bytes, chunksOf(bytes, size).map((x) => x.length)), `chunks of ${size}`);
  const got = oracleRecords(bytes);
  assert.deepEqual(got.records.map((x) => x.content.length), [65535, 5, 0]);
});

test("records: more records in one chunk than one WASM scan reports (thousands of small records)", () => {
  const parts: Uint8Array[] = [];
  const r = new Prng(11);
  for (let i = 0; i < 10_000; i++) parts.push(record(r.range(1, 11), r.range(0, 3), r.bytes(r.pick([0, 0, 1, 3, 8])), { padding: r.pick([0, 0, 5, 8]) }));
  const bytes = concat(parts);
  agree(recordsCase(bytes, [bytes.length]), "whole");
  for (const first of [1, 7, 8, 4095 * 8, 4096 * 8 + 3, 65536, 65537, 70000]) agree(recordsCase(bytes, [first, bytes.length - first]), `first chunk ${first}`);
  const bad = concat([bytes, record(1, 1, "", { version: 9 })]);
  agree(recordsCase(bad, [bad.length]), "ending with a bad version");
});

test("records: one decoder may be used from inside another's handler, three deep", () => {
  const streams = [0, 1, 2].map((k) => concat([record(5, k + 1, "outer".repeat(k + 1)), record(6, k + 1, "x"), record(7, k + 1)]));
  const trace = (impl: CodecImpl): string[] => {
    const out: string[] = [];
    const ds = streams.map(() => impl.newRecordDecoder());
    const feed = (k: number): void => {
      ds[k]!.decode(streams[k]!, (t, id, c, f) => {
        out.push(`${k}: ${t} ${id} ${String.fromCharCode(...c)} ${f}`);
        if (k < 2 && t === 5) feed(k + 1);
      });
    };
    feed(0);
    return out;
  };
  assert.deepEqual(trace(wasm), trace(oracle));
  assert.equal(trace(oracle).length, 9);
});

// ---------------------------------------------------------------------------------------------
// Hand-made name-value streams

const PAIR_STREAMS: Array<[string, Uint8Array, Array<[string, string]> | string, PairLimits?]> = [
  ["no pairs", new Uint8Array(0), []],
  ["an empty name and an empty value", pair("", ""), [["", ""]]],
  ["a short pair", pair("REQUEST_METHOD", "GET"), [["REQUEST_METHOD", "GET"]]],
  ["four-byte lengths for short name and value (legal)", pair("A", "b", { wideName: true, wideValue: true }), [["A", "b"]]],
  ["a 127-byte name and a 128-byte value (1+4)", pair("n".repeat(127), "v".repeat(128)), [["n".repeat(127), "v".repeat(128)]]],
  ["a 128-byte name and a 127-byte value (4+1)", pair("n".repeat(128), "v".repeat(127)), [["n".repeat(128), "v".repeat(127)]]],
  ["duplicates: both kept, the last one wins in get()", pairs([["X", "1"], ["Y", "2"], ["X", "3"]]), [["X", "1"], ["Y", "2"], ["X", "3"]]],
  ["latin1 bytes 0x80-0xff stay one character each", pair(Uint8Array.of(0xe9, 0x80), Uint8Array.of(0xff, 0x00, 0x9f)), [["\u00e9\u0080", "\u00ff\u0000\u009f"]]],
  ["__proto__ and constructor are ordinary names", pairs([["__proto__", "p"], ["constructor", "c"], ["toString", "t"]]), [["__proto__", "p"], ["constructor", "c"], ["toString", "t"]]],
  ["a well-known name next to a near miss", pairs([["HTTP_HOST", "a"], ["HTTP_HOSX", "b"], ["HTTP_HOS", "c"], ["HTTP_HOST_", "d"]]), [["HTTP_HOST", "a"], ["HTTP_HOSX", "b"], ["HTTP_HOS", "c"], ["HTTP_HOST_", "d"]]],
  ["cut inside the four length bytes", pairLength(200, true).subarray(0, 2), "PAIR_TRUNCATED"],
  ["cut after the name length", Uint8Array.of(3), "PAIR_TRUNCATED"],
  ["cut inside the value", concat([pair("a", "b"), Uint8Array.of(1, 5), latin1("nval")]), "PAIR_TRUNCATED"],
  ["a name over the default 1024", concat([pairLength(1025, true), pairLength(0)]), "NAME_TOO_LONG"],
  ["a value over the default 65536", concat([pairLength(1), pairLength(65537, true)]), "VALUE_TOO_LONG"],
  ["lengths near 2^31 with no limits", concat([pairLength(0x7fff_ffff, true), pairLength(0x7fff_ffff, true)]), "PARAMS_TOO_LARGE", { maxNameLength: Infinity, maxValueLength: Infinity }],
  ["a name exactly at a small limit", pair("abcd", "v"), [["abcd", "v"]], { maxNameLength: 4 }],
  ["a name one over a small limit", pair("abcde", "v"), "NAME_TOO_LONG", { maxNameLength: 4 }],
  ["a stream exactly at maxTotalBytes", pairs([["a", "b"], ["c", "d"]]), [["a", "b"], ["c", "d"]], { maxTotalBytes: 8 }],
  ["a stream one over maxTotalBytes", pairs([["a", "b"], ["c", "de"]]), "PARAMS_TOO_LARGE", { maxTotalBytes: 8 }],
];

function oracleParams(bytes: Uint8Array, limits?: PairLimits): OracleParams | string {
  const d = new OraclePairDecoder(limits);
  try {
    d.push(bytes);
    return d.end();
  } catch (e) {
    return (e as { code: string }).code;
  }
}

for (const [name, bytes, expected, limits] of PAIR_STREAMS) {
  test(`pairs: ${name} — the oracle reads exactly that, and WASM agrees at every cut`, () => {
    const got = oracleParams(bytes, limits);
    assert.deepEqual(typeof got === "string" ? got : [...got.entries()], expected);
    everyCut(bytes, name, (chunks) => pairsCase(bytes, chunks, limits));
  });
}

test("pairs: every well-known name the scanner recognises, and near misses of each, read back the same", () => {
  const names = heap().names;
  assert.ok(names.length > 10);
  const list: Array<[string, string]> = [];
  for (const n of names) {
    list.push([n, `v:${n}`]);
    list.push([n.slice(0, -1), "short"], [n + "X", "long"], [n.slice(0, -1) + String.fromCharCode(n.charCodeAt(n.length - 1) ^ 1), "flip"], [n.toLowerCase(), "lower"]);
  }
  const bytes = pairs(list);
  agree(pairsCase(bytes, [bytes.length]), "whole");
  agree(pairsCase(bytes, chunksOf(bytes, 7).map((x) => x.length)), "7-byte pieces");
  agree(pairsCase(bytes, chunksOf(bytes, 1).map((x) => x.length)), "1-byte pieces");
  const p = new PairDecoder();
  p.push(bytes);
  const params = p.end();
  for (const n of names) assert.equal(params.get(n), `v:${n}`);
});

test("pairs: pieces larger than the WASM pair window, pairs straddling its edges", () => {
  const r = new Prng(21);
  const list: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 1200; i++) list.push([r.bytes(r.range(0, 30)), r.bytes(r.pick([0, 1, 20, 127, 128, 300]))]);
  list.push([latin1("BIG"), r.bytes(65536)]);
  for (let i = 0; i < 100; i++) list.push([latin1(`n${i}`), r.bytes(r.range(0, 200))]);
  const bytes = pairs(list);
  assert.ok(bytes.length > 5 * 32768);
  agree(pairsCase(bytes, [bytes.length]), "whole");
  for (const first of [32767, 32768, 32769, 65535, 65536, 65537, 98304]) agree(pairsCase(bytes, [first, bytes.length - first]), `first piece ${first}`);
  agree(pairsCase(bytes, chunksOf(bytes, 40000).map((x) => x.length)), "40000-byte pieces");
  // The biggest possible count of pairs in one window: 2-byte empty pairs.
  const empties = new Uint8Array(70_000);
  agree(pairsCase(empties, [empties.length]), "35000 empty pairs");
  agree(pairsCase(empties, [1, 32768, empties.length - 32769]), "35000 empty pairs, odd cut");
});

test("pairs: two decoders pushed in turn keep separate state", () => {
  const a = pairs([["REQUEST_METHOD", "POST"], ["A".repeat(200), "b".repeat(300)], ["Q", "1"]]);
  const b = pairs([["HTTP_HOST", "x"], ["Z".repeat(130), "y"]]);
  for (const size of [1, 2, 3, 5, 8, 13, 64]) {
    const run = (impl: CodecImpl): unknown[] => {
      const [da, db] = [impl.newPairDecoder(), impl.newPairDecoder()];
      const pa = chunksOf(a, size);
      const pb = chunksOf(b, size + 1);
      for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
        if (pa[i]) da.push(pa[i]!);
        if (pb[i]) db.push(pb[i]!);
      }
      return [[...da.end()], [...db.end()]];
    };
    assert.deepEqual(run(wasm), run(oracle), `pieces of ${size}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Encoders, decoded by the oracle

function oracleDecodeAll(bytes: Uint8Array): Array<{ type: number; requestId: number; content: Uint8Array }> {
  const got = oracleRecords(bytes);
  assert.equal(got.error, undefined);
  return got.records;
}

function paddedTo8(bytes: Uint8Array): boolean {
  // Walks the headers: each record (header + content + padding) must span a multiple of 8 bytes.
  for (let at = 0; at < bytes.length;) {
    const n = 8 + ((bytes[at + 4]! << 8) | bytes[at + 5]!) + bytes[at + 6]!;
    if (n % 8 !== 0) return false;
    at += n;
  }
  return true;
}

test("encoders: single records decode back to the same type, id and content, padded to 8", () => {
  const cases: Array<[Uint8Array, number, number, number[]]> = [
    [encodeRecord(RecordType.STDOUT, 1, latin1("abc")), 6, 1, [97, 98, 99]],
    [encodeRecord(RecordType.STDIN, 65535), 5, 65535, []],
    [encodeRecord(200, 0, new Uint8Array(65535).fill(7)), 200, 0, Array(65535).fill(7)],
    [encodeBeginRequest(1, Role.FILTER, FCGI_KEEP_CONN), 1, 1, [0, 3, 1, 0, 0, 0, 0, 0]],
    [encodeBeginRequest(0x1234, Role.AUTHORIZER, 0), 1, 0x1234, [0, 2, 0, 0, 0, 0, 0, 0]],
    [encodeAbortRequest(9), 2, 9, []],
    [encodeEndRequest(1, 0x01020304, ProtocolStatus.OVERLOADED), 3, 1, [1, 2, 3, 4, 2, 0, 0, 0]],
    [encodeEndRequest(1, -1, ProtocolStatus.UNKNOWN_ROLE), 3, 1, [255, 255, 255, 255, 3, 0, 0, 0]],
    [encodeUnknownType(42), 11, 0, [42, 0, 0, 0, 0, 0, 0, 0]],
    [encodeStreamEnd(RecordType.STDERR, 3), 7, 3, []],
  ];
  for (const [bytes, type, requestId, content] of cases) {
    const records = oracleDecodeAll(bytes);
    assert.equal(records.length, 1);
    assert.deepEqual([records[0]!.type, records[0]!.requestId, [...records[0]!.content]], [type, requestId, content]);
    assert.ok(paddedTo8(bytes));
    assert.equal(bytes[7], 0, "reserved byte");
  }
  assert.throws(() => encodeRecord(6, 1, new Uint8Array(65536)), RangeError);
});

test("encoders: encodeStream splits any length into records of at most 65535 bytes, zero-copy, and the oracle joins them back", () => {
  const r = new Prng(31);
  for (const n of [0, 1, 7, 8, 65527, 65528, 65529, 65535, 65536, 65537, 131071, 200_000]) {
    const data = r.bytes(n);
    const out: Uint8Array[] = [];
    encodeStream(RecordType.STDOUT, 2, data, out);
    for (const piece of out) if (piece.length > 0 && piece.buffer === data.buffer) assert.ok(piece.byteOffset >= data.byteOffset && piece.byteOffset + piece.length <= data.byteOffset + data.length);
    assert.ok(out.some((p) => p.buffer === data.buffer) || n === 0, "data pieces are views of the data");
    const bytes = concat([...out, encodeStreamEnd(RecordType.STDOUT, 2)]);
    assert.ok(paddedTo8(bytes), `n=${n}`);
    const records = oracleDecodeAll(bytes);
    assert.ok(records.every((x) => x.type === 6 && x.requestId === 2 && x.content.length <= 65535));
    assert.ok(records.slice(0, -1).every((x) => x.content.length > 0), "no empty record before the end");
    assert.equal(records.at(-1)!.content.length, 0);
    assert.deepEqual(concat(records.map((x) => x.content)), data);
    // The same through WASM, cut in odd places.
    agree(recordsCase(bytes, chunksOf(bytes, 9999).map((x) => x.length)), `encodeStream ${n}`);
  }
});

test("encoders: pairs and PARAMS decode back to the same bytes (latin1 strings as latin1, others as UTF-8)", () => {
  const utf8 = new TextEncoder();
  const r = new Prng(41);
  for (let round = 0; round < 300; round++) {
    const list: Array<[string | Uint8Array, string | Uint8Array]> = [];
    const want: Array<[Uint8Array, Uint8Array]> = [];
    for (let i = r.range(0, 8); i > 0; i--) {
      const item = (): [string | Uint8Array, Uint8Array] => {
        switch (r.below(4)) {
          case 0: { const s = String.fromCharCode(...r.bytes(r.pick([0, 1, 127, 128, 300]))); return [s, latin1(s)]; }
          case 1: { const s = `é€${r.below(1000)}𝄞`; return [s, utf8.encode(s)]; }
          case 2: { const b = r.bytes(r.chance(0.02) ? 70000 : r.pick([0, 5, 127, 128, 129])); return [b, b]; }
          default: { const s = "x".repeat(r.pick([126, 127, 128, 129])); return [s, latin1(s)]; }
        }
      };
      const [n, nb] = item();
      const [v, vb] = item();
      list.push([n, v]);
      want.push([nb, vb]);
    }
    const encoded = encodePairs(list);
    assert.deepEqual(encoded, pairs(want), "encodePairs writes what the reference writer writes");
    const d = new OraclePairDecoder({ maxValueLength: Infinity, maxNameLength: Infinity, maxTotalBytes: Infinity });
    d.push(encoded);
    assert.deepEqual(d.end().list.map(([n, v]) => [[...n], [...v]]), want.map(([n, v]) => [[...n], [...v]]));
    const params = encodeParams(7, list);
    assert.ok(paddedTo8(params));
    const records = oracleDecodeAll(params);
    assert.ok(records.every((x) => x.type === RecordType.PARAMS && x.requestId === 7));
    assert.equal(records.at(-1)!.content.length, 0);
    assert.ok(records.slice(0, -1).every((x) => x.content.length > 0 && x.content.length <= 65535));
    assert.deepEqual(concat(records.map((x) => x.content)), encoded);
  }
});

test("encoders: GET_VALUES carries names with empty values, GET_VALUES_RESULT the values, both on requestId 0", () => {
  const q = oracleDecodeAll(encodeGetValues(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]));
  assert.equal(q.length, 1);
  assert.deepEqual([q[0]!.type, q[0]!.requestId], [RecordType.GET_VALUES, 0]);
  const d = new OraclePairDecoder();
  d.push(q[0]!.content);
  assert.deepEqual([...d.end()], [["FCGI_MAX_CONNS", ""], ["FCGI_MAX_REQS", ""], ["FCGI_MPXS_CONNS", ""]]);
  const a = oracleDecodeAll(encodeGetValuesResult([["FCGI_MAX_CONNS", "10"], ["FCGI_MPXS_CONNS", "0"]]));
  assert.deepEqual([a[0]!.type, a[0]!.requestId], [RecordType.GET_VALUES_RESULT, 0]);
  const e = new OraclePairDecoder();
  e.push(a[0]!.content);
  assert.deepEqual([...e.end()], [["FCGI_MAX_CONNS", "10"], ["FCGI_MPXS_CONNS", "0"]]);
});

test("the reference writer and the encoders agree byte for byte on records padded to 8", () => {
  const r = new Prng(51);
  for (let i = 0; i < 500; i++) {
    const content = r.bytes(r.pick([0, 1, 7, 8, 9, r.range(0, 3000)]));
    const type = r.range(0, 255);
    const id = r.range(0, 65535);
    assert.deepEqual(encodeRecord(type, id, content), record(type, id, content));
  }
  assert.deepEqual(encodeParams(1, [["A", "b"]]), stream(RecordType.PARAMS, 1, pair("A", "b")));
});
