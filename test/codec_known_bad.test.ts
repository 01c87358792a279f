// One named regression test per codec-level known-bad input of shared/fastcgi.md, each run on the
// WASM codec and on the oracle (test/oracle/), both held to the same explicit expectation.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { encodeRecord, encodeStream } from "../src/codec/encode.ts";
import { FastCGIError } from "../src/errors.ts";
import { PIECE_END, PIECE_START, PIECE_WHOLE, type PairLimits } from "../src/codec/types.ts";
import { RecordType } from "../src/protocol/constants.ts";
import { chunksOf, concat, header, latin1, pair, pairLength, record } from "./oracle/build.ts";
import { type CodecImpl, type PairDecoderLike, type ParamsLike, type RecordDecoderLike, oracle } from "./oracle/cases.ts";

const wasm: CodecImpl = {
  name: "wasm",
  newRecordDecoder: () => new RecordDecoder(),
  newPairDecoder: (limits) => new PairDecoder(limits),
};
const IMPLS = [wasm, oracle];

type Piece = [type: number, requestId: number, content: string, flags: number];

/** Decodes chunks and returns the pieces (content as latin1) and the error code, if any. */
function decodeAll(d: RecordDecoderLike, chunks: Uint8Array[]): { pieces: Piece[]; error?: string } {
  const pieces: Piece[] = [];
  try {
    for (const chunk of chunks) d.decode(chunk, (t, id, c, f) => pieces.push([t, id, String.fromCharCode(...c), f]));
  } catch (e) {
    assert.ok(e instanceof FastCGIError, `a FastCGIError, not ${String(e)}`);
    return { pieces, error: e.code };
  }
  return { pieces };
}

/** Pushes pieces then ends; returns the pairs or the error code and the index of the piece that failed. */
function pairsOf(d: PairDecoderLike, pieces: Uint8Array[]): { pairs?: Array<[string, string]>; params?: ParamsLike; error?: string; at?: number | "end" } {
  let i = 0;
  try {
    for (; i < pieces.length; i++) d.push(pieces[i]!);
    const params = d.end();
    return { pairs: [...params], params };
  } catch (e) {
    assert.ok(e instanceof FastCGIError, `a FastCGIError, not ${String(e)}`);
    return { error: e.code, at: i < pieces.length ? i : "end" };
  }
}

function pairsWith(impl: CodecImpl, bytes: Uint8Array | Uint8Array[], limits?: PairLimits): ReturnType<typeof pairsOf> {
  return pairsOf(impl.newPairDecoder(limits), Array.isArray(bytes) ? bytes : [bytes]);
}

const NO_NAME_VALUE_LIMITS: PairLimits = { maxNameLength: Infinity, maxValueLength: Infinity };

// ---------------------------------------------------------------------------------------------
// Lengths at their encoding boundaries

test("a name-value length of 127 takes one byte and 128 takes four, for names and values", () => {
  for (const impl of IMPLS) {
    for (const [n, v] of [[127, 127], [127, 128], [128, 127], [128, 128]] as const) {
      const bytes = pair("n".repeat(n), "v".repeat(v));
      assert.equal(bytes.length, (n > 127 ? 4 : 1) + (v > 127 ? 4 : 1) + n + v);
      assert.deepEqual(pairsWith(impl, bytes).pairs, [["n".repeat(n), "v".repeat(v)]], `${impl.name} ${n}/${v}`);
      // The same bytes cut just after each length byte.
      for (let cut = 1; cut <= 8; cut++) {
        assert.deepEqual(pairsWith(impl, [bytes.subarray(0, cut), bytes.subarray(cut)]).pairs, [["n".repeat(n), "v".repeat(v)]], `${impl.name} ${n}/${v} cut ${cut}`);
      }
    }
  }
});

test("a length byte of 0x80 or more always starts a four-byte length, even for small values", () => {
  for (const impl of IMPLS) {
    // 0x80 0 0 5 is a legal four-byte encoding of 5.
    const bytes = concat([Uint8Array.of(0x80, 0, 0, 1), Uint8Array.of(0x80, 0, 0, 5), latin1("Xhello")]);
    assert.deepEqual(pairsWith(impl, bytes).pairs, [["X", "hello"]], impl.name);
    // A lone 0x80 is not a one-byte 128 (nor 0): the stream ends inside the length.
    assert.equal(pairsWith(impl, Uint8Array.of(0x80)).error, "PAIR_TRUNCATED", impl.name);
  }
});

test("record content of 127, 128 and 65535 bytes decodes whole; 65536 bytes must be two records", () => {
  for (const impl of IMPLS) {
    for (const n of [127, 128, 65535]) {
      const content = new Uint8Array(n).fill(0x41);
      const got = decodeAll(impl.newRecordDecoder(), [record(RecordType.STDOUT, 1, content)]);
      assert.deepEqual(got.pieces.map((p) => [p[0], p[2].length, p[3]]), [[6, n, PIECE_WHOLE]], `${impl.name} ${n}`);
    }
    // encodeRecord refuses rather than truncating the length to 16 bits (the HAProxy smuggling bug).
    assert.throws(() => encodeRecord(RecordType.STDOUT, 1, new Uint8Array(65536)), RangeError);
    const out: Uint8Array[] = [];
    encodeStream(RecordType.STDOUT, 1, new Uint8Array(65536).fill(0x42), out);
    const got = decodeAll(impl.newRecordDecoder(), [concat(out)]);
    assert.deepEqual(got.pieces.map((p) => p[2].length), [65528, 8], impl.name);
    assert.ok(got.pieces.every((p) => p[0] === 6 && p[1] === 1 && /^B*$/.test(p[2])));
  }
});

test("a 16-bit-truncated content length does not hide the extra bytes: they parse as the records they look like", () => {
  // What a proxy that wrote (65536 + 16) & 0xffff = 16 as the length would send: the rest of the
  // body is read as records. The decoder must read exactly what the headers say, nothing more.
  const smuggled = record(RecordType.BEGIN_REQUEST, 9, Uint8Array.of(0, 1, 0, 0, 0, 0, 0, 0));
  const body = concat([new Uint8Array(16).fill(0x20), smuggled]);
  const bytes = concat([header({ type: RecordType.STDIN, requestId: 1, contentLength: 16, paddingLength: 0 }), body]);
  for (const impl of IMPLS) {
    const got = decodeAll(impl.newRecordDecoder(), [bytes]);
    assert.deepEqual(got.pieces.map((p) => [p[0], p[1], p[2].length]), [[5, 1, 16], [1, 9, 8]], impl.name);
  }
});

test("a value of exactly 65536 bytes is accepted by default, 65537 is VALUE_TOO_LONG", () => {
  for (const impl of IMPLS) {
    const ok = pair("BIG", new Uint8Array(65536).fill(0x61));
    // Split the way PARAMS records must carry it: no record holds more than 65535 bytes.
    const got = pairsWith(impl, chunksOf(ok, 65535));
    assert.equal(got.params?.get("BIG")?.length, 65536, impl.name);
    const bad = pairsWith(impl, [pairLength(3), pairLength(65537, true), latin1("BIG")]);
    assert.deepEqual([bad.error, bad.at], ["VALUE_TOO_LONG", 1], impl.name);
  }
});

test("a name of exactly 1024 bytes is accepted by default, 1025 is NAME_TOO_LONG before any name byte arrives", () => {
  for (const impl of IMPLS) {
    assert.equal(pairsWith(impl, pair("n".repeat(1024), "v")).pairs?.[0]?.[0].length, 1024, impl.name);
    const bad = pairsWith(impl, [pairLength(1025, true), pairLength(0)]);
    assert.deepEqual([bad.error, bad.at], ["NAME_TOO_LONG", 1], impl.name);
  }
});

// ---------------------------------------------------------------------------------------------
// Lengths near 2^31 (libfcgi CVE-2025-23016)

const NEAR_2_31 = 0x7fff_ffff;

test("nameLength and valueLength near 2^31 are refused by the limits before anything is allocated", () => {
  const lengths = concat([pairLength(NEAR_2_31, true), pairLength(NEAR_2_31, true)]);
  for (const impl of IMPLS) {
    assert.equal(pairsWith(impl, lengths).error, "NAME_TOO_LONG", impl.name);
    assert.equal(pairsWith(impl, lengths, { maxNameLength: Infinity }).error, "VALUE_TOO_LONG", impl.name);
    // Both lengths allowed: their sum (2^32 - 2, which wraps to -2 in 32 bits) must still exceed the total.
    assert.equal(pairsWith(impl, lengths, NO_NAME_VALUE_LIMITS).error, "PARAMS_TOO_LARGE", impl.name);
    // A sum that wraps to a small positive number in 32 bits: 2^31 - 1 + 2^31 - 1 + 8 header bytes.
    assert.equal(pairsWith(impl, lengths, { ...NO_NAME_VALUE_LIMITS, maxTotalBytes: 0x7fff_ffff }).error, "PARAMS_TOO_LARGE", impl.name);
    for (const small of [0, 1, 2, 8]) {
      const one = concat([pairLength(NEAR_2_31, true), pairLength(small)]);
      assert.equal(pairsWith(impl, one, { maxNameLength: Infinity }).error, "PARAMS_TOO_LARGE", `${impl.name} 2^31-1 + ${small}`);
    }
  }
});

test("with every limit off, lengths near 2^31 are accepted but the stream must then really hold that many bytes", () => {
  const limits: PairLimits = { maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: Infinity };
  for (const impl of IMPLS) {
    const got = pairsWith(impl, [pairLength(NEAR_2_31, true), pairLength(NEAR_2_31, true), latin1("only a few bytes")], limits);
    assert.deepEqual([got.error, got.at], ["PAIR_TRUNCATED", "end"], impl.name);
  }
});

test("limits above 2^31 do not wrap around to small ones", () => {
  for (const impl of IMPLS) {
    for (const huge of [0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0005, Number.MAX_SAFE_INTEGER, Infinity]) {
      const limits = { maxNameLength: huge, maxValueLength: huge, maxTotalBytes: huge };
      assert.deepEqual(pairsWith(impl, pair("n".repeat(200), "v".repeat(300)), limits).pairs?.map(([n, v]) => [n.length, v.length]), [[200, 300]], `${impl.name} ${huge}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Cut pairs

test("a pair cut inside its length bytes is PAIR_TRUNCATED at end(), wherever the cut is", () => {
  const bytes = pair("n".repeat(130), "v".repeat(140));
  for (const impl of IMPLS) {
    for (let cut = 1; cut < 8; cut++) {
      const got = pairsWith(impl, [pair("ok", "1"), bytes.subarray(0, cut)]);
      assert.deepEqual([got.error, got.at], ["PAIR_TRUNCATED", "end"], `${impl.name} cut ${cut}`);
    }
    // The same cut, continued in the next piece, is fine.
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.equal(pairsWith(impl, [bytes.subarray(0, cut), bytes.subarray(cut)]).pairs?.length, 1, `${impl.name} cut ${cut}`);
    }
  }
});

test("a stream that ends after the lengths, or inside the name or value, is PAIR_TRUNCATED", () => {
  const bytes = pair("name", "value");
  for (const impl of IMPLS) {
    for (let end = 1; end < bytes.length; end++) assert.equal(pairsWith(impl, bytes.subarray(0, end)).error, "PAIR_TRUNCATED", `${impl.name} ${end}`);
    assert.deepEqual(pairsWith(impl, new Uint8Array(0)).pairs, [], impl.name);
  }
});

// ---------------------------------------------------------------------------------------------
// Record headers

test("a version byte other than 1 is BAD_VERSION after every earlier record, and the decoder stays failed", () => {
  for (const impl of IMPLS) {
    for (const version of [0, 2, 0x7f, 0xff]) {
      const good = concat([record(RecordType.STDIN, 1, "ab"), record(RecordType.STDIN, 1)]);
      const bad = record(RecordType.STDIN, 1, "x", { version });
      const d = impl.newRecordDecoder();
      const got = decodeAll(d, [concat([good, bad, record(RecordType.STDIN, 1, "never")])]);
      assert.deepEqual(got, { pieces: [[5, 1, "ab", PIECE_WHOLE], [5, 1, "", PIECE_WHOLE]], error: "BAD_VERSION" }, `${impl.name} version ${version}`);
      assert.equal(decodeAll(d, [record(RecordType.STDIN, 1, "ok")]).error, "BAD_VERSION", `${impl.name} stays failed`);
    }
  }
});

test("a bad version in a header cut across chunks is found once the header is complete", () => {
  const bytes = concat([record(RecordType.STDOUT, 1, "a"), record(RecordType.STDOUT, 1, "b", { version: 3 })]);
  for (const impl of IMPLS) {
    // The bad header is bytes 16..23; cuts past it find the error in the first chunk.
    for (let cut = 9; cut < bytes.length; cut++) {
      const d = impl.newRecordDecoder();
      const first = decodeAll(d, [bytes.subarray(0, cut)]);
      // Until the 8 header bytes are there, nothing is wrong yet (a header is judged whole).
      assert.equal(first.error, cut >= 24 ? "BAD_VERSION" : undefined, `${impl.name} cut ${cut}`);
      assert.deepEqual(first.pieces, [[6, 1, "a", PIECE_WHOLE]]);
      assert.equal(decodeAll(d, [bytes.subarray(cut)]).error, "BAD_VERSION", `${impl.name} cut ${cut}`);
    }
  }
});

test("a bad version in a long record's header (decoded record by record, not scanned) is BAD_VERSION too", () => {
  // Content of 4096 bytes or more, or content running past the chunk, takes the decoder's path for
  // long records; its header must be checked as strictly as a scanned one.
  for (const impl of IMPLS) {
    for (const [length, cut] of [[5000, 0], [65535, 0], [100, 50]] as const) {
      const bad = record(RecordType.STDIN, 1, "x".repeat(length), { version: 2 });
      const chunk = cut > 0 ? bad.subarray(0, 8 + cut) : bad;
      for (const before of [new Uint8Array(0), record(RecordType.STDIN, 1, "y".repeat(4096))]) {
        const got = decodeAll(impl.newRecordDecoder(), [concat([before, chunk])]);
        assert.equal(got.error, "BAD_VERSION", `${impl.name}: content ${length}${cut ? `, cut after ${cut}` : ""}, after ${before.length} bytes`);
        assert.ok(got.pieces.every(([type, , content]) => type === RecordType.STDIN && !content.startsWith("x")), `${impl.name}: the bad record's content was delivered`);
      }
    }
  }
});

test("an unknown record type with requestId 0 is decoded as an ordinary record", () => {
  for (const impl of IMPLS) {
    for (const type of [0, 12, 42, 0xff]) {
      const got = decodeAll(impl.newRecordDecoder(), [concat([record(type, 0, "mgmt"), record(type, 0), record(RecordType.GET_VALUES, 0)])]);
      assert.deepEqual(got, { pieces: [[type, 0, "mgmt", PIECE_WHOLE], [type, 0, "", PIECE_WHOLE], [9, 0, "", PIECE_WHOLE]] }, `${impl.name} type ${type}`);
    }
  }
});

test("records for ids never begun, and ABORT for unknown ids, are plain records to the codec", () => {
  // The codec has no notion of active requests: it reports them, the protocol layer ignores them.
  for (const impl of IMPLS) {
    const bytes = concat([record(RecordType.STDIN, 77, "x"), record(RecordType.ABORT_REQUEST, 500), record(RecordType.BEGIN_REQUEST, 1, new Uint8Array(8)), record(RecordType.BEGIN_REQUEST, 1, new Uint8Array(8))]);
    assert.deepEqual(decodeAll(impl.newRecordDecoder(), [bytes]).pieces.map((p) => [p[0], p[1]]), [[5, 77], [2, 500], [1, 1], [1, 1]], impl.name);
  }
});

test("a record split across chunks comes as PIECE_START … PIECE_END pieces, never an empty one", () => {
  const bytes = record(RecordType.STDOUT, 1, "abcdefgh", { padding: 8 });
  for (const impl of IMPLS) {
    const d = impl.newRecordDecoder();
    const got = decodeAll(d, [bytes.subarray(0, 10), new Uint8Array(0), bytes.subarray(10, 12), new Uint8Array(0), bytes.subarray(12, 16), bytes.subarray(16)]);
    assert.deepEqual(got.pieces, [[6, 1, "ab", PIECE_START], [6, 1, "cd", 0], [6, 1, "efgh", PIECE_END]], impl.name);
    assert.equal(d.idle, true, impl.name);
  }
});

test("a connection that sends 5 bytes and waits holds only its own state: hundreds of them complete in any order", () => {
  for (const impl of IMPLS) {
    const streams = Array.from({ length: 300 }, (_, i) => record(RecordType.PARAMS, i + 1, `conn ${i}`));
    const decoders = streams.map(() => impl.newRecordDecoder());
    const seen: string[] = [];
    decoders.forEach((d, i) => decodeAll(d, [streams[i]!.subarray(0, 5)]));
    assert.ok(decoders.every((d) => !d.idle), impl.name);
    for (let i = streams.length - 1; i >= 0; i--) {
      decoders[i]!.decode(streams[i]!.subarray(5), (t, id, c) => seen.push(`${t} ${id} ${String.fromCharCode(...c)}`));
    }
    assert.deepEqual(seen, streams.map((_, i) => `4 ${i + 1} conn ${i}`).reverse(), impl.name);
    assert.ok(decoders.every((d) => d.idle), impl.name);
  }
});

// ---------------------------------------------------------------------------------------------
// An endless PARAMS stream

test("an endless PARAMS stream hits PARAMS_TOO_LARGE at the limit, having kept no more than the limit", () => {
  for (const impl of IMPLS) {
    for (const [limits, max] of [[undefined, 1024 * 1024], [{ maxTotalBytes: 100_000 }, 100_000]] as const) {
      const records = impl.newRecordDecoder();
      const pairs = impl.newPairDecoder(limits);
      // PARAMS records of 65528 bytes, each full of small pairs, forever (bounded here at 64 MiB).
      const one = concat(Array.from({ length: 8191 }, (_, i) => pair(`N${i % 10}`, "1234")).concat([new Uint8Array(65528 - 8191 * 8)]));
      assert.equal(one.length, 65528);
      const rec = record(RecordType.PARAMS, 1, one);
      let pushed = 0;
      let error: unknown;
      for (let i = 0; i < 1024 && error === undefined; i++) {
        try {
          records.decode(rec, (type, _id, content) => {
            if (type !== RecordType.PARAMS) return;
            pairs.push(content);
            pushed += content.length;
          });
        } catch (e) {
          error = e;
        }
      }
      assert.ok(error instanceof FastCGIError && error.code === "PARAMS_TOO_LARGE", `${impl.name}: ${String(error)}`);
      // Nothing past the limit was accepted: the piece that would cross it was refused whole.
      assert.ok(pushed <= max && pushed + 65528 > max, `${impl.name}: ${pushed} bytes pushed`);
      assert.ok(error.message.length > 0);
    }
  }
});

test("a PARAMS stream of exactly maxTotalBytes is accepted, one byte more is PARAMS_TOO_LARGE", () => {
  for (const impl of IMPLS) {
    for (const max of [1000, 65536, 100_000]) {
      // One pair filling the stream to `max` bytes: a 1-byte name, a 4-byte value length, the value.
      const exact = pair("A", "v".repeat(max - 6));
      assert.equal(exact.length, max);
      for (const pieces of [[exact], chunksOf(exact, 333)]) {
        const limits: PairLimits = { ...NO_NAME_VALUE_LIMITS, maxTotalBytes: max };
        const ok = pairsWith(impl, pieces, limits);
        assert.equal(ok.error, undefined, `${impl.name}: ${max} bytes at maxTotalBytes ${max}`);
        assert.equal(ok.params?.get("A")?.length, max - 6);
        const over = pairsWith(impl, pair("A", "v".repeat(max - 5)), limits);
        assert.equal(over.error, "PARAMS_TOO_LARGE", `${impl.name}: ${max + 1} bytes at maxTotalBytes ${max}`);
      }
    }
  }
});

test("a single PARAMS pair declaring a huge value fails as soon as its lengths are read", () => {
  for (const impl of IMPLS) {
    const d = impl.newPairDecoder({ maxValueLength: Infinity });
    d.push(pairLength(4));
    assert.throws(() => d.push(pairLength(0x4000_0000, true)), (e: unknown) => e instanceof FastCGIError && e.code === "PARAMS_TOO_LARGE", impl.name);
  }
});

// ---------------------------------------------------------------------------------------------
// Names and values are bytes

test("a UTF-8 character straddling two PARAMS records reads back as its exact bytes", () => {
  const value = new TextEncoder().encode("/srv/é€𝄞.php");
  const bytes = pair("SCRIPT_FILENAME", value);
  for (const impl of IMPLS) {
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = pairsWith(impl, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(got.params?.getBytes("SCRIPT_FILENAME"), value, `${impl.name} cut ${cut}`);
      // get() is latin1: one character per byte, no replacement characters.
      assert.equal(got.params?.get("SCRIPT_FILENAME")?.length, value.length);
    }
  }
});

test("a parameter named __proto__ stays an ordinary own property and pollutes nothing", () => {
  for (const impl of IMPLS) {
    const got = pairsWith(impl, concat([pair("__proto__", "x"), pair("constructor", "y"), pair("Proxy", "z")]));
    const o = got.params!.toObject();
    assert.deepEqual(Object.entries(o), [["__proto__", "x"], ["constructor", "y"], ["Proxy", "z"]], impl.name);
    assert.equal(Object.getPrototypeOf(o), Object.prototype);
    assert.ok(Object.hasOwn(o, "__proto__"), "__proto__ is an own property, not the object's prototype");
    assert.equal(got.params!.get("__proto__"), "x");
  }
});

test("the decoder copies what it keeps: reusing a pushed piece's memory changes nothing", () => {
  for (const impl of IMPLS) {
    const bytes = concat([pair("A", "first"), pair("B", "second")]);
    const d = impl.newPairDecoder();
    const scratch = new Uint8Array(bytes.length);
    for (let at = 0; at < bytes.length; at += 3) {
      const piece = scratch.subarray(0, Math.min(3, bytes.length - at));
      piece.set(bytes.subarray(at, at + piece.length));
      d.push(piece);
      scratch.fill(0xee);
    }
    assert.deepEqual([...d.end()], [["A", "first"], ["B", "second"]], impl.name);
  }
});
