// The application-side connection core on well-formed traffic: the request lifecycle per role,
// FCGI_KEEP_CONN, output framing, GET_VALUES, multiplexing and the refusals the core answers itself.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { AppConnection, type AppConnectionOptions } from "../src/protocol/app_connection.ts";
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import {
  VALUES,
  beginRequest,
  concat,
  decodePairs,
  decodeRecords,
  drive,
  endRequestBody,
  latin1,
  pairs,
  params,
  record,
  stream,
  text,
} from "./protocol_app_helpers.ts";

const base: AppConnectionOptions = { values: VALUES };
const PARAMS1: Array<[string, string]> = [["REQUEST_METHOD", "POST"], ["SCRIPT_NAME", "/x"], ["CONTENT_LENGTH", "11"]];

test("a Responder request yields request, its STDIN pieces and stdinEnd, and the answer is STDOUT, empty STDOUT, END_REQUEST", () => {
  const t = drive(base, [
    concat(beginRequest(1, Role.RESPONDER, 0), params(1, PARAMS1, 7), stream(RecordType.STDIN, 1, "hello world", 4)),
    (c) => {
      c.stdout(1, latin1("Status: 200 OK\r\n\r\nhi"));
      c.endRequest(1, 0);
    },
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: Role.RESPONDER, keepConn: false, params: PARAMS1 },
    { type: "stdin", requestId: 1, data: latin1("hello world") },
    { type: "stdinEnd", requestId: 1 },
  ]);
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId, text(r.content)]), [
    [RecordType.STDOUT, 1, "Status: 200 OK\r\n\r\nhi"],
    [RecordType.STDOUT, 1, ""],
    [RecordType.END_REQUEST, 1, text(t.records[2]!.content)],
  ]);
  assert.deepEqual(endRequestBody(t.records[2]!), { appStatus: 0, protocolStatus: ProtocolStatus.REQUEST_COMPLETE });
  assert.deepEqual(t.closeWanted, [false, true], "without FCGI_KEEP_CONN the application closes after END_REQUEST");
  assert.equal(t.conn.activeRequests, 0);
  assert.equal(t.conn.isActive(1), false);
});

test("stdin events are views of the received chunk, not copies", () => {
  const conn = new AppConnection(base);
  const chunk = concat(beginRequest(1), params(1, []), record(RecordType.STDIN, 1, "abc"));
  conn.receive(chunk);
  const events = [conn.nextEvent(), conn.nextEvent()];
  assert.equal(events[1]?.type, "stdin");
  const data = events[1]!.type === "stdin" ? events[1]!.data : new Uint8Array(0);
  assert.equal(data.buffer, chunk.buffer);
  assert.equal(text(data), "abc");
  assert.equal(conn.nextEvent(), null);
});

test("the request event waits for the empty PARAMS record, and params may straddle PARAMS records", () => {
  const body = pairs([["NAME", "x".repeat(300)], ["Q", "1"]]);
  const steps = [
    concat(beginRequest(3), record(RecordType.PARAMS, 3, body.subarray(0, 2))),
    record(RecordType.PARAMS, 3, body.subarray(2, 200)),
    record(RecordType.PARAMS, 3, body.subarray(200)),
    record(RecordType.PARAMS, 3),
  ];
  const t = drive(base, steps);
  assert.deepEqual(t.events, [{ type: "request", requestId: 3, role: 1, keepConn: false, params: [["NAME", "x".repeat(300)], ["Q", "1"]] }]);
  assert.deepEqual(t.closeWanted, [false, false, false, false]);
});

test("with FCGI_KEEP_CONN the connection stays open after END_REQUEST and the same id may begin again", () => {
  const t = drive(base, [
    concat(beginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN), params(1, [["A", "1"]]), stream(RecordType.STDIN, 1, "")),
    (c) => c.endRequest(1),
    concat(beginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN), params(1, [["A", "2"]]), stream(RecordType.STDIN, 1, "")),
    (c) => c.endRequest(1, 7),
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [["A", "1"]] },
    { type: "stdinEnd", requestId: 1 },
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [["A", "2"]] },
    { type: "stdinEnd", requestId: 1 },
  ]);
  assert.deepEqual(t.closeWanted, [false, false, false, false], "the web server owns a FCGI_KEEP_CONN connection");
  const ends = t.records.filter((r) => r.type === RecordType.END_REQUEST).map(endRequestBody);
  assert.deepEqual(ends, [{ appStatus: 0, protocolStatus: 0 }, { appStatus: 7, protocolStatus: 0 }]);
});

test("FCGI_KEEP_CONN is bit 0 of flags exactly: other bits neither set nor clear it", () => {
  const run = (flags: number) =>
    drive(base, [concat(beginRequest(1, Role.RESPONDER, flags), params(1, [])), (c) => c.endRequest(1)]);
  const kept = run(0xff);
  assert.equal(kept.events[0]?.type === "request" && kept.events[0].keepConn, true);
  assert.deepEqual(kept.closeWanted, [false, false]);
  const closed = run(0xfe);
  assert.equal(closed.events[0]?.type === "request" && closed.events[0].keepConn, false);
  assert.deepEqual(closed.closeWanted, [false, true]);
});

test("an Authorizer gets request then stdinEnd at once, and STDIN the server sends anyway is ignored", () => {
  const t = drive(base, [
    concat(beginRequest(2, Role.AUTHORIZER, FCGI_KEEP_CONN), params(2, [["REMOTE_USER", "ann"]])),
    concat(stream(RecordType.STDIN, 2, "unexpected"), stream(RecordType.DATA, 2, "nope")),
    (c) => {
      c.stdout(2, latin1("Status: 200\r\nVariable-ROLE: admin\r\n\r\n"));
      c.endRequest(2);
    },
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 2, role: Role.AUTHORIZER, keepConn: true, params: [["REMOTE_USER", "ann"]] },
    { type: "stdinEnd", requestId: 2 },
  ]);
  assert.equal(t.conn.ignoredRecords, 4, "two STDIN and two DATA records dropped");
  assert.deepEqual(t.records.map((r) => r.type), [RecordType.STDOUT, RecordType.STDOUT, RecordType.END_REQUEST]);
});

test("a Filter gets PARAMS, then STDIN, then DATA, each stream with its end", () => {
  const t = drive(base, [
    concat(
      beginRequest(4, Role.FILTER),
      params(4, [["FCGI_DATA_LENGTH", "9"], ["FCGI_DATA_LAST_MOD", "1700000000"]]),
      stream(RecordType.STDIN, 4, "form=1", 3),
      stream(RecordType.DATA, 4, "file data", 2),
    ),
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 4, role: Role.FILTER, keepConn: false, params: [["FCGI_DATA_LENGTH", "9"], ["FCGI_DATA_LAST_MOD", "1700000000"]] },
    { type: "stdin", requestId: 4, data: latin1("form=1") },
    { type: "stdinEnd", requestId: 4 },
    { type: "data", requestId: 4, data: latin1("file data") },
    { type: "dataEnd", requestId: 4 },
  ]);
});

test("a Filter with an empty file still sees dataEnd", () => {
  const t = drive(base, [concat(beginRequest(4, Role.FILTER), params(4, []), stream(RecordType.STDIN, 4, ""), stream(RecordType.DATA, 4, ""))]);
  assert.deepEqual(t.events.map((e) => e.type), ["request", "stdinEnd", "dataEnd"]);
});

test("a Responder ignores DATA records", () => {
  const t = drive(base, [concat(beginRequest(1), params(1, []), stream(RecordType.DATA, 1, "x"), stream(RecordType.STDIN, 1, "y"))]);
  assert.deepEqual(t.events.map((e) => e.type), ["request", "stdin", "stdinEnd"]);
  assert.equal(t.conn.ignoredRecords, 2);
});

test("STDOUT larger than one record is cut into records of at most 65535 bytes without copying", () => {
  const body = new Uint8Array(200_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
  const conn = new AppConnection(base);
  conn.receive(concat(beginRequest(1), params(1, [])));
  conn.stdout(1, body);
  const out = conn.takeOutput();
  // Every piece is either a record header (or padding) or a view into the application's buffer.
  const views = out.filter((b) => b.buffer === body.buffer);
  assert.ok(views.length >= 4, "the body reaches the output as views of the application's buffer");
  assert.equal(views.reduce((n, v) => n + v.length, 0), body.length);
  const records = decodeRecords(concat(...out));
  assert.ok(records.length >= 4);
  for (const r of records) {
    assert.equal(r.type, RecordType.STDOUT);
    assert.ok(r.content.length > 0 && r.content.length <= 65535);
  }
  assert.deepEqual(concat(...records.map((r) => r.content)), body);
  assert.equal(concat(...out).length % 8, 0, "records are padded to a multiple of 8 bytes");
});

test("STDOUT of exactly 65535 and 65536 bytes frames correctly", () => {
  for (const size of [65535, 65536, 65528, 65529]) {
    const conn = new AppConnection(base);
    conn.receive(concat(beginRequest(1), params(1, [])));
    const body = new Uint8Array(size).fill(0x61);
    conn.stdout(1, body);
    const records = decodeRecords(concat(...conn.takeOutput()));
    assert.equal(records.reduce((n, r) => n + r.content.length, 0), size);
    for (const r of records) assert.ok(r.content.length > 0 && r.content.length <= 65535);
  }
});

test("STDERR, once used, is closed with its own empty record before END_REQUEST; unused, it is not sent", () => {
  const t = drive(base, [
    concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, []), beginRequest(2, 1, FCGI_KEEP_CONN), params(2, [])),
    (c) => {
      c.stdout(1, latin1("Content-Type: text/plain\r\n\r\nok"));
      c.stderr(1, latin1("config error: missing SI_UID\n"));
      c.endRequest(1, 938);
      c.stderr(2, new Uint8Array(0)); // empty data is ignored and does not count as use
      c.endRequest(2);
    },
  ]);
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId, r.content.length]), [
    [RecordType.STDOUT, 1, 30],
    [RecordType.STDERR, 1, 29],
    [RecordType.STDOUT, 1, 0],
    [RecordType.STDERR, 1, 0],
    [RecordType.END_REQUEST, 1, 8],
    [RecordType.STDOUT, 2, 0],
    [RecordType.END_REQUEST, 2, 8],
  ]);
  assert.deepEqual(endRequestBody(t.records[4]!), { appStatus: 938, protocolStatus: 0 });
});

test("nothing is emitted for inactive ids: never begun, or already ended", () => {
  const conn = new AppConnection(base);
  conn.stdout(9, latin1("x"));
  conn.stderr(9, latin1("x"));
  conn.endRequest(9);
  assert.deepEqual(conn.takeOutput(), []);
  conn.receive(concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, [])));
  conn.stdout(1, new Uint8Array(0));
  assert.deepEqual(conn.takeOutput(), [], "empty STDOUT data is ignored");
  conn.endRequest(1);
  conn.takeOutput();
  conn.stdout(1, latin1("late"));
  conn.stderr(1, latin1("late"));
  conn.endRequest(1);
  assert.deepEqual(conn.takeOutput(), []);
  assert.equal(conn.pendingOutputBytes, 0);
});

test("an appStatus beyond 32 bits and the full byte of protocolStatus are encoded as given", () => {
  const t = drive(base, [concat(beginRequest(1), params(1, [])), (c) => c.endRequest(1, 0xffffffff, ProtocolStatus.OVERLOADED)]);
  assert.deepEqual(endRequestBody(t.records[1]!), { appStatus: 0xffffffff, protocolStatus: 2 });
});

test("multiplexed requests interleave records and each gets its own events and output", () => {
  const p1 = params(1, [["ID", "one"]], 3);
  const p2 = params(2, [["ID", "two"]], 3);
  const split = (b: Uint8Array) => Array.from({ length: Math.ceil(b.length / 11) }, (_, i) => b.subarray(i * 11, i * 11 + 11));
  // Interleave whole records: begin 1, begin 2, then PARAMS records of both alternately.
  const recs1 = decodeRecordsRaw(p1);
  const recs2 = decodeRecordsRaw(p2);
  const mixed: Uint8Array[] = [beginRequest(1, 1, FCGI_KEEP_CONN), beginRequest(2, 1, FCGI_KEEP_CONN)];
  for (let i = 0; i < Math.max(recs1.length, recs2.length); i++) {
    if (recs2[i]) mixed.push(recs2[i]!);
    if (recs1[i]) mixed.push(recs1[i]!);
  }
  mixed.push(record(RecordType.STDIN, 1, "a1"), record(RecordType.STDIN, 2, "b2"), record(RecordType.STDIN, 1, "a3"));
  mixed.push(record(RecordType.STDIN, 2), record(RecordType.STDIN, 1));
  const t = drive(base, [
    ...split(concat(...mixed)),
    (c) => {
      c.stdout(2, latin1("two"));
      c.stdout(1, latin1("one"));
      c.endRequest(2);
      c.endRequest(1);
    },
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 2, role: 1, keepConn: true, params: [["ID", "two"]] },
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [["ID", "one"]] },
    { type: "stdin", requestId: 1, data: latin1("a1") },
    { type: "stdin", requestId: 2, data: latin1("b2") },
    { type: "stdin", requestId: 1, data: latin1("a3") },
    { type: "stdinEnd", requestId: 2 },
    { type: "stdinEnd", requestId: 1 },
  ]);
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId, text(r.content)]).filter((r) => r[0] !== RecordType.END_REQUEST), [
    [RecordType.STDOUT, 2, "two"],
    [RecordType.STDOUT, 1, "one"],
    [RecordType.STDOUT, 2, ""],
    [RecordType.STDOUT, 1, ""],
  ]);
  assert.equal(t.conn.activeRequests, 0);
});

function decodeRecordsRaw(stream: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < stream.length; ) {
    const len = 8 + ((stream[at + 4]! << 8) | stream[at + 5]!) + stream[at + 6]!;
    out.push(stream.subarray(at, at + len));
    at += len;
  }
  return out;
}

test("with multiplexing off, a BEGIN_REQUEST beside an active request gets CANT_MPX_CONN and the first goes on", () => {
  let admits = 0;
  const t = drive(() => { admits = 0; return { ...base, multiplex: false, admit: () => { admits++; return true; } }; }, [
    concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, [["N", "1"]]), beginRequest(2, 1, 0), params(2, [["N", "2"]]), stream(RecordType.STDIN, 2, "zz")),
    concat(stream(RecordType.STDIN, 1, "body")),
    (c) => c.endRequest(1),
    concat(beginRequest(2, 1, FCGI_KEEP_CONN), params(2, [["N", "3"]])),
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [["N", "1"]] },
    { type: "rejected", requestId: 2, protocolStatus: ProtocolStatus.CANT_MPX_CONN, reason: "another request is active on this connection" },
    { type: "stdin", requestId: 1, data: latin1("body") },
    { type: "stdinEnd", requestId: 1 },
    { type: "request", requestId: 2, role: 1, keepConn: true, params: [["N", "3"]] },
  ]);
  assert.deepEqual(endRequestBody(t.records[0]!), { appStatus: 0, protocolStatus: ProtocolStatus.CANT_MPX_CONN });
  assert.equal(t.records[0]!.requestId, 2);
  assert.deepEqual(t.closeWanted, [false, false, false, false], "a CANT_MPX_CONN refusal does not close the active request's connection");
  assert.equal(admits, 2, "admit() is asked only for BEGIN_REQUESTs that would start a request");
});

test("multiplexing on (the default) accepts concurrent requests and answers FCGI_MPXS_CONNS 1", () => {
  const t = drive(base, [concat(beginRequest(1), beginRequest(2), beginRequest(65535), record(RecordType.GET_VALUES, 0, pairs([["FCGI_MPXS_CONNS", ""]])))]);
  assert.equal(t.conn.activeRequests, 3);
  assert.deepEqual(decodePairs(t.records[0]!.content), [["FCGI_MPXS_CONNS", "1"]]);
});

test("admit() returning false refuses with OVERLOADED; release() pairs with every admitted request", () => {
  let open = 0;
  let admitted = 0;
  let released = 0;
  const make = (): AppConnectionOptions => {
    open = admitted = released = 0;
    return {
      ...base,
      admit: () => {
        if (open >= 1) return false;
        open++;
        admitted++;
        return true;
      },
      release: () => {
        open--;
        released++;
      },
    };
  };
  const t = drive(make, [
    concat(beginRequest(1, 1, FCGI_KEEP_CONN), beginRequest(2, 1, FCGI_KEEP_CONN), params(1, [])),
    (c) => c.endRequest(1),
    concat(beginRequest(3, 1, FCGI_KEEP_CONN), params(3, [["X", "y".repeat(70)]], 5)),
  ]);
  assert.deepEqual(t.events, [
    { type: "rejected", requestId: 2, protocolStatus: ProtocolStatus.OVERLOADED, reason: "admit() refused" },
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [] },
    { type: "request", requestId: 3, role: 1, keepConn: true, params: [["X", "y".repeat(70)]] },
  ]);
  assert.deepEqual(endRequestBody(t.records[0]!), { appStatus: 0, protocolStatus: ProtocolStatus.OVERLOADED });
  assert.equal(admitted, 2);
  assert.equal(released, 1);
  assert.equal(open, 1);
});

test("an OVERLOADED refusal without FCGI_KEEP_CONN closes the connection", () => {
  const t = drive({ ...base, admit: () => false }, [concat(beginRequest(1, 1, 0), params(1, []), beginRequest(2))]);
  assert.deepEqual(t.events.map((e) => e.type), ["rejected"]);
  assert.deepEqual(t.closeWanted, [true]);
  assert.equal(t.records.length, 1, "input after the close decision is not read");
});

test("a role outside the three, or one the application does not play, gets UNKNOWN_ROLE", () => {
  const t = drive({ ...base, roles: { responder: true } }, [
    concat(
      beginRequest(1, 0, FCGI_KEEP_CONN),
      beginRequest(2, 4, FCGI_KEEP_CONN),
      beginRequest(3, 0x0101, FCGI_KEEP_CONN),
      beginRequest(4, Role.AUTHORIZER, FCGI_KEEP_CONN),
      beginRequest(5, Role.FILTER, FCGI_KEEP_CONN),
      beginRequest(6, Role.RESPONDER, FCGI_KEEP_CONN),
      params(4, []),
      params(6, []),
    ),
  ]);
  assert.deepEqual(
    t.events.map((e) => [e.type, "requestId" in e ? e.requestId : 0, "protocolStatus" in e ? e.protocolStatus : -1]),
    [
      ["rejected", 1, ProtocolStatus.UNKNOWN_ROLE],
      ["rejected", 2, ProtocolStatus.UNKNOWN_ROLE],
      ["rejected", 3, ProtocolStatus.UNKNOWN_ROLE],
      ["rejected", 4, ProtocolStatus.UNKNOWN_ROLE],
      ["rejected", 5, ProtocolStatus.UNKNOWN_ROLE],
      ["request", 6, -1],
    ],
  );
  assert.deepEqual(t.records.map((r) => [r.requestId, endRequestBody(r).protocolStatus]), [1, 2, 3, 4, 5].map((id) => [id, ProtocolStatus.UNKNOWN_ROLE]));
  assert.equal(t.conn.ignoredRecords, 1, "the PARAMS of refused id 4 is a record for an inactive id");
  assert.deepEqual(t.closeWanted, [false]);
});

test("GET_VALUES is answered by the core with the true values of the names asked, in the order asked", () => {
  const t = drive({ ...base, values: { FCGI_MAX_CONNS: 3, FCGI_MAX_REQS: 12, FCGI_MPXS_CONNS: false } }, [
    record(RecordType.GET_VALUES, 0, pairs([["FCGI_MPXS_CONNS", ""], ["FCGI_UNKNOWN", ""], ["FCGI_MAX_REQS", ""], ["FCGI_MAX_CONNS", ""], ["FCGI_MAX_REQS", ""]])),
    record(RecordType.GET_VALUES, 0, pairs([["FCGI_MAX_CONNS", ""]]), { padding: 3 }),
    record(RecordType.GET_VALUES, 0),
    record(RecordType.GET_VALUES, 0, pairs([["fcgi_max_conns", ""], ["SERVER_SOFTWARE", ""]])),
  ]);
  assert.deepEqual(t.events, [], "GET_VALUES never reaches the application");
  assert.deepEqual(t.records.map((r) => [r.type, r.requestId]), Array(4).fill([RecordType.GET_VALUES_RESULT, 0]));
  assert.deepEqual(t.records.map((r) => decodePairs(r.content)), [
    [["FCGI_MPXS_CONNS", "0"], ["FCGI_MAX_REQS", "12"], ["FCGI_MAX_CONNS", "3"]],
    [["FCGI_MAX_CONNS", "3"]],
    [],
    [],
  ]);
  assert.deepEqual(t.closeWanted, [false, false, false, false]);
});

test("FCGI_MPXS_CONNS is answered 0 when multiplexing is off, whatever the values say", () => {
  const t = drive({ ...base, multiplex: false }, [record(RecordType.GET_VALUES, 0, pairs([["FCGI_MPXS_CONNS", ""]]))]);
  assert.deepEqual(decodePairs(t.records[0]!.content), [["FCGI_MPXS_CONNS", "0"]]);
});

test("GET_VALUES between the records of an active request does not disturb it", () => {
  const t = drive(base, [
    concat(beginRequest(1), record(RecordType.GET_VALUES, 0, pairs([["FCGI_MAX_REQS", ""]])), params(1, [["A", "b"]]), record(RecordType.STDIN, 1, "x")),
  ]);
  assert.deepEqual(t.events.map((e) => e.type), ["request", "stdin"]);
  assert.deepEqual(decodePairs(t.records[0]!.content), [["FCGI_MAX_REQS", "50"]]);
});

test("ABORT_REQUEST for an active request yields abort once; its later input is ignored; the app ends it", () => {
  const t = drive(base, [
    concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, []), record(RecordType.STDIN, 1, "part")),
    concat(record(RecordType.ABORT_REQUEST, 1), record(RecordType.STDIN, 1, "more"), record(RecordType.ABORT_REQUEST, 1), record(RecordType.STDIN, 1)),
    (c) => c.endRequest(1, 0),
  ]);
  assert.deepEqual(t.events, [
    { type: "request", requestId: 1, role: 1, keepConn: true, params: [] },
    { type: "stdin", requestId: 1, data: latin1("part") },
    { type: "abort", requestId: 1 },
  ]);
  assert.equal(t.conn.ignoredRecords, 3);
  assert.deepEqual(t.records.map((r) => r.type), [RecordType.STDOUT, RecordType.END_REQUEST]);
  assert.deepEqual(endRequestBody(t.records[1]!), { appStatus: 0, protocolStatus: ProtocolStatus.REQUEST_COMPLETE });
});

test("when the peer closes, active requests get abort and closeWanted waits until they end", () => {
  const t = drive(base, [
    concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, []), beginRequest(2, 1, FCGI_KEEP_CONN), params(2, []), stream(RecordType.STDIN, 2, "")),
    (c) => c.endRequest(2),
    (c) => c.receiveEnd(),
    concat(beginRequest(3)),
    (c) => c.endRequest(1),
  ]);
  assert.deepEqual(t.events.map((e) => [e.type, "requestId" in e ? e.requestId : 0]), [
    ["request", 1],
    ["request", 2],
    ["stdinEnd", 2],
    ["abort", 1],
  ]);
  assert.deepEqual(t.closeWanted, [false, false, false, false, true]);
  assert.equal(t.conn.isActive(3), false, "input after receiveEnd is not read");
});

test("receiveEnd with no active request asks for the close at once", () => {
  const conn = new AppConnection(base);
  assert.equal(conn.closeWanted, false);
  conn.receiveEnd();
  assert.equal(conn.closeWanted, true);
  assert.equal(conn.nextEvent(), null);
});

test("takeOutput empties the queue and nextEvent returns null when nothing is pending", () => {
  const conn = new AppConnection(base);
  assert.equal(conn.nextEvent(), null);
  assert.deepEqual(conn.takeOutput(), []);
  conn.receive(record(RecordType.GET_VALUES, 0));
  assert.ok(conn.pendingOutputBytes > 0);
  assert.equal(conn.takeOutput().length > 0, true);
  assert.deepEqual(conn.takeOutput(), []);
  assert.equal(conn.nextEvent(), null);
});

test("any cutting of a busy multiplexed stream gives the same events and the same output", () => {
  const input = concat(
    record(RecordType.GET_VALUES, 0, pairs([["FCGI_MAX_CONNS", ""], ["FCGI_MAX_REQS", ""]]), { padding: 5 }),
    beginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN),
    beginRequest(2, Role.FILTER, FCGI_KEEP_CONN),
    params(2, [["SCRIPT_FILENAME", "/srv/f"], ["HTTP_X", "é".repeat(200)]], 13),
    record(99, 0, "future"),
    params(1, [["REQUEST_METHOD", "PUT"], ["CONTENT_LENGTH", "300"]], 5),
    beginRequest(3, Role.AUTHORIZER, 0),
    stream(RecordType.STDIN, 1, "p".repeat(300), 17),
    params(3, [["REMOTE_USER", "bob"]]),
    stream(RecordType.STDIN, 2, "q=1"),
    record(RecordType.ABORT_REQUEST, 1),
    stream(RecordType.DATA, 2, "d".repeat(1000), 333),
    record(RecordType.STDIN, 9, "stray"),
  );
  const steps = [input, (c: AppConnection) => {
    c.stdout(2, latin1("Content-Type: text/plain\r\n\r\n"));
    c.endRequest(1, 1);
    c.endRequest(3);
    c.endRequest(2);
  }];
  const reference = drive(base, steps);
  assert.deepEqual(reference.events.map((e) => [e.type, "requestId" in e ? e.requestId : 0]), [
    ["request", 2],
    ["request", 1],
    ["stdin", 1],
    ["stdinEnd", 1],
    ["request", 3],
    ["stdinEnd", 3],
    ["stdin", 2],
    ["stdinEnd", 2],
    ["abort", 1],
    ["data", 2],
    ["dataEnd", 2],
  ]);
  assert.deepEqual(reference.closeWanted, [false, true], "request 3 came without FCGI_KEEP_CONN");
  for (const cut of [2, 3, 5, 7, 8, 9, 13, 64, 1000, 4096]) {
    const t = drive(base, steps, { cut });
    assert.deepEqual(t.events, reference.events);
    assert.deepEqual(t.output, reference.output);
  }
});

test("dispose() lets go of every active request once, without output, and everything after it is ignored", () => {
  let released = 0;
  const conn = new AppConnection({ ...base, release: () => void released++ });
  conn.receive(concat(beginRequest(1, 1, FCGI_KEEP_CONN), params(1, []), beginRequest(2, 1, FCGI_KEEP_CONN), record(RecordType.PARAMS, 2, pairs([["A", "b"]]))));
  conn.stdout(1, latin1("unsent"));
  conn.receiveEnd();
  assert.equal(conn.activeRequests, 1, "request 1 was aborted and waits for endRequest; request 2 was refused by the core");
  assert.equal(released, 1);
  conn.dispose();
  assert.equal(released, 2);
  assert.equal(conn.activeRequests, 0);
  assert.equal(conn.closeWanted, true);
  assert.equal(conn.nextEvent(), null, "pending events are dropped");
  assert.deepEqual(conn.takeOutput(), [], "pending output is dropped");
  conn.endRequest(1);
  conn.receive(concat(beginRequest(3), params(3, [])));
  conn.dispose();
  assert.deepEqual(conn.takeOutput(), []);
  assert.equal(conn.nextEvent(), null);
  assert.equal(released, 2);
});
