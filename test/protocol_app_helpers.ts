// Test support for the AppConnection tests: a record builder written from the spec (independent of
// the encoders under test, and able to build malformed records), and a driver that runs every input
// stream twice, in its chunks and one byte at a time, and requires the same events and bytes.
import assert from "node:assert/strict";
import { AppConnection, type AppConnectionOptions, type AppEvent } from "../src/protocol/app_connection.ts";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PIECE_END, PIECE_START } from "../src/codec/types.ts";
import { RecordType } from "../src/protocol/constants.ts";
import { concatBytes } from "../src/bytes.ts";

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const bytes = (b: string | Uint8Array): Uint8Array => (typeof b === "string" ? latin1(b) : b);

/** Concatenates byte arrays (src/bytes.ts, as arguments). */
export const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

/** One record, byte by byte as §3.3 lays it out. `version` and `padding` may be anything, for bad input. */
export function record(
  type: number,
  requestId: number,
  content: string | Uint8Array = new Uint8Array(0),
  { padding = 0, version = 1 }: { padding?: number; version?: number } = {},
): Uint8Array {
  const body = bytes(content);
  if (body.length > 0xffff) throw new Error("content too long for one record");
  const out = new Uint8Array(8 + body.length + padding);
  out[0] = version;
  out[1] = type;
  out[2] = requestId >> 8;
  out[3] = requestId & 0xff;
  out[4] = body.length >> 8;
  out[5] = body.length & 0xff;
  out[6] = padding;
  out.set(body, 8);
  out.fill(0xee, 8 + body.length); // padding bytes must never reach anything
  return out;
}

/** BEGIN_REQUEST {role, flags}. */
export function beginRequest(requestId: number, role = 1, flags = 0): Uint8Array {
  return record(RecordType.BEGIN_REQUEST, requestId, Uint8Array.of(role >> 8, role & 0xff, flags, 0, 0, 0, 0, 0));
}

function length(n: number): Uint8Array {
  return n < 128 ? Uint8Array.of(n) : Uint8Array.of(((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Name-value pairs (§3.4), one-byte lengths below 128, four-byte lengths otherwise. */
export function pairs(list: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>): Uint8Array {
  return concat(...list.flatMap(([n, v]) => [length(bytes(n).length), length(bytes(v).length), bytes(n), bytes(v)]));
}

/** A whole stream of `type`: records of at most `cut` bytes, then the empty record. */
export function stream(type: number, requestId: number, data: string | Uint8Array, cut = 65535): Uint8Array {
  const body = bytes(data);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += cut) parts.push(record(type, requestId, body.subarray(at, at + cut), { padding: (8 - (Math.min(cut, body.length - at) % 8)) % 8 }));
  parts.push(record(type, requestId));
  return concat(...parts);
}

/** The whole PARAMS stream of `list`. */
export function params(requestId: number, list: ReadonlyArray<readonly [string, string]>, cut?: number): Uint8Array {
  return stream(RecordType.PARAMS, requestId, pairs(list), cut);
}

/** GET_VALUES values every test uses unless it says otherwise. */
export const VALUES: AppConnectionOptions["values"] = { FCGI_MAX_CONNS: 10, FCGI_MAX_REQS: 50, FCGI_MPXS_CONNS: true };

/** An event with views merged and Params flattened, so two runs compare with deepEqual. */
export type Seen =
  | { type: "request"; requestId: number; role: number; keepConn: boolean; params: Array<[string, string]> }
  | { type: "stdin" | "data"; requestId: number; data: Uint8Array }
  | { type: "stdinEnd" | "dataEnd" | "abort"; requestId: number }
  | { type: "rejected"; requestId: number; protocolStatus: number; reason: string; limit?: string; param?: string }
  | { type: "error"; code: string };

function flatten(event: AppEvent, into: Seen[]): void {
  const last = into[into.length - 1];
  switch (event.type) {
    case "request":
      into.push({ type: "request", requestId: event.requestId, role: event.role, keepConn: event.keepConn, params: [...event.params.entries()].map(([n, v]) => [n, v]) });
      return;
    case "stdin":
    case "data":
      assert.ok(event.data.length > 0, "stdin/data events are never empty");
      // A record cut across chunks arrives as several pieces; what counts is the byte sequence.
      if (last !== undefined && last.type === event.type && last.requestId === event.requestId) {
        last.data = concat(last.data, event.data);
      } else {
        into.push({ type: event.type, requestId: event.requestId, data: Uint8Array.from(event.data) });
      }
      return;
    case "error":
      into.push({ type: "error", code: event.error.code });
      return;
    default:
      into.push({ ...event });
  }
}

/** A record of the output, decoded with the codec's decoder. */
export interface OutRecord {
  type: number;
  requestId: number;
  content: Uint8Array;
}

/** Decodes a byte stream into whole records (content copied). */
export function decodeRecords(data: Uint8Array): OutRecord[] {
  const out: OutRecord[] = [];
  let pending: Uint8Array[] = [];
  new RecordDecoder().decode(data, (type, requestId, content, flags) => {
    if (flags & PIECE_START) pending = [];
    pending.push(Uint8Array.from(content));
    if (flags & PIECE_END) out.push({ type, requestId, content: concat(...pending) });
  });
  return out;
}

/** Input bytes, or an application action taken between inputs (the same point in both runs). */
export type Step = Uint8Array | ((conn: AppConnection) => void);

/** What one run saw. */
export interface Trace {
  /** Events, flattened and merged. */
  events: Seen[];
  /** Every byte the connection queued, in order. */
  output: Uint8Array;
  /** The output as records. */
  records: OutRecord[];
  /** closeWanted after each step. */
  closeWanted: boolean[];
  /** The connection of the run in whole chunks, after the last step. */
  conn: AppConnection;
}

function once(
  options: AppConnectionOptions | (() => AppConnectionOptions),
  steps: readonly Step[],
  onEvent: ((conn: AppConnection, event: AppEvent) => void) | undefined,
  cut: number,
): Trace {
  const conn = new AppConnection(typeof options === "function" ? options() : options);
  const events: Seen[] = [];
  const output: Uint8Array[] = [];
  const closeWanted: boolean[] = [];
  for (const step of steps) {
    if (typeof step === "function") step(conn);
    else if (cut === 0) conn.receive(step);
    else for (let at = 0; at < step.length; at += cut) conn.receive(step.slice(at, at + cut));
    for (let e = conn.nextEvent(); e !== null; e = conn.nextEvent()) {
      flatten(e, events);
      onEvent?.(conn, e);
    }
    const pending = conn.pendingOutputBytes;
    const taken = conn.takeOutput();
    assert.equal(taken.reduce((n, b) => n + b.length, 0), pending, "pendingOutputBytes counts what takeOutput returns");
    assert.equal(conn.pendingOutputBytes, 0);
    output.push(...taken);
    closeWanted.push(conn.closeWanted);
  }
  const all = concat(...output);
  return { events, output: all, records: decodeRecords(all), closeWanted, conn };
}

/**
 * Runs `steps` on a fresh connection twice: input fed in its chunks, then cut into `cut`-byte
 * chunks (one byte unless told), with events drained and `onEvent` called after every step in
 * both runs. Asserts both runs saw the same events, output and closeWanted; returns the first.
 */
export function drive(
  options: AppConnectionOptions | (() => AppConnectionOptions),
  steps: readonly Step[],
  { onEvent, cut = 1 }: { onEvent?: (conn: AppConnection, event: AppEvent) => void; cut?: number } = {},
): Trace {
  const whole = once(options, steps, onEvent, 0);
  const pieces = once(options, steps, onEvent, cut);
  // A refusal's `param` is what had arrived of the offending pair's name when the limit broke: fed
  // in pieces, less of it may have (or none). Everything else is the same however the bytes come.
  const withoutParam = (events: readonly Seen[]) => events.map((e) => (e.type === "rejected" ? { ...e, param: undefined } : e));
  assert.deepEqual(withoutParam(pieces.events), withoutParam(whole.events), `events differ when fed ${cut} byte(s) at a time`);
  pieces.events.forEach((event, i) => {
    const other = whole.events[i];
    if (event.type === "rejected" && event.param !== undefined && other?.type === "rejected") {
      assert.ok(other.param?.startsWith(event.param), `param ${JSON.stringify(event.param)} in pieces, ${JSON.stringify(other.param)} whole`);
    }
  });
  assert.deepEqual(pieces.output, whole.output, `output differs when fed ${cut} byte(s) at a time`);
  assert.deepEqual(pieces.closeWanted, whole.closeWanted, `closeWanted differs when fed ${cut} byte(s) at a time`);
  assert.equal(pieces.conn.activeRequests, whole.conn.activeRequests);
  assert.equal(pieces.conn.ignoredRecords, whole.conn.ignoredRecords);
  return whole;
}

/** The END_REQUEST body as numbers. */
export function endRequestBody(r: OutRecord): { appStatus: number; protocolStatus: number } {
  assert.equal(r.type, RecordType.END_REQUEST);
  assert.equal(r.content.length, 8);
  const v = new DataView(r.content.buffer, r.content.byteOffset, 8);
  return { appStatus: v.getUint32(0), protocolStatus: v.getUint8(4) };
}

/** Decodes name-value pairs (GET_VALUES_RESULT content) independently of the codec. */
export function decodePairs(data: Uint8Array): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let at = 0;
  const len = (): number => {
    if (data[at]! < 128) return data[at++]!;
    const n = ((data[at]! & 0x7f) << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!;
    at += 4;
    return n;
  };
  while (at < data.length) {
    const n = len();
    const v = len();
    const name = String.fromCharCode(...data.subarray(at, at + n));
    at += n;
    const value = String.fromCharCode(...data.subarray(at, at + v));
    at += v;
    out.push([name, value]);
  }
  return out;
}

/** latin1 text of bytes. */
export function text(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

export { latin1 };
