// The web server side of the protocol core, without sockets: what it writes for each intent, and
// the events it makes of the application's bytes, fed whole and one byte at a time.
import { describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { RecordDecoder } from "../src/codec/decoder.ts";
import {
  encodeEndRequest,
  encodeGetValuesResult,
  encodePairs,
  encodeRecord,
  encodeStream,
  encodeStreamEnd,
  encodeUnknownType,
} from "../src/codec/encode.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { PIECE_END, PIECE_START } from "../src/codec/types.ts";
import { FastCGIError } from "../src/errors.ts";
import { ClientConnection, type ClientEvent } from "../src/protocol/client_connection.ts";
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import { concatBytes } from "../src/bytes.ts";

const text = new TextEncoder();

interface Rec {
  type: number;
  requestId: number;
  content: Uint8Array;
}

/** Whole records from the bytes the connection wrote. */
function records(chunks: Uint8Array[]): Rec[] {
  const out: Rec[] = [];
  const decoder = new RecordDecoder();
  let parts: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.decode(chunk.slice(), (type, requestId, content, flags) => {
      if (flags & PIECE_START) parts = [];
      parts.push(content.slice());
      if (flags & PIECE_END) out.push({ type, requestId, content: concatBytes(parts) });
    });
  }
  assert.ok(decoder.idle, "the output ends on a record boundary");
  return out;
}

function stdout(requestId: number, body: string | Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  encodeStream(RecordType.STDOUT, requestId, typeof body === "string" ? text.encode(body) : body, out);
  return out;
}

/** Everything the connection reports for `input`, with consecutive stdout/stderr pieces merged. */
function feed(conn: ClientConnection, input: Uint8Array, cut: "whole" | "bytes"): Array<Record<string, unknown>> {
  if (cut === "whole") conn.receive(input.slice());
  else for (let i = 0; i < input.length; i++) conn.receive(input.slice(i, i + 1));
  return drain(conn);
}

function drain(conn: ClientConnection): Array<Record<string, unknown>> {
  const events: Array<Record<string, unknown>> = [];
  for (let e: ClientEvent | null = conn.nextEvent(); e !== null; e = conn.nextEvent()) {
    const last = events[events.length - 1];
    if ((e.type === "stdout" || e.type === "stderr") && last?.type === e.type && last.requestId === e.requestId) {
      last.data = concatBytes([last.data as Uint8Array, e.data]);
      continue;
    }
    if (e.type === "stdout" || e.type === "stderr") events.push({ type: e.type, requestId: e.requestId, data: e.data.slice() });
    else if (e.type === "values") events.push({ type: "values", values: e.values.toObject() });
    else if (e.type === "lost" || e.type === "error") events.push({ type: e.type, requestId: (e as { requestId?: number }).requestId, code: e.error.code });
    else events.push({ ...e });
  }
  // Pieces are decoded once merged: a UTF-8 character may straddle two of them.
  for (const e of events) if (e.data instanceof Uint8Array) e.data = new TextDecoder().decode(e.data);
  return events;
}

/** A connection with requests begun (all RESPONDER, keepConn), its output discarded. */
function begun(count: number): ClientConnection {
  const conn = new ClientConnection();
  for (let i = 0; i < count; i++) conn.beginRequest([["SCRIPT_FILENAME", "/x.php"]]);
  conn.takeOutput();
  return conn;
}

function bytes(...parts: Array<Uint8Array | Uint8Array[]>): Uint8Array {
  return concatBytes(parts.flat());
}

describe("ClientConnection intents → bytes", () => {
  it("beginRequest writes BEGIN_REQUEST with role and FCGI_KEEP_CONN, the params, and the empty PARAMS record", () => {
    const conn = new ClientConnection();
    const id = conn.beginRequest([["REQUEST_METHOD", "GET"], ["SCRIPT_FILENAME", "/srv/a.php"]]);
    assert.equal(id, 1);
    const recs = records(conn.takeOutput());
    assert.deepEqual(recs.map((r) => [r.type, r.requestId]), [[RecordType.BEGIN_REQUEST, 1], [RecordType.PARAMS, 1], [RecordType.PARAMS, 1]]);
    assert.deepEqual([...recs[0]!.content], [0, Role.RESPONDER, FCGI_KEEP_CONN, 0, 0, 0, 0, 0]);
    const pairs = new PairDecoder();
    pairs.push(recs[1]!.content);
    assert.deepEqual(pairs.end().toObject(), { REQUEST_METHOD: "GET", SCRIPT_FILENAME: "/srv/a.php" });
    assert.equal(recs[2]!.content.length, 0);
    assert.equal(conn.pendingOutputBytes, 0);
  });

  it("a request without FCGI_KEEP_CONN clears the flag and makes the connection take no further request", () => {
    const conn = new ClientConnection();
    conn.beginRequest([], { role: Role.AUTHORIZER, keepConn: false });
    assert.deepEqual([...records(conn.takeOutput())[0]!.content.subarray(0, 3)], [0, Role.AUTHORIZER, 0]);
    assert.equal(conn.usable, false);
    assert.throws(() => conn.beginRequest([]), (e: unknown) => e instanceof FastCGIError && e.code === "CONNECTION_CLOSED");
  });

  it("requestIds are the lowest inactive ones, and an id is reused once its END_REQUEST arrived", () => {
    const conn = begun(3);
    assert.equal(conn.activeRequests, 3);
    feed(conn, encodeEndRequest(2, 0, 0), "whole");
    assert.equal(conn.isActive(2), false);
    assert.equal(conn.beginRequest([]), 2);
    assert.equal(conn.beginRequest([]), 4);
  });

  it("an ended id is not reused while its events are still queued: a request begun meanwhile never gets them", () => {
    const conn = begun(2);
    // One read holds request 2's END, then request 1's whole response.
    conn.receive(bytes(encodeEndRequest(2, 0, 0), stdout(1, "for request 1"), encodeEndRequest(1, 0, 0)));
    assert.equal(conn.nextEvent()?.type, "end"); // request 2's
    // The caller starts the next request while handling it, as the Client's pool does.
    const next = conn.beginRequest([]);
    assert.notEqual(next, 1, "id 1's response is still queued");
    assert.equal(next, 2);
    assert.deepEqual(drain(conn), [
      { type: "stdout", requestId: 1, data: "for request 1" },
      { type: "end", requestId: 1, appStatus: 0, protocolStatus: 0 },
    ]);
    assert.equal(conn.beginRequest([]), 1, "taken, its events are gone: id 1 is free again");
  });

  it("STDIN is cut into records of at most 65535 bytes and ended by the empty STDIN record", () => {
    const conn = begun(1);
    const body = new Uint8Array(200_000).map((_, i) => i & 0xff);
    conn.stdin(1, body);
    conn.stdin(1, new Uint8Array(0)); // nothing: an empty record would end the stream
    conn.stdinEnd(1);
    conn.stdin(1, body); // after the end: ignored
    const recs = records(conn.takeOutput());
    assert.ok(recs.every((r) => r.type === RecordType.STDIN && r.requestId === 1 && r.content.length <= 65535));
    assert.equal(recs[recs.length - 1]!.content.length, 0);
    assert.deepEqual(concatBytes(recs.map((r) => r.content)), body);
  });

  it("an Authorizer sends no STDIN; a Filter sends STDIN then DATA", () => {
    const conn = new ClientConnection();
    const auth = conn.beginRequest([], { role: Role.AUTHORIZER });
    const filter = conn.beginRequest([], { role: Role.FILTER });
    conn.takeOutput();
    conn.stdin(auth, text.encode("x"));
    conn.stdinEnd(auth);
    assert.equal(conn.pendingOutputBytes, 0);
    conn.stdinEnd(filter);
    conn.data(filter, text.encode("file"));
    conn.dataEnd(filter);
    conn.dataEnd(filter);
    assert.deepEqual(records(conn.takeOutput()).map((r) => [r.type, r.content.length]), [[RecordType.STDIN, 0], [RecordType.DATA, 4], [RecordType.DATA, 0]]);
  });

  it("abort writes ABORT_REQUEST once; the id stays active until END_REQUEST, and its input is ignored", () => {
    const conn = begun(1);
    assert.equal(conn.abort(1), true);
    assert.equal(conn.abort(1), false);
    assert.equal(conn.abort(9), false);
    conn.stdin(1, text.encode("late"));
    conn.stdinEnd(1);
    assert.deepEqual(records(conn.takeOutput()).map((r) => [r.type, r.requestId, r.content.length]), [[RecordType.ABORT_REQUEST, 1, 0]]);
    assert.equal(conn.isActive(1), true);
    assert.deepEqual(feed(conn, encodeEndRequest(1, 0, 0), "whole"), [{ type: "end", requestId: 1, appStatus: 0, protocolStatus: 0 }]);
  });

  it("getValues asks for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS with empty values", () => {
    const conn = new ClientConnection();
    conn.getValues();
    const [rec] = records(conn.takeOutput());
    assert.equal(rec!.type, RecordType.GET_VALUES);
    assert.equal(rec!.requestId, 0);
    const pairs = new PairDecoder();
    pairs.push(rec!.content);
    assert.deepEqual(pairs.end().toObject(), { FCGI_MAX_CONNS: "", FCGI_MAX_REQS: "", FCGI_MPXS_CONNS: "" });
  });
});

describe("ClientConnection bytes → events", () => {
  for (const cut of ["whole", "bytes"] as const) {
    it(`a response with STDERR, two requests interleaved, fed ${cut === "whole" ? "whole" : "one byte at a time"}`, () => {
      const conn = begun(2);
      const input = bytes(
        stdout(1, "Content-Type: text/plain\r\n\r\nhel"),
        stdout(2, "Status: 404\r\n\r\n"),
        encodeRecord(RecordType.STDERR, 1, text.encode("PHP message: ünï")),
        stdout(1, "lo"),
        encodeStreamEnd(RecordType.STDOUT, 1),
        encodeStreamEnd(RecordType.STDERR, 1),
        encodeEndRequest(1, 7, ProtocolStatus.REQUEST_COMPLETE),
        encodeStreamEnd(RecordType.STDOUT, 2),
        encodeEndRequest(2, 0, ProtocolStatus.OVERLOADED),
      );
      assert.deepEqual(feed(conn, input, cut), [
        { type: "stdout", requestId: 1, data: "Content-Type: text/plain\r\n\r\nhel" },
        { type: "stdout", requestId: 2, data: "Status: 404\r\n\r\n" },
        { type: "stderr", requestId: 1, data: "PHP message: ünï" },
        { type: "stdout", requestId: 1, data: "lo" },
        { type: "stdoutEnd", requestId: 1 },
        { type: "end", requestId: 1, appStatus: 7, protocolStatus: 0 },
        { type: "stdoutEnd", requestId: 2 },
        { type: "end", requestId: 2, appStatus: 0, protocolStatus: ProtocolStatus.OVERLOADED },
      ]);
      assert.equal(conn.activeRequests, 0);
    });
  }

  it("appStatus is read as an unsigned 32-bit number", () => {
    const conn = begun(1);
    assert.deepEqual(feed(conn, encodeEndRequest(1, 0xfffffffe, 0), "bytes"), [{ type: "end", requestId: 1, appStatus: 0xfffffffe, protocolStatus: 0 }]);
  });

  it("records for requestIds never begun or already ended are ignored", () => {
    const conn = begun(1);
    const input = bytes(
      stdout(7, "not ours"),
      encodeRecord(RecordType.STDERR, 7, text.encode("nor this")),
      encodeEndRequest(7, 0, 0),
      encodeEndRequest(1, 0, 0),
      stdout(1, "after the end"),
      encodeEndRequest(1, 0, 0),
    );
    assert.deepEqual(feed(conn, input, "bytes"), [{ type: "end", requestId: 1, appStatus: 0, protocolStatus: 0 }]);
    assert.equal(conn.ignoredRecords, 5);
  });

  it("STDOUT after the empty STDOUT record is ignored", () => {
    const conn = begun(1);
    const input = bytes(stdout(1, "a"), encodeStreamEnd(RecordType.STDOUT, 1), stdout(1, "b"), encodeEndRequest(1, 0, 0));
    assert.deepEqual(feed(conn, input, "whole").map((e) => e.type), ["stdout", "stdoutEnd", "end"]);
  });

  it("web-server-to-application types and unknown types from the application are ignored", () => {
    const conn = begun(1);
    const input = bytes(
      encodeRecord(RecordType.BEGIN_REQUEST, 1, new Uint8Array(8)),
      encodeRecord(RecordType.PARAMS, 1, encodePairs([["A", "b"]])),
      encodeRecord(RecordType.STDIN, 1, text.encode("x")),
      encodeRecord(RecordType.DATA, 1, text.encode("x")),
      encodeRecord(RecordType.ABORT_REQUEST, 1),
      encodeRecord(99, 1, text.encode("x")),
      encodeRecord(RecordType.GET_VALUES, 0, encodePairs([["FCGI_MAX_CONNS", ""]])),
      encodeRecord(42, 0, new Uint8Array(3)),
      encodeEndRequest(1, 0, 0),
    );
    assert.deepEqual(feed(conn, input, "bytes").map((e) => e.type), ["end"]);
    assert.equal(conn.ignoredRecords, 8);
    assert.equal(conn.pendingOutputBytes, 0, "the web server answers nothing");
  });

  for (const cut of ["whole", "bytes"] as const) {
    it(`GET_VALUES_RESULT becomes a values event (${cut})`, () => {
      const conn = new ClientConnection();
      const input = encodeGetValuesResult([["FCGI_MAX_CONNS", "10"], ["FCGI_MPXS_CONNS", "1"]]);
      assert.deepEqual(feed(conn, input, cut), [{ type: "values", values: { FCGI_MAX_CONNS: "10", FCGI_MPXS_CONNS: "1" } }]);
    });
  }

  it("UNKNOWN_TYPE becomes an unknownType event naming the type", () => {
    const conn = new ClientConnection();
    assert.deepEqual(feed(conn, encodeUnknownType(RecordType.GET_VALUES), "bytes"), [{ type: "unknownType", recordType: RecordType.GET_VALUES }]);
  });

  it("a malformed GET_VALUES_RESULT is fatal: a pair cut short, a length cut inside its 4 bytes, a length near 2^31", () => {
    const pairs = encodePairs([["FCGI_MAX_CONNS", "10"]]);
    for (const content of [
      pairs.subarray(0, pairs.length - 1),
      Uint8Array.of(0x80, 0x00),
      Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0x41), // a value of 2^31-1 bytes that never come
    ]) {
      const conn = begun(1);
      const input = encodeRecord(RecordType.GET_VALUES_RESULT, 0, content);
      assert.deepEqual(feed(conn, input, "bytes"), [
        { type: "error", requestId: undefined, code: "BAD_RESPONSE" },
        { type: "lost", requestId: 1, code: "BAD_RESPONSE" },
      ], `content ${[...content.subarray(0, 8)]}`);
      assert.equal(conn.broken, true);
    }
  });

  it("an END_REQUEST whose body is not 8 bytes is fatal for the connection", () => {
    const conn = begun(2);
    const input = bytes(stdout(1, "x"), encodeRecord(RecordType.END_REQUEST, 1, new Uint8Array(5)), stdout(2, "never seen"));
    assert.deepEqual(feed(conn, input, "bytes"), [
      { type: "stdout", requestId: 1, data: "x" },
      { type: "error", requestId: undefined, code: "UNEXPECTED_RECORD" },
      { type: "lost", requestId: 1, code: "UNEXPECTED_RECORD" },
      { type: "lost", requestId: 2, code: "UNEXPECTED_RECORD" },
    ]);
  });

  for (const cut of ["whole", "bytes"] as const) {
    it(`a version byte other than 1 is fatal: records before it are delivered, nothing after (${cut})`, () => {
      const conn = begun(1);
      const bad = encodeRecord(RecordType.STDOUT, 1, text.encode("bad"));
      bad[0] = 2;
      const input = bytes(stdout(1, "good"), bad, stdout(1, "later"), encodeEndRequest(1, 0, 0));
      assert.deepEqual(feed(conn, input, cut), [
        { type: "stdout", requestId: 1, data: "good" },
        { type: "error", requestId: undefined, code: "BAD_VERSION" },
        { type: "lost", requestId: 1, code: "BAD_VERSION" },
      ]);
      assert.equal(conn.broken, true);
      assert.equal(conn.usable, false);
      conn.receive(encodeEndRequest(1, 0, 0));
      assert.equal(conn.nextEvent(), null, "input after a fatal error is ignored");
      assert.throws(() => conn.beginRequest([]), FastCGIError);
    });
  }

  it("the application closing the connection loses every active request, and says when it was mid-record", () => {
    const conn = begun(2);
    const partial = bytes(stdout(1, "Status: 200\r\n\r\nbody"), encodeEndRequest(2, 0, 0), stdout(1, "more"));
    conn.receive(partial.subarray(0, partial.length - 3));
    conn.receiveEnd();
    const events: ClientEvent[] = [];
    for (let e = conn.nextEvent(); e !== null; e = conn.nextEvent()) events.push(e);
    assert.deepEqual(events.map((e) => e.type), ["stdout", "end", "stdout", "lost"]);
    const lost = events[3] as Extract<ClientEvent, { type: "lost" }>;
    assert.equal(lost.requestId, 1);
    assert.equal(lost.error.code, "CONNECTION_CLOSED");
    assert.match(lost.error.message, /before END_REQUEST for requestId 1 \(in the middle of a record\)/);
    assert.equal(conn.usable, false);
    assert.equal(conn.abort(1), false);
  });

  it("stdout events are views of the received chunk, not copies", () => {
    const conn = begun(1);
    const chunk = bytes(stdout(1, "abc"));
    conn.receive(chunk);
    const e = conn.nextEvent() as Extract<ClientEvent, { type: "stdout" }>;
    assert.equal(e.data.buffer, chunk.buffer);
  });
});
