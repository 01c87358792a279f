// The encoders: exact header bytes, padding to 8, streams split (never truncated) at 65535 bytes and
// handed out as views, pair lengths at 127/128, latin1 vs UTF-8, and round trips through the decoders.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import {
  encodeAbortRequest, encodeBeginRequest, encodeEndRequest, encodeGetValues, encodeGetValuesResult, encodePairs,
  encodeParams, encodeRecord, encodeStream, encodeStreamEnd, encodeUnknownType,
} from "../src/codec/encode.ts";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import { concat, header, latin1, pair, record } from "./oracle/build.ts";
import { OracleRecordDecoder } from "./oracle/decoder.ts";

interface Rec {
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
  content: Uint8Array;
}

/** Reads records straight from the header fields (no decoder), checking version and reserved bytes. */
function parse(bytes: Uint8Array): Rec[] {
  const out: Rec[] = [];
  let at = 0;
  while (at < bytes.length) {
    assert.ok(at + 8 <= bytes.length, "a whole header");
    assert.equal(bytes[at], 1, "version 1");
    assert.equal(bytes[at + 7], 0, "reserved byte 0");
    const contentLength = (bytes[at + 4] << 8) | bytes[at + 5];
    const paddingLength = bytes[at + 6];
    const content = bytes.subarray(at + 8, at + 8 + contentLength);
    assert.equal(content.length, contentLength, "content present");
    const padding = bytes.subarray(at + 8 + contentLength, at + 8 + contentLength + paddingLength);
    assert.equal(padding.length, paddingLength, "padding present");
    assert.ok(padding.every((b) => b === 0), "padding is zeros");
    assert.equal((contentLength + paddingLength) % 8, 0, "padded to a multiple of 8");
    out.push({ type: bytes[at + 1], requestId: (bytes[at + 2] << 8) | bytes[at + 3], contentLength, paddingLength, content });
    at += 8 + contentLength + paddingLength;
  }
  return out;
}

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

test("encodeRecord writes the header, the content and zero padding to a multiple of 8", () => {
  for (const n of [0, 1, 7, 8, 9, 127, 128, 65535]) {
    const content = bytes(n);
    const out = encodeRecord(RecordType.STDOUT, 0x1234, content);
    assert.equal(out.length % 8, 0);
    assert.deepEqual(out, record(RecordType.STDOUT, 0x1234, content), `${n} bytes, as the reference writer pads`);
    assert.deepEqual(parse(out).map((r) => [r.type, r.requestId, r.contentLength]), [[RecordType.STDOUT, 0x1234, n]]);
  }
  assert.deepEqual(encodeRecord(RecordType.STDIN, 1), header({ type: RecordType.STDIN, requestId: 1, contentLength: 0, paddingLength: 0 }));
});

test("encodeRecord refuses content over 65535 bytes rather than truncating its 16-bit length", () => {
  assert.throws(() => encodeRecord(RecordType.STDOUT, 1, new Uint8Array(65536)), RangeError);
  assert.throws(() => encodeRecord(RecordType.STDOUT, 65536), RangeError);
  assert.throws(() => encodeRecord(RecordType.STDOUT, -1), RangeError);
  assert.throws(() => encodeRecord(256, 1), RangeError);
});

test("encodeStream splits any length into records of at most 65535 bytes, as views of the data", () => {
  for (const n of [0, 1, 8, 65527, 65528, 65529, 65535, 65536, 65537, 200_000, 1_000_003]) {
    const data = bytes(n);
    const out: Uint8Array[] = [];
    encodeStream(RecordType.STDOUT, 5, data, out);
    if (n === 0) {
      assert.deepEqual(out, [], "no record for no data: an empty record would end the stream");
      continue;
    }
    // Every piece holding data is a view of `data`, not a copy.
    let viewed = 0;
    for (const piece of out) {
      if (piece.buffer === data.buffer) viewed += piece.length;
    }
    assert.equal(viewed, n, `${n}: all data handed out as views`);
    const records = parse(concat(out));
    assert.ok(records.every((r) => r.type === RecordType.STDOUT && r.requestId === 5 && r.contentLength > 0 && r.contentLength <= 65535));
    assert.equal(records.length, Math.ceil(n / 65528));
    assert.deepEqual(concat(records.map((r) => r.content)), data);
  }
});

test("a stream of encoded records decodes back to its data, cut into 64 KiB socket chunks", () => {
  const data = bytes(300_000);
  const out: Uint8Array[] = [];
  encodeStream(RecordType.STDIN, 2, data, out);
  out.push(encodeStreamEnd(RecordType.STDIN, 2));
  const all = concat(out);
  const got: number[] = [];
  let ended = false;
  const decoder = new RecordDecoder();
  for (let at = 0; at < all.length; at += 65536) {
    decoder.decode(all.subarray(at, at + 65536), (type, requestId, content) => {
      assert.deepEqual([type, requestId], [RecordType.STDIN, 2]);
      if (content.length === 0) ended = true;
      else got.push(...content);
    });
  }
  assert.ok(ended);
  assert.deepEqual(Uint8Array.from(got), data);
});

test("BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST and UNKNOWN_TYPE carry their exact bytes", () => {
  assert.deepEqual(encodeBeginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN), record(RecordType.BEGIN_REQUEST, 1, Uint8Array.of(0, 1, 1, 0, 0, 0, 0, 0)));
  assert.deepEqual(encodeBeginRequest(0xfffe, Role.FILTER, 0), record(RecordType.BEGIN_REQUEST, 0xfffe, Uint8Array.of(0, 3, 0, 0, 0, 0, 0, 0)));
  assert.deepEqual(encodeAbortRequest(7), record(RecordType.ABORT_REQUEST, 7));
  assert.deepEqual(encodeEndRequest(1, 0, ProtocolStatus.REQUEST_COMPLETE), record(RecordType.END_REQUEST, 1, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0)));
  assert.deepEqual(encodeEndRequest(3, 0x01020304, ProtocolStatus.UNKNOWN_ROLE), record(RecordType.END_REQUEST, 3, Uint8Array.of(1, 2, 3, 4, 3, 0, 0, 0)));
  // A negative exit status is its 32-bit two's complement, as a C int would be sent.
  assert.deepEqual(encodeEndRequest(1, -1, ProtocolStatus.OVERLOADED), record(RecordType.END_REQUEST, 1, Uint8Array.of(255, 255, 255, 255, 2, 0, 0, 0)));
  assert.deepEqual(encodeUnknownType(200), record(RecordType.UNKNOWN_TYPE, 0, Uint8Array.of(200, 0, 0, 0, 0, 0, 0, 0)));
  assert.throws(() => encodeEndRequest(1, 2 ** 32, 0), RangeError);
  assert.throws(() => encodeBeginRequest(1, Role.RESPONDER, 256), RangeError);
});

test("pair lengths take one byte up to 127 and four bytes from 128, for names and values", () => {
  for (const n of [0, 127, 128, 300]) {
    for (const v of [0, 127, 128, 70000]) {
      const name = "N".repeat(n);
      const value = "v".repeat(v);
      assert.deepEqual(encodePairs([[name, value]]), pair(name, value), `${n}/${v}`);
    }
  }
});

test("strings are latin1 when every character fits a byte, else UTF-8; bytes go as they are", () => {
  assert.deepEqual(encodePairs([["N", "caf\u00e9\u0080\u00ff"]]), pair("N", Uint8Array.of(0x63, 0x61, 0x66, 0xe9, 0x80, 0xff)));
  assert.deepEqual(encodePairs([["N", "\u20ac1"]]), pair("N", new TextEncoder().encode("\u20ac1")));
  assert.deepEqual(encodePairs([["\u0100", "x"]]), pair(new TextEncoder().encode("\u0100"), "x"));
  const raw = Uint8Array.of(0xff, 0, 0x80);
  assert.deepEqual(encodePairs([[raw, raw]]), pair(raw, raw));
  // Round trip through the decoder: latin1 strings come back as they were.
  const decoder = new PairDecoder();
  decoder.push(encodePairs([["SCRIPT_NAME", "/\u00e9\u0099"], ["HTTP_X", ""]]));
  const params = decoder.end();
  assert.equal(params.get("SCRIPT_NAME"), "/\u00e9\u0099");
  assert.equal(params.get("HTTP_X"), "");
});

test("encodeParams frames the pairs as PARAMS records of at most 65535 bytes, then the empty PARAMS", () => {
  const list: [string, string][] = [["REQUEST_METHOD", "GET"], ["HTTP_COOKIE", "c".repeat(150_000)], ["REQUEST_URI", "/"]];
  const out = encodeParams(9, list);
  const records = parse(out);
  assert.ok(records.length >= 4);
  assert.ok(records.every((r) => r.type === RecordType.PARAMS && r.requestId === 9 && r.contentLength <= 65535));
  assert.equal(records.at(-1)?.contentLength, 0);
  assert.ok(records.slice(0, -1).every((r) => r.contentLength > 0));
  // Decoded with the oracle's record decoder and the real pair decoder.
  const pairDecoder = new PairDecoder({ maxValueLength: 200_000 });
  let done = false;
  new OracleRecordDecoder().decode(out, (_type, _id, content) => {
    if (content.length > 0) pairDecoder.push(content);
    else done = true;
  });
  assert.ok(done);
  assert.deepEqual([...pairDecoder.end()], list);
  assert.deepEqual(encodeParams(1, []), record(RecordType.PARAMS, 1));
});

test("GET_VALUES carries names with empty values and GET_VALUES_RESULT the values, both on requestId 0", () => {
  const query = parse(encodeGetValues(["FCGI_MAX_CONNS", "FCGI_MPXS_CONNS"]));
  assert.deepEqual(query.map((r) => [r.type, r.requestId]), [[RecordType.GET_VALUES, 0]]);
  assert.deepEqual(query[0].content, concat([pair("FCGI_MAX_CONNS", ""), pair("FCGI_MPXS_CONNS", "")]));
  const result = parse(encodeGetValuesResult([["FCGI_MAX_CONNS", "100"], ["FCGI_MPXS_CONNS", "0"]]));
  assert.deepEqual(result.map((r) => [r.type, r.requestId]), [[RecordType.GET_VALUES_RESULT, 0]]);
  assert.deepEqual(result[0].content, concat([pair("FCGI_MAX_CONNS", "100"), pair("FCGI_MPXS_CONNS", "0")]));
  // One management record: more than 65535 bytes of pairs cannot be sent, and is not truncated.
  assert.throws(() => encodeGetValuesResult([["X", "y".repeat(70000)]]), RangeError);
  assert.deepEqual(latin1("FCGI_MAX_REQS"), encodePairs([["FCGI_MAX_REQS", ""]]).subarray(2));
});
