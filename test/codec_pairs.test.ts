// The name-value decoder on its own: length encodings, cuts anywhere (inside length bytes too),
// the limit rules in their exact order, lengths near 2^31, windows larger than the scanner's, and
// the lazy Params (well-known names, latin1, duplicates). Streams come from test/oracle/build.ts.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { PairDecoder, type Params } from "../src/codec/pairs.ts";
import { heap } from "../src/codec/wasm.ts";
import { PAIR_WINDOW_SIZE } from "../src/codec/wasm_interface.ts";
import type { PairLimits } from "../src/codec/types.ts";
import { FastCGIError, type FastCGIErrorCode } from "../src/errors.ts";
import { concat, cutAt, latin1, pair, pairLength, pairs } from "./oracle/build.ts";

const NO_LIMITS: PairLimits = { maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: Infinity };

function decode(pieces: readonly Uint8Array[], limits?: PairLimits): Params {
  const decoder = new PairDecoder(limits);
  for (const piece of pieces) decoder.push(piece);
  return decoder.end();
}

/** The code of the FastCGIError that pushing the pieces (then end()) throws, and the piece index. */
function failure(pieces: readonly Uint8Array[], limits?: PairLimits): [FastCGIErrorCode, number] | undefined {
  const decoder = new PairDecoder(limits);
  let i = 0;
  try {
    for (; i < pieces.length; i++) decoder.push(pieces[i]);
    decoder.end();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof FastCGIError, String(e));
    return [e.code, i];
  }
}

function list(params: Params): [string, string][] {
  return [...params.entries()];
}

function text(n: number, c = "a"): string {
  return c.repeat(n);
}

test("names and values of 0, 1, 127, 128, 65535 and 65536 bytes decode, with one- and four-byte lengths", () => {
  for (const n of [0, 1, 127, 128]) {
    for (const v of [0, 1, 127, 128, 65535, 65536]) {
      const name = text(n, "N");
      const value = text(v, "v");
      const bytes = pair(name, value);
      assert.equal(bytes.length, (n > 127 ? 4 : 1) + (v > 127 ? 4 : 1) + n + v);
      assert.deepEqual(list(decode([bytes])), [[name, value]], `${n}/${v}`);
    }
  }
});

test("a four-byte length encoding a small number is legal: 0x80000005 means 5", () => {
  const bytes = concat([Uint8Array.of(0x80, 0, 0, 4), Uint8Array.of(0x80, 0, 0, 5), latin1("HTTPSworl")]);
  assert.deepEqual(list(decode([bytes])), [["HTTP", "Sworl"]]);
  const wide = pair("HTTPS", "on", { wideName: true, wideValue: true });
  const params = decode([wide]);
  assert.equal(params.get("HTTPS"), "on", "a well-known name with a four-byte length is still recognised");
});

const HAND: [string, string][] = [
  ["REQUEST_METHOD", "POST"],
  ["", ""],
  ["X", text(127, "x")],
  [text(128, "Y"), ""],
  ["QUERY_STRING", text(200, "q")],
  ["HTTP_X_CUSTOM_HEADER", "custom"],
  ["REQUEST_METHOD", "PUT"],
];
const handBytes = pairs(HAND);

test("a pair cut anywhere, even inside its length bytes, decodes the same (every single and double cut)", () => {
  const n = handBytes.length;
  for (let i = 1; i < n; i++) {
    assert.deepEqual(list(decode(cutAt(handBytes, [i]))), HAND, `cut at ${i}`);
    for (let j = i + 1; j < n; j += 7) assert.deepEqual(list(decode(cutAt(handBytes, [i, j]))), HAND, `cuts at ${i}, ${j}`);
  }
  const ones = Array.from(handBytes, (b) => Uint8Array.of(b));
  assert.deepEqual(list(decode(ones)), HAND, "one byte at a time");
});

test("a stream that ends inside a pair, its length bytes included, is PAIR_TRUNCATED at end()", () => {
  const wide = pair("NAME", text(300));
  for (let cut = 1; cut < wide.length; cut++) {
    assert.deepEqual(failure([wide.subarray(0, cut)]), ["PAIR_TRUNCATED", 1], `cut at ${cut}`);
    assert.deepEqual(failure([pair("A", "b"), wide.subarray(0, cut)]), ["PAIR_TRUNCATED", 2], `after a pair, cut at ${cut}`);
  }
  assert.equal(failure([wide]), undefined);
  assert.equal(decode([]).size, 0, "an empty stream is fine");
});

test("limits are checked in order: the piece's size, then per pair name, value, and where it would end", () => {
  const limits = { maxNameLength: 10, maxValueLength: 20, maxTotalBytes: 100 };
  // Exactly at each limit is fine.
  assert.equal(failure([pair(text(10), text(20))], limits), undefined);
  assert.equal(failure([pair(text(10), text(20)), pair(text(10), text(20)), pair(text(10), text(20)), pair("", text(2))], limits), undefined);
  // One over.
  assert.deepEqual(failure([pair(text(11), "")], limits), ["NAME_TOO_LONG", 0]);
  assert.deepEqual(failure([pair("", text(21))], limits), ["VALUE_TOO_LONG", 0]);
  // The name is checked before the value.
  assert.deepEqual(failure([pair(text(11), text(21))], limits), ["NAME_TOO_LONG", 0]);
  // A piece that takes the stream past maxTotalBytes is refused before any pair in it is read.
  assert.deepEqual(failure([pair(text(2), "x"), concat([pair(text(11), ""), new Uint8Array(100)])], limits), ["PARAMS_TOO_LARGE", 1]);
  // A pair whose declared end lies past maxTotalBytes fails as soon as both lengths are known,
  // before its name arrives: 3 pairs of 32 bytes, then lengths declaring 2 + 1 + 2 = 5 more (101).
  const three = concat([pair(text(10), text(20)), pair(text(10), text(20)), pair(text(10), text(20))]);
  assert.deepEqual(failure([three, Uint8Array.of(1, 2)], limits), ["PARAMS_TOO_LARGE", 1]);
  assert.equal(failure([three, Uint8Array.of(1, 1), latin1("nv")], limits), undefined, "100 bytes exactly");
  // Lengths known only once the 4th length byte arrives: the error comes with that byte.
  assert.deepEqual(failure([Uint8Array.of(5), pairLength(21, true).subarray(0, 3), pairLength(21, true).subarray(3)], limits), ["VALUE_TOO_LONG", 2]);
});

test("errors stay: after one, every push and end() throws the same error", () => {
  const decoder = new PairDecoder({ maxNameLength: 3 });
  let first: unknown;
  try {
    decoder.push(pair("LONG", "x"));
  } catch (e) {
    first = e;
  }
  assert.ok(first instanceof FastCGIError && first.code === "NAME_TOO_LONG" && first.limit === "maxNameLength");
  assert.throws(() => decoder.push(pair("A", "b")), (e) => e === first);
  assert.throws(() => decoder.end(), (e) => e === first);
});

test("push after end() is a programming error; end() twice gives the same Params", () => {
  const decoder = new PairDecoder();
  decoder.push(pair("A", "b"));
  const params = decoder.end();
  assert.equal(decoder.end(), params);
  assert.throws(() => decoder.push(pair("C", "d")), Error);
});

test("lengths near 2^31 never wrap around: refused by the default limits, or awaited when limits are off", () => {
  const huge = concat([pairLength(0x7fffffff, true), pairLength(0x7fffffff, true)]);
  assert.deepEqual(failure([huge]), ["NAME_TOO_LONG", 0]);
  assert.deepEqual(failure([huge], { maxNameLength: Infinity }), ["VALUE_TOO_LONG", 0]);
  // With name and value limits off, 8 + 2 * (2^31 - 1) bytes must fit the total: 2^32 + 6 does not.
  assert.deepEqual(failure([huge], { maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: 2 ** 32 + 5 }), ["PARAMS_TOO_LARGE", 0]);
  assert.deepEqual(failure([huge], { maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: 2 ** 31 }), ["PARAMS_TOO_LARGE", 0]);
  // 2^32 + 6 does fit, and no limit at all: the decoder waits for bytes that never come.
  assert.deepEqual(failure([huge, latin1("abc")], { maxNameLength: Infinity, maxValueLength: Infinity, maxTotalBytes: 2 ** 32 + 6 }), ["PAIR_TRUNCATED", 2]);
  assert.deepEqual(failure([huge, latin1("abc")], NO_LIMITS), ["PAIR_TRUNCATED", 2]);
  // A length whose sum with the offset would overflow 32 bits, after a pair: 2^31 - 1 + 2^31 - 1 + 13.
  assert.deepEqual(failure([pair("ab", "cd"), huge], { ...NO_LIMITS, maxTotalBytes: 0xffffffff }), ["PARAMS_TOO_LARGE", 1]);
});

test("invalid limits are refused when the decoder is made", () => {
  for (const bad of [-1, Number.NaN]) {
    assert.throws(() => new PairDecoder({ maxNameLength: bad }), RangeError);
    assert.throws(() => new PairDecoder({ maxValueLength: bad }), RangeError);
    assert.throws(() => new PairDecoder({ maxTotalBytes: bad }), RangeError);
  }
  assert.equal(failure([pair("", "")], { maxNameLength: 0, maxValueLength: 0, maxTotalBytes: 2 }), undefined);
});

test("pieces larger than the scanner's window decode, pairs straddling window boundaries included", () => {
  // Many small pairs, so window boundaries fall inside length bytes, names and values alike.
  const many: [string, string][] = [];
  for (let i = 0; many.length < 40000; i++) many.push([`N${i}`, text(i % 150, String.fromCharCode(97 + (i % 26)))]);
  const bytes = pairs(many);
  assert.ok(bytes.length > 60 * PAIR_WINDOW_SIZE, "spans many windows");
  const params = decode([bytes], NO_LIMITS);
  assert.equal(params.size, many.length);
  assert.deepEqual(list(params), many);
  // And a well-known name cut by a window boundary is still recognised (looked up at end()).
  for (let pad = 0; pad < 16; pad++) {
    const filler = pair("F", text(PAIR_WINDOW_SIZE - 2 - 2 - 6 - pad));
    const p = decode([concat([filler, pair("REQUEST_URI", "/x")])], NO_LIMITS);
    assert.equal(p.get("REQUEST_URI"), "/x", `pad ${pad}`);
    assert.deepEqual([...p.keys()], ["F", "REQUEST_URI"]);
  }
});

test("a multi-megabyte value arrives whole", () => {
  const value = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < value.length; i++) value[i] = i & 0x7f;
  const params = decode(cutAt(pair("BLOB", value), [1000, 70000, 2_000_000]), NO_LIMITS);
  assert.deepEqual(params.getBytes("BLOB"), value);
  assert.equal(params.get("BLOB")?.length, value.length);
});

test("values are latin1: every byte, 0x80-0x9F included, is one character of the same code", () => {
  const all = new Uint8Array(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const expected = String.fromCharCode(...all);
  const params = decode([pair("ALL", all), pair("LOW", "plain ascii"), pair(Uint8Array.of(0xe9, 0x80), Uint8Array.of(0x9f))]);
  assert.equal(params.get("ALL"), expected);
  assert.equal(params.get("LOW"), "plain ascii");
  assert.equal(params.get("\u00e9\u0080"), "\u009f");
  assert.deepEqual([...params.keys()], ["ALL", "LOW", "\u00e9\u0080"]);
  // UTF-8 bytes read as latin1, and exactly as sent through getBytes.
  const utf8 = new TextEncoder().encode("/srv/é.php");
  const p = decode([pair("SCRIPT_FILENAME", utf8)]);
  assert.equal(p.get("SCRIPT_FILENAME"), "/srv/\u00c3\u00a9.php");
  assert.equal(new TextDecoder().decode(p.getBytes("SCRIPT_FILENAME")), "/srv/é.php");
  // A name that is not latin1 can never match bytes.
  assert.equal(p.get("SCRIPT_FILENAME\u0100"), undefined);
  // Bytes a UTF-8 reader would turn into U+FFFD, or take as a byte-order mark, stay bytes.
  const odd = decode([pair("A", Uint8Array.of(0xef, 0xbf, 0xbd)), pair("B", Uint8Array.of(0xef, 0xbb, 0xbf, 0x41)), pair("C", Uint8Array.of(0xff))]);
  assert.deepEqual([...odd], [["A", "\u00ef\u00bf\u00bd"], ["B", "\u00ef\u00bb\u00bfA"], ["C", "\u00ff"]]);
});

test("well-known names are recognised exactly: every vocabulary name, but not its prefixes or case variants", () => {
  const names = heap().names;
  assert.ok(names.includes("REQUEST_URI") && names.includes("FCGI_MPXS_CONNS") && names.includes("HTTP_UPGRADE_INSECURE_REQUESTS"));
  const all = names.map((n, i): [string, string] => [n, `v${i}`]);
  const params = decode([pairs(all)]);
  for (const [n, v] of all) assert.equal(params.get(n), v, n);
  assert.deepEqual([...params.keys()], names);
  const near: [string, string][] = [["REQUEST_UR", "1"], ["REQUEST_URIS", "2"], ["request_uri", "3"], ["REQUEST-URI", "4"], ["HTTPS ", "5"]];
  const p = decode([pairs(near)]);
  assert.equal(p.get("REQUEST_URI"), undefined);
  assert.equal(p.has("HTTPS"), false);
  for (const [n, v] of near) assert.equal(p.get(n), v, n);
});

test("duplicates: get, has and getBytes see the last pair; size, keys and entries keep every pair in order", () => {
  const params = decode([pairs([["A", "1"], ["REQUEST_METHOD", "GET"], ["A", "2"], ["REQUEST_METHOD", "HEAD"], ["B", ""]])]);
  assert.equal(params.get("A"), "2");
  assert.equal(params.get("REQUEST_METHOD"), "HEAD");
  assert.deepEqual(params.getBytes("A"), latin1("2"));
  assert.equal(params.get("B"), "");
  assert.equal(params.has("B"), true);
  assert.equal(params.has("C"), false);
  assert.equal(params.get("C"), undefined);
  assert.equal(params.getBytes("C"), undefined);
  assert.equal(params.size, 5);
  assert.deepEqual([...params.keys()], ["A", "REQUEST_METHOD", "A", "REQUEST_METHOD", "B"]);
  assert.deepEqual([...params], [["A", "1"], ["REQUEST_METHOD", "GET"], ["A", "2"], ["REQUEST_METHOD", "HEAD"], ["B", ""]]);
  const object = params.toObject();
  assert.deepEqual(Object.entries(object), [["A", "2"], ["REQUEST_METHOD", "HEAD"], ["B", ""]]);
});

test("a parameter named __proto__ is a plain own key of toObject()", () => {
  const object = decode([pairs([["__proto__", "x"], ["constructor", "y"]])]).toObject();
  assert.equal(Object.getPrototypeOf(object), Object.prototype);
  assert.deepEqual(Object.keys(object), ["__proto__", "constructor"]);
  assert.equal(Object.getOwnPropertyDescriptor(object, "__proto__")?.value, "x");
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

test("the decoder keeps its own copy: reused piece memory and many interleaved decoders change nothing", () => {
  const decoders = [new PairDecoder(), new PairDecoder(), new PairDecoder()];
  const streams = [0, 1, 2].map((k) => pairs([["REQUEST_URI", `/${k}`], [`NAME${k}`, text(40 * k + 3, String(k))], ["HTTP_HOST", `h${k}`]]));
  const scratch = new Uint8Array(64);
  for (let at = 0; at < 200; at += 5) {
    for (let k = 0; k < 3; k++) {
      const piece = streams[k].subarray(at, at + 5);
      if (piece.length === 0) continue;
      scratch.set(piece);
      decoders[k].push(scratch.subarray(0, piece.length));
      scratch.fill(0xff);
    }
  }
  // Many more decoders in between share the one WASM module.
  for (let i = 0; i < 3000; i++) {
    const d = new PairDecoder();
    d.push(pair("REQUEST_URI", `/other/${i}`));
    assert.equal(d.end().get("REQUEST_URI"), `/other/${i}`);
  }
  for (let k = 0; k < 3; k++) {
    const params = decoders[k].end();
    assert.deepEqual(list(params), [["REQUEST_URI", `/${k}`], [`NAME${k}`, text(40 * k + 3, String(k))], ["HTTP_HOST", `h${k}`]]);
  }
});

test("a stream of tiny pairs pushed a byte at a time costs linear time, up to its limit", () => {
  // 2^18 bytes of empty pairs (2 bytes each) in 1-byte pieces: 131072 pairs from 262144 pushes.
  // Anything quadratic in pairs or pushes would take minutes here.
  const limit = 1 << 18;
  const decoder = new PairDecoder({ maxTotalBytes: limit });
  const zero = Uint8Array.of(0);
  const started = performance.now();
  for (let i = 0; i < limit; i++) decoder.push(zero);
  assert.throws(() => decoder.push(zero), (e) => e instanceof FastCGIError && e.code === "PARAMS_TOO_LARGE");
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 20_000, `took ${elapsed.toFixed(0)} ms`);
  const fresh = new PairDecoder({ maxTotalBytes: limit });
  for (let i = 0; i < limit; i++) fresh.push(zero);
  const params = fresh.end();
  assert.equal(params.size, limit / 2);
  assert.equal(params.get(""), "");
});

test("params stay intact while later decoders reuse storage: unread ones first, read ones after", () => {
  // Decoders share storage slabs and reuse those whose params were all read; a Params not yet
  // read must never see its bytes overwritten, however many requests come after it.
  const stream = (i: number) => pairs([["REQUEST_URI", `/r/${i}`], [`X_${i}`, "v".repeat(i % 300)], ["HTTP_HOST", `h${i}`]]);
  const unread: Params[] = [];
  for (let i = 0; i < 500; i++) {
    const d = new PairDecoder();
    d.push(stream(i));
    unread.push(d.end());
  }
  for (let i = 500; i < 20000; i++) {
    const d = new PairDecoder();
    d.push(stream(i));
    const p = d.end();
    assert.equal(p.get("REQUEST_URI"), `/r/${i}`);
    if (i % 7 === 0) unread.push(p);
  }
  for (const p of unread) {
    const i = Number(p.get("REQUEST_URI")!.slice(3));
    assert.deepEqual([...p], [["REQUEST_URI", `/r/${i}`], [`X_${i}`, "v".repeat(i % 300)], ["HTTP_HOST", `h${i}`]]);
  }
  // An empty Params made directly is just empty.
  const empty = new (unread[0].constructor as new () => Params)();
  assert.equal(empty.size, 0);
  assert.equal(empty.get("REQUEST_URI"), undefined);
  assert.deepEqual([...empty], []);
});
