// The application-side connection core on the known-bad inputs of shared/fastcgi.md and on records
// out of order: what it ignores, what it refuses for one request, and what is fatal for the connection.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { AppConnection, CORE_REJECT_APP_STATUS, type AppConnectionOptions } from "../src/protocol/app_connection.ts";
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import {
  VALUES,
  beginRequest,
  concat,
  drive,
  endRequestBody,
  latin1,
  pairs,
  params,
  record,
  stream,
  text,
  type Seen,
} from "./protocol_app_helpers.ts";

const base: AppConnectionOptions = { values: VALUES };
const KEEP = FCGI_KEEP_CONN;
const types = (events: Seen[]) => events.map((e) => [e.type, "requestId" in e ? e.requestId : 0]);

test("records for ids never begun are ignored silently, and the connection goes on", () => {
  const noise = concat(
    record(RecordType.PARAMS, 7, pairs([["A", "b"]])),
    record(RecordType.PARAMS, 7),
    record(RecordType.STDIN, 7, "body"),
    record(RecordType.STDIN, 7),
    record(RecordType.DATA, 7, "file"),
    record(RecordType.ABORT_REQUEST, 7),
    record(RecordType.END_REQUEST, 7, new Uint8Array(8)),
    record(RecordType.STDOUT, 7, "out"),
    record(RecordType.STDERR, 7, "err"),
    record(RecordType.GET_VALUES, 7, pairs([["FCGI_MAX_CONNS", ""]])),
    record(RecordType.GET_VALUES_RESULT, 7),
    record(RecordType.UNKNOWN_TYPE, 7, new Uint8Array(8)),
    record(77, 7, "x", { padding: 7 }),
  );
  const t = drive(base, [noise, concat(beginRequest(1), params(1, [["A", "b"]]), stream(RecordType.STDIN, 1, "ok"))]);
  assert.deepEqual(types(t.events), [["request", 1], ["stdin", 1], ["stdinEnd", 1]]);
  assert.deepEqual(t.output, new Uint8Array(0), "no answer at all to records for inactive ids");
  assert.equal(t.conn.ignoredRecords, 13);
  assert.equal(t.conn.isActive(7), false);
});

test("records for an id already ended are ignored", () => {
  const t = drive(base, [
    concat(beginRequest(1, 1, KEEP), params(1, [])),
    (c) => c.endRequest(1),
    concat(record(RecordType.PARAMS, 1, pairs([["late", "1"]])), record(RecordType.PARAMS, 1), record(RecordType.STDIN, 1, "late"), record(RecordType.STDIN, 1), record(RecordType.ABORT_REQUEST, 1)),
  ]);
  assert.deepEqual(types(t.events), [["request", 1]]);
  assert.deepEqual(t.records.map((r) => r.type), [RecordType.STDOUT, RecordType.END_REQUEST]);
  assert.equal(t.conn.ignoredRecords, 5);
});

test("ABORT_REQUEST for an unknown id is ignored and leaves the active request alone", () => {
  const t = drive(base, [concat(beginRequest(1, 1, KEEP), params(1, []), record(RecordType.ABORT_REQUEST, 2), record(RecordType.ABORT_REQUEST, 0x0100), stream(RecordType.STDIN, 1, "x"))]);
  assert.deepEqual(types(t.events), [["request", 1], ["stdin", 1], ["stdinEnd", 1]]);
  assert.deepEqual(t.output, new Uint8Array(0));
  assert.equal(t.conn.ignoredRecords, 2);
});

test("a second BEGIN_REQUEST for an active id is ignored and the first request goes on undisturbed", () => {
  // During PARAMS: the duplicate (another role, no KEEP_CONN) changes nothing, and the params continue.
  const during = drive(base, [
    concat(beginRequest(1, Role.RESPONDER, KEEP), record(RecordType.PARAMS, 1, pairs([["A", "1"]])), beginRequest(1, Role.FILTER, 0), record(RecordType.PARAMS, 1, pairs([["B", "2"]])), record(RecordType.PARAMS, 1)),
    (c) => c.endRequest(1),
  ]);
  assert.deepEqual(during.events, [{ type: "request", requestId: 1, role: Role.RESPONDER, keepConn: true, params: [["A", "1"], ["B", "2"]] }]);
  assert.deepEqual(during.records.map((r) => r.type), [RecordType.STDOUT, RecordType.END_REQUEST], "no END_REQUEST for the duplicate");
  assert.deepEqual(during.closeWanted, [false, false], "the duplicate's missing KEEP_CONN does not count");
  assert.equal(during.conn.ignoredRecords, 1);

  // During STDIN, with multiplexing off: still ignored, not CANT_MPX_CONN (that would end id 1 in the server's eyes).
  const after = drive({ ...base, multiplex: false }, [
    concat(beginRequest(1, 1, KEEP), params(1, []), record(RecordType.STDIN, 1, "ab"), beginRequest(1, 1, KEEP), record(RecordType.STDIN, 1, "cd"), record(RecordType.STDIN, 1)),
  ]);
  assert.deepEqual(after.events, [
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [] },
    { type: "stdin", requestId: 1, data: latin1("abcd") },
    { type: "stdinEnd", requestId: 1 },
  ]);
  assert.deepEqual(after.output, new Uint8Array(0));
});

test("a management record of any type but GET_VALUES gets UNKNOWN_TYPE with the type byte and 7 reserved bytes", () => {
  const asked = [
    RecordType.BEGIN_REQUEST, RecordType.ABORT_REQUEST, RecordType.END_REQUEST, RecordType.PARAMS, RecordType.STDIN,
    RecordType.STDOUT, RecordType.STDERR, RecordType.DATA, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE, 12, 100, 255,
  ];
  const input = concat(...asked.map((type, i) => record(type, 0, type === RecordType.BEGIN_REQUEST ? new Uint8Array(8) : "x".repeat(i), { padding: i % 3 })));
  const t = drive(base, [input, concat(beginRequest(1), params(1, []))]);
  assert.deepEqual(
    t.records.map((r) => [r.type, r.requestId, Array.from(r.content)]),
    asked.map((type) => [RecordType.UNKNOWN_TYPE, 0, [type, 0, 0, 0, 0, 0, 0, 0]]),
  );
  assert.deepEqual(types(t.events), [["request", 1]], "the connection goes on after unknown management records");
  assert.equal(t.conn.activeRequests, 1);
  assert.equal(t.conn.isActive(0), false, "a BEGIN_REQUEST with requestId 0 starts nothing");
});

test("an unknown record type with a non-zero requestId is ignored, for active and inactive ids alike", () => {
  const t = drive(base, [concat(beginRequest(1, 1, KEEP), record(12, 1, "x"), record(200, 1), params(1, []), record(255, 1, "y".repeat(100)), record(12, 9, "z"), stream(RecordType.STDIN, 1, ""))]);
  assert.deepEqual(types(t.events), [["request", 1], ["stdinEnd", 1]]);
  assert.deepEqual(t.output, new Uint8Array(0), "UNKNOWN_TYPE answers management records only");
  assert.equal(t.conn.ignoredRecords, 4);
});

test("a version byte other than 1 is fatal: error, closeWanted, requests wound down, later input unread", () => {
  for (const version of [0, 2, 255]) {
    const t = drive(base, [
      concat(beginRequest(1, 1, KEEP), params(1, []), beginRequest(2, 1, KEEP), record(RecordType.PARAMS, 2, pairs([["A", "b"]]))),
      concat(record(RecordType.STDIN, 1, "x", { version }), beginRequest(3), params(3, [])),
      (c) => c.endRequest(1),
    ]);
    assert.deepEqual(t.events, [
      { type: "request", requestId: 1, role: 1, keepConn: true, params: [] },
      { type: "error", code: "BAD_VERSION" },
      { type: "abort", requestId: 1 },
      { type: "rejected", requestId: 2, protocolStatus: ProtocolStatus.REQUEST_COMPLETE, reason: "the connection failed before PARAMS ended: BAD_VERSION" },
    ], `version ${version}`);
    assert.deepEqual(t.closeWanted, [false, true, true]);
    assert.deepEqual(t.records.map((r) => [r.type, r.requestId]), [[RecordType.END_REQUEST, 2], [RecordType.STDOUT, 1], [RecordType.END_REQUEST, 1]]);
    assert.deepEqual(endRequestBody(t.records[0]!), { appStatus: CORE_REJECT_APP_STATUS, protocolStatus: 0 });
    assert.equal(t.conn.isActive(3), false);
  }
});

test("the records before a bad header in the same chunk are still delivered", () => {
  const t = drive(base, [concat(beginRequest(1), params(1, [["K", "v"]]), record(RecordType.STDIN, 1, "abc"), record(RecordType.STDIN, 1, "def", { version: 9 }))]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: 1, keepConn: false, params: [["K", "v"]] },
    { type: "stdin", requestId: 1, data: latin1("abc") },
    { type: "error", code: "BAD_VERSION" },
    { type: "abort", requestId: 1 },
  ]);
});

test("a BEGIN_REQUEST body that is not 8 bytes is fatal", () => {
  for (const size of [0, 3, 7, 9, 64]) {
    const t = drive(base, [concat(beginRequest(1, 1, KEEP), params(1, []), record(RecordType.BEGIN_REQUEST, 2, new Uint8Array(size).fill(1)), beginRequest(3))]);
    assert.deepEqual(t.events, [
      { type: "request", requestId: 1, role: 1, keepConn: true, params: [] },
      { type: "error", code: "UNEXPECTED_RECORD" },
      { type: "abort", requestId: 1 },
    ], `body of ${size} bytes`);
    assert.deepEqual(t.closeWanted, [true]);
    assert.equal(t.conn.isActive(3), false);
  }
});

test("an endless PARAMS stream hits the params limit: END_REQUEST for that request only, the rest is ignored", () => {
  const limit = 4096;
  const chunk = record(RecordType.PARAMS, 1, pairs([["N", "v".repeat(994)]])); // 1000 bytes of content: 1 + 4 + 1 + 994
  const steps = [
    concat(beginRequest(2, 1, KEEP), params(2, [["OTHER", "yes"]])),
    beginRequest(1, 1, KEEP),
    ...Array.from({ length: 64 }, () => chunk),
    concat(record(RecordType.PARAMS, 1), record(RecordType.STDIN, 1, "x"), stream(RecordType.STDIN, 2, "still here")),
  ];
  let released = 0;
  const t = drive(() => { released = 0; return { ...base, pairLimits: { maxTotalBytes: limit }, release: () => void released++ }; }, steps);
  assert.equal(t.events.length, 4);
  assert.deepEqual(t.events[0], { type: "request", requestId: 2, role: 1, keepConn: true, params: [["OTHER", "yes"]] });
  const rejected = t.events[1]!;
  assert.equal(rejected.type, "rejected");
  assert.equal(rejected.type === "rejected" && rejected.requestId, 1);
  assert.equal(rejected.type === "rejected" && rejected.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
  assert.match(rejected.type === "rejected" ? rejected.reason : "", /PARAMS_TOO_LARGE/);
  assert.deepEqual(types(t.events.slice(2)), [["stdin", 2], ["stdinEnd", 2]], "the other request is not hurt");
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId]), [[RecordType.END_REQUEST, 1]]);
  assert.deepEqual(endRequestBody(t.records[0]!), { appStatus: CORE_REJECT_APP_STATUS, protocolStatus: ProtocolStatus.REQUEST_COMPLETE });
  assert.equal(released, 1);
  assert.equal(t.conn.isActive(1), false);
  assert.equal(t.closeWanted.every((c) => !c), true);
  // The refusal comes as soon as the limit is passed, not at the end of the stream: nothing is kept.
  const conn = new AppConnection({ ...base, pairLimits: { maxTotalBytes: limit } });
  conn.receive(beginRequest(1, 1, KEEP));
  let fed = 0;
  while (conn.nextEvent() === null && fed < 100_000) {
    conn.receive(chunk);
    fed += 1000;
  }
  assert.ok(fed > limit - 1000 && fed <= limit + 1000, `refused after ${fed} bytes for a ${limit}-byte limit`);
  const before = conn.ignoredRecords;
  for (let i = 0; i < 1000; i++) conn.receive(chunk);
  assert.equal(conn.ignoredRecords - before, 1000, "a megabyte more is dropped record by record");
  assert.equal(conn.nextEvent(), null);
  assert.equal(conn.activeRequests, 0);
});

test("the default params limit stops a multi-megabyte PARAMS stream, without FCGI_KEEP_CONN closing", () => {
  const pair = pairs([["HTTP_X", "v".repeat(65000)]]);
  const rec = record(RecordType.PARAMS, 1, pair);
  const steps = [beginRequest(1), ...Array.from({ length: 64 }, () => rec)]; // about 4 MiB
  const t = drive(base, steps, { cut: 8191 });
  assert.deepEqual(types(t.events), [["rejected", 1]]);
  const at = t.closeWanted.indexOf(true);
  assert.ok(at > 1 && at * pair.length <= (1 << 20) + 2 * pair.length, `closed after step ${at}`);
  assert.deepEqual(t.records.map((r) => r.type), [RecordType.END_REQUEST]);
});

test("a pair length near 2^31 is refused before any of its bytes arrive", () => {
  const huge = (n: number) => Uint8Array.of(0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  for (const content of [
    concat(Uint8Array.of(1), huge(0x7fffffff), latin1("A")), // valueLength 2^31-1
    concat(huge(0x7fffffff), Uint8Array.of(1), latin1("A")), // nameLength 2^31-1
    concat(huge(0x7ffffff8), huge(0x7ffffff8)), // both, whose sum overflows 32 bits
  ]) {
    const t = drive(base, [concat(beginRequest(1, 1, KEEP), beginRequest(2, 1, KEEP), record(RecordType.PARAMS, 1, content)), params(2, [])]);
    assert.deepEqual(types(t.events), [["rejected", 1], ["request", 2]]);
    assert.match(t.events[0]?.type === "rejected" ? t.events[0].reason : "", /(NAME|VALUE)_TOO_LONG|PARAMS_TOO_LARGE/);
  }
});

test("a PARAMS stream that ends inside a pair is refused", () => {
  const cut = pairs([["NAME", "value"]]).subarray(0, 4);
  for (const content of [cut, Uint8Array.of(0x80, 0, 0)]) {
    const t = drive(base, [concat(beginRequest(1), record(RecordType.PARAMS, 1, content), record(RecordType.PARAMS, 1), stream(RecordType.STDIN, 1, "x"))]);
    assert.deepEqual(types(t.events), [["rejected", 1]]);
    assert.match(t.events[0]?.type === "rejected" ? t.events[0].reason : "", /PAIR_TRUNCATED/);
    assert.deepEqual(t.closeWanted, [true], "refused without FCGI_KEEP_CONN: the connection closes");
  }
});

test("STDIN or DATA before PARAMS ended refuses the request; the rest of its records are ignored", () => {
  for (const type of [RecordType.STDIN, RecordType.DATA]) {
    const t = drive(base, [concat(beginRequest(1, Role.FILTER, KEEP), record(RecordType.PARAMS, 1, pairs([["A", "b"]])), record(type, 1, "early"), record(RecordType.PARAMS, 1), stream(RecordType.STDIN, 1, "late"))]);
    assert.deepEqual(t.events, [{ type: "rejected", requestId: 1, protocolStatus: 0, reason: `${type === RecordType.STDIN ? "STDIN" : "DATA"} before PARAMS ended` }]);
    assert.deepEqual(endRequestBody(t.records[0]!), { appStatus: CORE_REJECT_APP_STATUS, protocolStatus: 0 });
    assert.equal(t.conn.ignoredRecords, 3);
  }
  // The empty STDIN record counts as STDIN too.
  const empty = drive(base, [concat(beginRequest(1, 1, KEEP), record(RecordType.STDIN, 1), params(1, []))]);
  assert.deepEqual(types(empty.events), [["rejected", 1]]);
});

test("PARAMS after the PARAMS stream ended, and STDIN or DATA after their end, are ignored", () => {
  const t = drive(base, [
    concat(beginRequest(1, Role.FILTER, KEEP), params(1, [["A", "1"]]), params(1, [["A", "2"]]), stream(RecordType.STDIN, 1, "in"), record(RecordType.STDIN, 1, "again"), record(RecordType.STDIN, 1)),
    concat(stream(RecordType.DATA, 1, "file"), record(RecordType.DATA, 1, "more"), record(RecordType.DATA, 1), record(RecordType.PARAMS, 1, pairs([["B", "3"]]))),
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: Role.FILTER, keepConn: true, params: [["A", "1"]] },
    { type: "stdin", requestId: 1, data: latin1("in") },
    { type: "stdinEnd", requestId: 1 },
    { type: "data", requestId: 1, data: latin1("file") },
    { type: "dataEnd", requestId: 1 },
  ]);
  assert.equal(t.conn.ignoredRecords, 7);
  assert.equal(t.conn.isActive(1), true);
});

test("ABORT_REQUEST before PARAMS ended is answered by the core: the application never hears of the request", () => {
  let released = 0;
  const t = drive(() => { released = 0; return { ...base, release: () => void released++ }; }, [
    concat(beginRequest(1, 1, KEEP), record(RecordType.PARAMS, 1, pairs([["A", "b"]])), record(RecordType.ABORT_REQUEST, 1), record(RecordType.PARAMS, 1)),
  ]);
  assert.deepEqual(t.events, [{ type: "rejected", requestId: 1, protocolStatus: 0, reason: "ABORT_REQUEST before PARAMS ended" }]);
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId]), [[RecordType.END_REQUEST, 1]]);
  assert.equal(released, 1);
});

test("the connection ending during PARAMS ends that request in the core", () => {
  const t = drive(base, [concat(beginRequest(1, 1, KEEP), record(RecordType.PARAMS, 1, pairs([["A", "b"]]))), (c) => c.receiveEnd()]);
  assert.deepEqual(t.events, [{ type: "rejected", requestId: 1, protocolStatus: 0, reason: "the connection ended before PARAMS did" }]);
  assert.deepEqual(t.closeWanted, [false, true]);
});

test("admit() that throws refuses with OVERLOADED instead of breaking the connection", () => {
  const t = drive({ ...base, admit: () => { throw new Error("pool gone"); } }, [concat(beginRequest(1, 1, KEEP), params(1, []), beginRequest(2, 1, KEEP))]);
  assert.deepEqual(t.events, [
    { type: "rejected", requestId: 1, protocolStatus: ProtocolStatus.OVERLOADED, reason: "admit() threw: pool gone" },
    { type: "rejected", requestId: 2, protocolStatus: ProtocolStatus.OVERLOADED, reason: "admit() threw: pool gone" },
  ]);
  assert.equal(t.conn.ignoredRecords, 1);
});

test("records with maximal padding and padding bytes that look like headers are read right", () => {
  const fake = record(RecordType.BEGIN_REQUEST, 9, new Uint8Array(8)).subarray(0, 8);
  const padded = (type: number, id: number, content: string | Uint8Array) => {
    const r = record(type, id, content, { padding: 255 });
    r.set(fake, r.length - 255); // padding that would parse as a header if it were not skipped
    return r;
  };
  const t = drive(base, [concat(padded(RecordType.BEGIN_REQUEST, 1, Uint8Array.of(0, 1, 0, 0, 0, 0, 0, 0)), padded(RecordType.PARAMS, 1, pairs([["A", "b"]])), padded(RecordType.PARAMS, 1, ""), padded(RecordType.STDIN, 1, "body"), padded(RecordType.STDIN, 1, ""))]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: 1, keepConn: false, params: [["A", "b"]] },
    { type: "stdin", requestId: 1, data: latin1("body") },
    { type: "stdinEnd", requestId: 1 },
  ]);
  assert.equal(t.conn.isActive(9), false);
});

test("a request without FCGI_KEEP_CONN refused mid-stream closes only after the other requests end", () => {
  const t = drive(base, [
    concat(beginRequest(1, 1, KEEP), params(1, []), beginRequest(2, 1, 0), record(RecordType.STDIN, 2, "early")),
    (c) => c.endRequest(1),
  ]);
  assert.deepEqual(types(t.events), [["request", 1], ["rejected", 2]]);
  assert.deepEqual(t.closeWanted, [false, true]);
  assert.equal(text(t.records[0]!.content).length, 8);
});
