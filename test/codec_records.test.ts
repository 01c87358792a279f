// The record decoder on its own: pieces, views, cut points, chunk sizes from 1 byte to megabytes,
// the WASM scanner's limits (event table, refill window), BAD_VERSION, nesting and failure.
// Streams are built with the independent writer in test/oracle/build.ts, not with src/codec/encode.ts.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { heap } from "../src/codec/wasm.ts";
import { PIECE_END, PIECE_START, PIECE_WHOLE } from "../src/codec/types.ts";
import { FastCGIError } from "../src/errors.ts";
import { RecordType } from "../src/protocol/constants.ts";
import { concat, cutAt, header, record } from "./oracle/build.ts";
import { Prng } from "./oracle/prng.ts";

interface Piece {
  type: number;
  requestId: number;
  content: Uint8Array;
  flags: number;
  chunk: Uint8Array;
}

interface Whole {
  type: number;
  requestId: number;
  content: number[];
}

/** Feeds the chunks and returns every piece, each with the chunk it came from. */
function pieces(decoder: RecordDecoder, chunks: readonly Uint8Array[]): Piece[] {
  const out: Piece[] = [];
  for (const chunk of chunks) {
    decoder.decode(chunk, (type, requestId, content, flags) => out.push({ type, requestId, content, flags, chunk }));
  }
  return out;
}

/**
 * Joins pieces back into records, asserting the piece contract on the way: pieces are views of
 * their chunk, the first carries PIECE_START and the last PIECE_END, only an empty record has an
 * empty piece, and a record's pieces are not interleaved with another record's.
 */
function join(list: readonly Piece[]): Whole[] {
  const out: Whole[] = [];
  let open: Whole | undefined;
  for (const p of list) {
    if (p.content.length > 0) {
      assert.equal(p.content.buffer, p.chunk.buffer, "content is a view of the chunk's memory");
      assert.ok(p.content.byteOffset >= p.chunk.byteOffset && p.content.byteOffset + p.content.length <= p.chunk.byteOffset + p.chunk.length, "content lies inside the chunk");
    } else {
      assert.equal(p.flags, PIECE_WHOLE, "only an empty record has an empty piece");
    }
    if (p.flags & PIECE_START) {
      assert.equal(open, undefined, "a record starts while another is open");
      open = { type: p.type, requestId: p.requestId, content: [] };
    } else {
      assert.ok(open, "a continuation piece without a start");
      assert.deepEqual([p.type, p.requestId], [open.type, open.requestId]);
    }
    open.content.push(...p.content);
    if (p.flags & PIECE_END) {
      out.push(open);
      open = undefined;
    }
  }
  assert.equal(open, undefined, "the last record never ended");
  return out;
}

function expected(records: readonly [number, number, Uint8Array][]): Whole[] {
  return records.map(([type, requestId, content]) => ({ type, requestId, content: [...content] }));
}

function bytes(n: number, seed = n): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed) & 0xff;
  return out;
}

// A hand-made stream: empty records, odd paddings (0, 1, 7, 255, non-zero padding bytes), ids up to 65535.
const HAND: [number, number, Uint8Array, number][] = [
  [RecordType.BEGIN_REQUEST, 1, Uint8Array.of(0, 1, 1, 0, 0, 0, 0, 0), 0],
  [RecordType.PARAMS, 1, bytes(13), 3],
  [RecordType.PARAMS, 1, new Uint8Array(0), 0],
  [RecordType.STDIN, 1, bytes(5), 255],
  [RecordType.STDIN, 65535, bytes(1), 0],
  [RecordType.GET_VALUES, 0, new Uint8Array(0), 7],
  [200, 258, bytes(9), 1],
  [RecordType.STDIN, 1, new Uint8Array(0), 0],
];
const handStream = concat(HAND.map(([type, id, content, padding]) => record(type, id, content, { padding, padByte: 0xee })));
const handExpected = expected(HAND.map(([t, i, c]) => [t, i, c]));

test("a record within one chunk arrives whole, as a view of that chunk, padding skipped", () => {
  // The chunk itself is a view at an odd offset of a larger buffer: views must account for it.
  const backing = new Uint8Array(handStream.length + 10);
  backing.set(handStream, 3);
  const chunk = backing.subarray(3, 3 + handStream.length);
  const got = pieces(new RecordDecoder(), [chunk]);
  assert.ok(got.every((p) => p.flags === PIECE_WHOLE));
  assert.deepEqual(join(got), handExpected);
});

test("every single and double cut of a hand-made stream gives the same records", () => {
  const n = handStream.length;
  for (let i = 1; i < n; i++) {
    assert.deepEqual(join(pieces(new RecordDecoder(), cutAt(handStream, [i]))), handExpected, `cut at ${i}`);
    for (let j = i + 1; j < n; j += 3) {
      assert.deepEqual(join(pieces(new RecordDecoder(), cutAt(handStream, [i, j]))), handExpected, `cuts at ${i}, ${j}`);
    }
  }
});

test("one-byte chunks give the same records, and idle is true exactly between records", () => {
  const boundaries = new Set<number>([0]);
  let at = 0;
  for (const [, , content, padding] of HAND) boundaries.add((at += 8 + content.length + padding));
  const decoder = new RecordDecoder();
  const got: Piece[] = [];
  assert.equal(decoder.idle, true);
  for (let i = 0; i < handStream.length; i++) {
    got.push(...pieces(decoder, [handStream.subarray(i, i + 1)]));
    assert.equal(decoder.idle, boundaries.has(i + 1), `idle after byte ${i + 1}`);
  }
  assert.deepEqual(join(got), handExpected);
});

test("empty chunks change nothing, even in the middle of a record", () => {
  const decoder = new RecordDecoder();
  const empty = new Uint8Array(0);
  const got = pieces(decoder, [empty, handStream.subarray(0, 20), empty, handStream.subarray(20, 43), empty, handStream.subarray(43), empty]);
  assert.deepEqual(join(got), handExpected);
  assert.equal(decoder.idle, true);
});

test("content of 0, 1, 127, 128, 65535 bytes with padding 0 to 255 decodes exactly, whole or cut", () => {
  for (const n of [0, 1, 127, 128, 65535]) {
    for (const padding of [0, 1, 7, 8, 255]) {
      const content = bytes(n);
      const stream = concat([record(RecordType.STDOUT, 7, content, { padding, padByte: 0x01 }), record(RecordType.STDOUT, 7)]);
      const want = expected([[RecordType.STDOUT, 7, content], [RecordType.STDOUT, 7, new Uint8Array(0)]]);
      assert.deepEqual(join(pieces(new RecordDecoder(), [stream])), want, `${n}/${padding} whole`);
      // Cut inside the header, at the content start, mid-content, inside the padding, at the next header.
      for (const cut of [3, 8, 8 + (n >> 1), 8 + n + (padding >> 1), 8 + n + padding]) {
        if (cut <= 0 || cut >= stream.length) continue;
        assert.deepEqual(join(pieces(new RecordDecoder(), cutAt(stream, [cut]))), want, `${n}/${padding} cut ${cut}`);
      }
    }
  }
});

test("a multi-megabyte chunk of 65535-byte records decodes whole, each record a view", () => {
  const content = bytes(65535, 9);
  const count = 80; // about 5 MiB
  const one = record(RecordType.STDIN, 3, content);
  const stream = concat([...Array(count).fill(one), record(RecordType.STDIN, 3)]);
  const got = pieces(new RecordDecoder(), [stream]);
  assert.equal(got.length, count + 1);
  for (let i = 0; i < count; i++) {
    assert.equal(got[i].flags, PIECE_WHOLE);
    assert.equal(got[i].content.byteOffset, i * one.length + 8);
    assert.deepEqual(got[i].content, content);
  }
  // And the same stream in 64 KiB chunks, whose boundaries drift through the records.
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < stream.length; at += 65536) chunks.push(stream.slice(at, at + 65536));
  const joined = join(pieces(new RecordDecoder(), chunks));
  assert.equal(joined.length, count + 1);
  assert.ok(joined.slice(0, count).every((r) => r.content.length === 65535 && r.content[65534] === content[65534]));
});

test("more records in one chunk than one scan reports at once all arrive, in order", () => {
  // 10000 empty records (8 bytes each) exceed the scanner's event table (4096 events).
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 10000; i++) parts.push(header({ type: RecordType.STDIN, requestId: i + 1, contentLength: 0, paddingLength: 0 }));
  parts.push(record(RecordType.STDOUT, 1, bytes(30)));
  const got = pieces(new RecordDecoder(), [concat(parts)]);
  assert.equal(got.length, 10001);
  assert.ok(got.slice(0, 10000).every((p, i) => p.requestId === i + 1 && p.content.length === 0));
  assert.deepEqual(got[10000].content, bytes(30));
});

test("decode makes one WASM call for a chunk of many records, none for the chunks of a long record", () => {
  const c = heap() as { scanRecords: (a: number, b: number, c: number, d: number) => number };
  const scan = c.scanRecords;
  let calls = 0;
  c.scanRecords = (a, b, d, e) => (calls++, scan(a, b, d, e));
  try {
    const decoder = new RecordDecoder();
    const small: Uint8Array[] = [];
    for (let i = 0; i < 500; i++) small.push(record(RecordType.PARAMS, 1, bytes(i % 40)));
    const big = record(RecordType.STDIN, 1, bytes(65535));
    pieces(decoder, [concat(small)]);
    assert.equal(calls, 1, "500 small records: one call");
    calls = 0;
    // A 64 KiB record fed in 1000-byte chunks: the first holds its header and the start of its
    // content, the others content only; nothing to scan in any of them.
    const got = pieces(decoder, cutAt(big, Array.from({ length: 65 }, (_, i) => (i + 1) * 1000)));
    assert.equal(calls, 0, "a long record's chunks");
    assert.equal(join(got)[0].content.length, 65535);
    // Content, then the next header with its content to the end of the chunk: still no call.
    pieces(decoder, [concat([record(RecordType.STDIN, 1, bytes(10)).subarray(0, 10)])]);
    assert.equal(calls, 0);
  } finally {
    c.scanRecords = scan;
  }
});

test("random records cut at random places decode exactly (the scanner's refill window at work)", () => {
  // Long contents followed by runs of tiny records make the scanner skip far, then copy densely.
  const rng = new Prng(0xfc61);
  for (let round = 0; round < 40; round++) {
    const list: [number, number, Uint8Array][] = [];
    const parts: Uint8Array[] = [];
    for (let i = rng.range(1, 120); i > 0; i--) {
      const n = rng.chance(0.1) ? rng.range(2000, 65535) : rng.range(0, 40);
      const content = bytes(n, rng.below(256));
      const type = rng.range(1, 11);
      const id = rng.below(65536);
      list.push([type, id, content]);
      parts.push(record(type, id, content, { padding: rng.chance(0.5) ? rng.below(256) : undefined }));
    }
    const stream = concat(parts);
    const cuts: number[] = [];
    for (let at = rng.range(1, 70000); at < stream.length; at += rng.range(1, rng.chance(0.5) ? 50 : 300000)) cuts.push(at);
    assert.deepEqual(join(pieces(new RecordDecoder(), cutAt(stream, cuts))), expected(list), `round ${round}`);
  }
});

test("a version byte other than 1 throws BAD_VERSION after every earlier record, and keeps throwing", () => {
  for (const version of [0, 2, 255]) {
    const bad = record(RecordType.STDIN, 1, bytes(4), { version });
    const stream = concat([record(RecordType.PARAMS, 1, bytes(10)), record(RecordType.STDIN, 1, bytes(3)), bad, record(RecordType.STDIN, 1)]);
    for (const cuts of [[], [5], [20], [26], [35], [36], [37], [43]]) {
      const decoder = new RecordDecoder();
      const got: Piece[] = [];
      let error: unknown;
      try {
        for (const chunk of cutAt(stream, cuts)) {
          decoder.decode(chunk, (type, requestId, content, flags) => got.push({ type, requestId, content, flags, chunk }));
        }
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof FastCGIError && error.code === "BAD_VERSION", `version ${version} cuts ${cuts}`);
      assert.ok(error.message.includes(String(version)));
      assert.deepEqual(join(got), expected([[RecordType.PARAMS, 1, bytes(10)], [RecordType.STDIN, 1, bytes(3)]]));
      assert.throws(() => decoder.decode(record(RecordType.STDIN, 1), () => assert.fail("no record after failure")), (e) => e === error);
    }
  }
});

test("a record handler may decode another stream without disturbing the outer decode", () => {
  // Outer records each carry a whole inner stream; the handler decodes it with a second decoder,
  // whose handler in turn decodes a third level: three scans share one WASM module at once.
  const inner = (k: number) => concat(Array.from({ length: 20 }, (_, i) => record(RecordType.STDOUT, k * 100 + i, bytes(i, k))));
  const innermost = concat(Array.from({ length: 5 }, (_, i) => record(RecordType.STDERR, i, bytes(3, i))));
  const outer = concat(Array.from({ length: 30 }, (_, k) => record(RecordType.DATA, k, inner(k))));
  const seen: string[] = [];
  const outerDecoder = new RecordDecoder();
  outerDecoder.decode(outer, (type, id, content) => {
    seen.push(`outer ${type}/${id}/${content.length}`);
    new RecordDecoder().decode(content, (t, i, c) => {
      seen.push(`inner ${t}/${i}/${c.length}`);
      if (i % 100 === 7) new RecordDecoder().decode(innermost, (t3, i3, c3) => seen.push(`innermost ${t3}/${i3}/${c3.length}`));
    });
  });
  const want: string[] = [];
  for (let k = 0; k < 30; k++) {
    want.push(`outer ${RecordType.DATA}/${k}/${inner(k).length}`);
    for (let i = 0; i < 20; i++) {
      want.push(`inner ${RecordType.STDOUT}/${k * 100 + i}/${i}`);
      if (i === 7) for (let j = 0; j < 5; j++) want.push(`innermost ${RecordType.STDERR}/${j}/3`);
    }
  }
  assert.deepEqual(seen, want);
});

test("decoders fed alternately keep their own state", () => {
  const a = handStream;
  const b = concat([record(RecordType.STDOUT, 9, bytes(300)), record(RecordType.STDERR, 9, bytes(17)), record(RecordType.END_REQUEST, 9, bytes(8))]);
  const da = new RecordDecoder();
  const db = new RecordDecoder();
  const ga: Piece[] = [];
  const gb: Piece[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i += 3) {
    if (i < a.length) ga.push(...pieces(da, [a.subarray(i, i + 3)]));
    if (i < b.length) gb.push(...pieces(db, [b.subarray(i, i + 3)]));
  }
  assert.deepEqual(join(ga), handExpected);
  assert.deepEqual(join(gb), expected([[RecordType.STDOUT, 9, bytes(300)], [RecordType.STDERR, 9, bytes(17)], [RecordType.END_REQUEST, 9, bytes(8)]]));
});

test("a handler that throws leaves the decoder failed with that error", () => {
  const decoder = new RecordDecoder();
  const boom = new Error("handler failed");
  assert.throws(() => decoder.decode(handStream, (type) => { if (type === RecordType.STDIN) throw boom; }), (e) => e === boom);
  assert.throws(() => decoder.decode(handStream, () => {}), (e) => e === boom);
});
