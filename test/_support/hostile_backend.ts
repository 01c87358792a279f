// The fake backend of the hostile-backend fuzzer (test/_support/fuzz_client.ts): a node:net listener
// on 127.0.0.1 that reads what fcgi's Client sends with the test oracle's decoders (test/oracle/),
// and answers each request as the current case's plan for it says. Plans are found by the marker
// the fuzzer puts in each request's X-Fuzz-Marker header; a request without a plan (the health
// check between cases) gets a plain valid answer.
//
// The one rule that makes the "never hand one request's bytes to another" check sound: a marker is
// only ever written in records for the id its request holds on that connection, from the backend's
// reading of its BEGIN_REQUEST until the backend writes an END_REQUEST for that id. Records queued
// for an id that has changed hands meanwhile are dropped, and once the backend breaks its own
// framing (a record cut short, a bad version byte) it writes nothing more on that connection:
// bytes after a broken record would be read by the Client as parts of other records.
import { createServer, type Server, type Socket } from "node:net";
import { RecordType } from "../../src/protocol/constants.ts";
import { concat, header, latin1, padTo8, pair, pairs } from "../oracle/build.ts";
import { makeCase, type RecordsCase } from "../oracle/cases.ts";
import { OracleRecordDecoder } from "../oracle/decoder.ts";
import { OraclePairDecoder } from "../oracle/pairs.ts";
import { Prng } from "../oracle/prng.ts";

const EMPTY = new Uint8Array(0);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The header that carries a request's marker (HTTP_X_FUZZ_MARKER in its params). */
export const MARKER_HEADER = "x-fuzz-marker";
/** What a marker looks like: FZM, seed and index in base 36, then "!". */
export const MARKER_PATTERN: RegExp = /FZM[0-9a-z.]{1,40}!/g;

/** How the backend answers one request. The kinds above "random-records" keep the connection's framing intact. */
export type ResponseKind =
  | "valid" | "split" | "unknown-ids" | "stderr-flood" | "giant-body" | "bad-head" | "giant-head" | "refuse" | "stall"
  | "random-records" | "oracle" | "wrong-id" | "reset" | "close" | "truncate";

/** What a response plan needs (fuzz_client.ts draws it). */
export interface ResponsePlan {
  readonly kind: ResponseKind;
  readonly seed: number;
  readonly status: number;
  readonly extraHeaders: number;
  readonly crlf: boolean;
  readonly bodyLength: number;
  /** STDOUT (and STDERR) record content size. */
  readonly recordSize: number;
  /** How records are written: whole, one byte per write, or in random pieces. */
  readonly split: "whole" | "bytes" | "cuts";
  readonly stderrBytes: number;
  /** The longest pause between two steps, and how many steps have one. */
  readonly pauseMs: number;
  readonly pauses: number;
  /** bad-head: which malformation; giant-head: "over" or "under" the limit. */
  readonly variant: string;
  /** The Client's maxHeaderBytes (giant-head is drawn around it). */
  readonly maxHeaderBytes: number;
  /** refuse: END_REQUEST's protocolStatus. */
  readonly protocolStatus: number;
  /** Where a stall, reset, close or truncation cuts the stream (0..1). */
  readonly cut: number;
  /** What the backend does on ABORT_REQUEST. */
  readonly onAbort: "end" | "ignore" | "close";
}

/** What the backend answers to GET_VALUES. */
export type ValuesPlan =
  | { readonly kind: "answer"; readonly pairs: ReadonlyArray<readonly [string, string]> }
  | { readonly kind: "silent" | "close" | "garbage" };

/** The current case as the backend sees it. */
export interface BackendCase {
  readonly values: ValuesPlan;
  /** The plan of each marker. */
  readonly plans: ReadonlyMap<string, ResponsePlan>;
}

/** The bytes of a body: a 64 KiB block of random bytes (no "F", so no accidental marker) with the marker at its start, repeated. */
export class BodyPattern {
  readonly block: Uint8Array;
  constructor(seed: number, marker: string) {
    const block = new Prng(seed ^ 0x5bd1e995).bytes(65536);
    for (let i = 0; i < block.length; i++) if (block[i] === 0x46) block[i] = 0x47;
    block.set(latin1(marker));
    this.block = block;
  }

  /** Bytes [from, from + length) of the body. */
  slice(from: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let at = 0; at < length;) {
      const offset = (from + at) % this.block.length;
      const n = Math.min(length - at, this.block.length - offset);
      out.set(this.block.subarray(offset, offset + n), at);
      at += n;
    }
    return out;
  }

  /** Whether `chunk` equals the body's bytes from `from`. */
  matches(from: number, chunk: Uint8Array): boolean {
    for (let i = 0; i < chunk.length; i++) if (chunk[i] !== this.block[(from + i) % this.block.length]) return false;
    return true;
  }
}

/** The STDERR text of a request: lines naming its marker. */
export function stderrText(marker: string, length: number): Uint8Array {
  const line = latin1(`stderr of ${marker} `.padEnd(63, "e") + "\n");
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += line.length) out.set(line.subarray(0, Math.min(line.length, length - at)), at);
  return out;
}

/** One record; content over 65535 bytes is the caller's mistake. */
function rec(type: number, id: number, content: Uint8Array = EMPTY, padding: number = padTo8(content.length)): Uint8Array {
  return concat([header({ type, requestId: id, contentLength: content.length, paddingLength: padding }), content, new Uint8Array(padding)]);
}

function endRequest(id: number, appStatus: number, protocolStatus: number): Uint8Array {
  return rec(RecordType.END_REQUEST, id, Uint8Array.of(appStatus >>> 24, (appStatus >>> 16) & 0xff, (appStatus >>> 8) & 0xff, appStatus & 0xff, protocolStatus, 0, 0, 0));
}

/** A stream's records: `data` cut into records of `size`, optionally closed by the empty record. */
function streamRecords(type: number, id: number, data: Uint8Array, size: number, close: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) out.push(rec(type, id, data.subarray(at, Math.min(at + size, data.length))));
  if (close) out.push(rec(type, id));
  return out;
}

/** One thing to write: records for `owner` (dropped when the id changed hands), or an action. */
interface Item {
  readonly records: readonly Uint8Array[];
  readonly split: ResponsePlan["split"];
  /** The id and marker these records belong to; null for records carrying no marker. */
  readonly owner: { readonly id: number; readonly marker: string } | null;
  /** wrong-id: resolved when written, against the ids held then. */
  readonly inject?: { readonly from: number; readonly prng: Prng };
  readonly action?: "close" | "reset" | "close-after";
  /** Whether the bytes are whole, well-formed records (else the connection is out of step after them). */
  readonly framed: boolean;
  /** The request's BEGIN_REQUEST had no FCGI_KEEP_CONN: close once its END_REQUEST is written. */
  readonly closeAfterEnd?: number;
}

/** One accepted connection. */
class BackendConnection {
  readonly socket: Socket;
  readonly #backend: HostileBackend;
  readonly #decoder = new OracleRecordDecoder();
  /** PARAMS so far, per id being begun. */
  readonly #params = new Map<number, { decoder: OraclePairDecoder; keepConn: boolean } | null>();
  /** The marker that holds each id, as this side sees it. */
  readonly owners: Map<number, string> = new Map();
  readonly #plans = new Map<number, ResponsePlan | null>();
  readonly #queue: Item[] = [];
  #writing = false;
  #dead = false;
  /** The backend broke its own framing: nothing more is written. */
  desynced = false;

  constructor(backend: HostileBackend, socket: Socket) {
    this.#backend = backend;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#dead = true;
      backend.connections.delete(this);
    });
  }

  get dead(): boolean {
    return this.#dead;
  }

  destroy(): void {
    this.#dead = true;
    this.socket.destroy();
  }

  #receive(chunk: Uint8Array): void {
    if (this.#dead) return;
    try {
      this.#decoder.decode(chunk, (type, id, content) => this.#record(type, id, content));
    } catch {
      this.destroy();
    }
  }

  #record(type: number, id: number, content: Uint8Array): void {
    if (id === 0) {
      if (type === RecordType.GET_VALUES) this.#values();
      return;
    }
    switch (type) {
      case RecordType.BEGIN_REQUEST:
        // A BEGIN_REQUEST body comes in one piece from the Client (8 bytes).
        this.#params.set(id, content.length === 8 ? { decoder: new OraclePairDecoder({ maxTotalBytes: 1 << 24, maxValueLength: 1 << 24, maxNameLength: 1 << 16 }), keepConn: (content[2]! & 1) === 1 } : null);
        break;
      case RecordType.PARAMS: {
        const begun = this.#params.get(id);
        if (!begun) return;
        if (content.length > 0) return void begun.decoder.push(content.slice());
        this.#params.delete(id);
        let marker = "";
        try {
          marker = begun.decoder.end().get("HTTP_X_FUZZ_MARKER") ?? "";
        } catch {
          // not a marker then
        }
        this.#begin(id, marker, begun.keepConn);
        break;
      }
      case RecordType.ABORT_REQUEST: {
        const plan = this.#plans.get(id);
        const marker = this.owners.get(id);
        if (marker === undefined) return;
        const onAbort = plan?.onAbort ?? "end";
        if (onAbort === "end") this.#push({ records: [endRequest(id, 1, 0)], split: "whole", owner: { id, marker }, framed: true });
        else if (onAbort === "close") this.#push({ records: [], split: "whole", owner: null, action: "close", framed: true });
        break;
      }
      default:
        // STDIN and DATA are read and dropped: no plan depends on the request body.
        break;
    }
  }

  #values(): void {
    const plan = this.#backend.current?.values ?? { kind: "answer", pairs: [["FCGI_MPXS_CONNS", "1"]] };
    switch (plan.kind) {
      case "answer":
        return this.#push({ records: [rec(RecordType.GET_VALUES_RESULT, 0, pairs(plan.pairs))], split: "whole", owner: null, framed: true });
      case "garbage":
        // A name length that runs past the record: fatal for the connection, and only it.
        return this.#push({ records: [rec(RecordType.GET_VALUES_RESULT, 0, Uint8Array.of(0x7f, 3, 0x41))], split: "whole", owner: null, framed: true });
      case "close":
        return this.#push({ records: [], split: "whole", owner: null, action: "close", framed: true });
      case "silent":
        return;
    }
  }

  #begin(id: number, marker: string, keepConn: boolean): void {
    const plan = this.#backend.current?.plans.get(marker) ?? null;
    this.owners.set(id, marker);
    this.#plans.set(id, plan);
    this.#backend.begun++;
    void this.#respond(id, marker, plan, keepConn);
  }

  /** Queues one request's answer, step by step with the plan's pauses. */
  async #respond(id: number, marker: string, plan: ResponsePlan | null, keepConn: boolean): Promise<void> {
    const steps = plan === null ? healthSteps(id, marker) : planSteps(plan, id, marker);
    const p = new Prng(plan?.seed ?? 1);
    let pausesLeft = plan?.pauses ?? 0;
    for (const step of steps) {
      if (this.#dead || this.owners.get(id) !== marker) return;
      if (pausesLeft > 0 && plan !== null && p.chance(0.3)) {
        pausesLeft--;
        await sleep(p.range(1, plan.pauseMs));
      }
      const last = step === steps[steps.length - 1];
      this.#push({ ...step, closeAfterEnd: last && !keepConn ? id : undefined });
    }
  }

  #push(item: Item): void {
    this.#queue.push(item);
    if (!this.#writing) void this.#write();
  }

  /** The one writer of this connection: items in order, each as its plan splits it. */
  async #write(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#dead) {
        const item = this.#queue.shift()!;
        if (item.action === "close") {
          this.socket.end();
          this.#dead = true;
          return;
        }
        if (item.action === "reset") {
          this.socket.resetAndDestroy();
          this.#dead = true;
          return;
        }
        // Out of step: only the ending (close, reset) still happens.
        if (this.desynced && item.action === undefined) continue;
        if (item.owner !== null && this.owners.get(item.owner.id) !== item.owner.marker) continue;
        const records = item.inject ? this.#injection(item.inject.from, item.inject.prng) : item.records;
        const all = concat(records as Uint8Array[]);
        await this.#send(all, item.split);
        if (this.#dead) return;
        // What the Client now holds as ended: the ids no marker may be written for any more.
        const walk = walkRecords(all);
        for (const id of walk.ended) this.owners.delete(id);
        if (!item.framed || !walk.whole) this.desynced = true;
        if (item.action === "close-after" || (item.closeAfterEnd !== undefined && !this.owners.has(item.closeAfterEnd))) {
          this.socket.end();
          this.#dead = true;
          return;
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  /** wrong-id: records for another id held on this connection (junk, an early end), or for a small id nobody holds. */
  #injection(from: number, p: Prng): Uint8Array[] {
    const others = [...this.owners.keys()].filter((id) => id !== from);
    const id = others.length > 0 ? p.pick(others) : p.range(1, 8);
    switch (p.below(5)) {
      case 0:
        return [rec(RecordType.STDOUT, id, p.bytes(p.range(1, 300)))];
      case 1:
        return [rec(RecordType.STDERR, id, latin1("junk from another request\n"))];
      case 2:
        return [rec(RecordType.STDOUT, id)];
      case 3:
        return [endRequest(id, p.next(), p.below(5))];
      default:
        return [rec(RecordType.STDOUT, id, latin1("Status: 200\r\nX-Injected: 1\r\n\r\n"))];
    }
  }

  /** Writes one item's bytes: at once, one byte per write (small items), or in at most 16 pieces, a turn of the event loop apart. */
  async #send(bytes: Uint8Array, split: ResponsePlan["split"]): Promise<void> {
    if (split === "whole" || bytes.length < 2) return this.#writeBytes(bytes);
    if (split === "bytes" && bytes.length <= 8192) {
      for (let i = 0; i < bytes.length && !this.#dead; i++) {
        await this.#writeBytes(bytes.subarray(i, i + 1));
        await turn();
      }
      return;
    }
    const p = new Prng(bytes.length);
    const cuts = [...new Set(Array.from({ length: p.range(1, 15) }, () => p.range(1, bytes.length - 1)))].sort((a, b) => a - b);
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      if (this.#dead) return;
      await this.#writeBytes(bytes.subarray(at, cut));
      at = cut;
      await turn();
    }
  }

  /** Writes, waiting for the socket to drain (or to close: a Client that went away ends the wait). */
  #writeBytes(bytes: Uint8Array): Promise<void> {
    if (this.#dead) return Promise.resolve();
    if (this.socket.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.on("drain", done);
      this.socket.on("close", done);
    });
  }
}

/**
 * The record headers of `bytes`: the ids an 8-byte END_REQUEST ended (the Client frees those), and
 * whether the bytes are whole records of version 1 (else the Client is out of step, or failed).
 */
function walkRecords(bytes: Uint8Array): { ended: number[]; whole: boolean } {
  const ended: number[] = [];
  let at = 0;
  while (at + 8 <= bytes.length) {
    if (bytes[at] !== 1) return { ended, whole: false };
    const length = (bytes[at + 4]! << 8) | bytes[at + 5]!;
    const id = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    if (bytes[at + 1] === RecordType.END_REQUEST && length === 8 && id !== 0 && at + 16 <= bytes.length) ended.push(id);
    at += 8 + length + bytes[at + 6]!;
  }
  return { ended, whole: at === bytes.length };
}

/** The answer to a request without a plan: 200 and a body naming its marker. */
function healthSteps(id: number, marker: string): Item[] {
  const owner = { id, marker };
  const stdout = latin1(`Status: 200 OK\r\nContent-Type: text/plain\r\nX-Fuzz-Marker: ${marker}\r\n\r\nhealthy ${marker}`);
  return [{ records: [rec(RecordType.STDOUT, id, stdout), rec(RecordType.STDOUT, id), endRequest(id, 0, 0)], split: "whole", owner, framed: true }];
}

/** The expected body of a health answer. */
export function healthBody(marker: string): string {
  return `healthy ${marker}`;
}

/** The CGI header block of a valid answer. */
export function headBlock(plan: ResponsePlan, marker: string): Uint8Array {
  const eol = plan.crlf ? "\r\n" : "\n";
  const lines = [`Status: ${plan.status} Fuzzed`, "Content-Type: application/octet-stream", `X-Fuzz-Marker: ${marker}`];
  const p = new Prng(plan.seed ^ 0x1234);
  for (let i = 0; i < plan.extraHeaders; i++) lines.push(i % 7 === 3 ? `Set-Cookie: c${i}=${p.below(1e9)}` : `X-Extra-${i}: ${"v".repeat(p.range(0, 60))}`);
  return latin1(lines.join(eol) + eol + eol);
}

/** A header block no CGI parser may accept (or, for the "either" variants, one a runtime's Headers may refuse). */
function badHead(plan: ResponsePlan, marker: string): Uint8Array {
  const start = `Content-Type: text/plain\r\nX-Fuzz-Marker: ${marker}\r\n`;
  switch (plan.variant) {
    case "nul":
      return latin1(start + "X-Bad: a\0b\r\n\r\n");
    case "no-colon":
      return latin1(start + "this line has no colon\r\n\r\n");
    case "bad-name":
      return latin1(start + "Bad Name: x\r\n\r\n");
    case "bare-cr":
      return latin1(start + "X-Bad: a\rb\r\n\r\n");
    case "folding":
      return latin1(start + "X-Fold: a\r\n  continued\r\n\r\n");
    case "bad-status":
      return latin1(start + `Status: ${new Prng(plan.seed).pick(["99", "600", "1000", "abc", "", "20", "200x", "-200"])}\r\n\r\n`);
    case "no-blank":
      return latin1(start + "X-Never: ended\r\n");
    case "empty":
      return EMPTY;
    case "ctl":
      return latin1(start + "X-Ctl: a\x01\x7fb\r\n\r\n");
    default: // "high": latin1 bytes over 0x7f in a value
      return latin1(start + "X-High: caf\xe9 \xff\r\n\r\n");
  }
}

/** A header block around the Client's maxHeaderBytes: far over it, or just under it. */
function giantHead(plan: ResponsePlan, marker: string): Uint8Array {
  const over = plan.variant !== "under";
  const size = over ? plan.maxHeaderBytes + 100 + (plan.seed % 200_000) : Math.max(0, plan.maxHeaderBytes - 200);
  const lines = [`X-Fuzz-Marker: ${marker}`];
  let length = lines[0]!.length + 2;
  const wide = plan.seed % 2 === 0;
  for (let i = 0; length < size; i++) {
    const line = wide ? `X-Giant: ${"g".repeat(Math.min(60_000, size - length))}` : `X-Many-${i}: ${"m".repeat(20)}`;
    if (!over && length + line.length + 4 > size) break;
    lines.push(line);
    length += line.length + 2;
  }
  return latin1(lines.join("\r\n") + "\r\n\r\n");
}

/** The steps of one planned answer. */
function planSteps(plan: ResponsePlan, id: number, marker: string): Item[] {
  const p = new Prng(plan.seed);
  const owner = { id, marker };
  const item = (records: Uint8Array[], framed = true): Item => ({ records, split: plan.split, owner, framed });
  const body = new BodyPattern(plan.seed, marker);
  // At most ~5000 records per stream, whatever was drawn: the backend shares the Client's process.
  const sizeFor = (length: number) => Math.max(1, Math.min(0xffff, Math.max(plan.recordSize, Math.ceil(length / 5000))));
  const size = sizeFor(Math.max(plan.bodyLength, plan.stderrBytes));

  switch (plan.kind) {
    case "oracle": {
      // A records case of the codec's differential generator, written with its own chunking.
      let c = makeCase(plan.seed, "fuzz");
      for (let s = plan.seed + 1; c.kind !== "records"; s++) c = makeCase(s, "fuzz");
      const stream = (c as RecordsCase).stream;
      const steps: Item[] = [{ records: [stream], split: "cuts", owner: null, framed: (c as RecordsCase).truncated === 0 }];
      return [...steps, ...ending(plan, p)];
    }
    case "random-records": {
      const steps: Item[] = [];
      for (let i = p.range(1, 30); i > 0; i--) steps.push({ records: [randomRecord(p, id)], split: plan.split, owner: null, framed: true });
      return [...steps, ...ending(plan, p)];
    }
    case "refuse": {
      const steps: Item[] = [];
      if (plan.stderrBytes > 0) steps.push(item(streamRecords(RecordType.STDERR, id, stderrText(marker, plan.stderrBytes), size, false)));
      steps.push(item([endRequest(id, p.next(), plan.protocolStatus)]));
      return steps;
    }
    case "bad-head":
    case "giant-head": {
      const head = plan.kind === "bad-head" ? badHead(plan, marker) : giantHead(plan, marker);
      const stdout = concat([head, body.slice(0, plan.bodyLength)]);
      return [...chunkedSteps(streamRecords(RecordType.STDOUT, id, stdout, sizeFor(stdout.length), true), item, p), item([endRequest(id, 0, 0)])];
    }
    default:
      break;
  }

  // The valid answer, which the other kinds interleave with, cut, or end differently.
  const records: Uint8Array[] = [];
  const head = headBlock(plan, marker);
  const bodyRecords = Math.ceil(plan.bodyLength / size);
  const stdout: Uint8Array[] = streamRecords(RecordType.STDOUT, id, head, size, false);
  for (let i = 0; i < bodyRecords; i++) stdout.push(rec(RecordType.STDOUT, id, body.slice(i * size, Math.min(size, plan.bodyLength - i * size))));
  stdout.push(rec(RecordType.STDOUT, id));
  const stderr = streamRecords(RecordType.STDERR, id, stderrText(marker, plan.stderrBytes), size, p.chance(0.5));
  // STDERR records go among the STDOUT ones, in order within each stream.
  for (let i = 0, j = 0; i < stdout.length || j < stderr.length;) {
    if (j < stderr.length && (i >= stdout.length || p.chance(stderr.length / (stderr.length + stdout.length)))) records.push(stderr[j++]!);
    else records.push(stdout[i++]!);
  }
  if (plan.kind === "unknown-ids") {
    for (let n = p.range(1, 20); n > 0; n--) records.splice(p.below(records.length + 1), 0, strayRecord(p, id));
  }
  records.push(endRequest(id, p.below(3) === 0 ? p.next() : 0, 0));

  switch (plan.kind) {
    case "stall": {
      // Cut at a record boundary before END_REQUEST: the Client's responseTimeout must end it.
      return chunkedSteps(records.slice(0, Math.floor(plan.cut * (records.length - 1))), item, p);
    }
    case "truncate": {
      const at = Math.floor(plan.cut * (records.length - 1));
      const cutRecord = records[at]!;
      const part = cutRecord.subarray(0, p.range(1, cutRecord.length - 1));
      return [...chunkedSteps(records.slice(0, at), item, p), item([part], false), ...ending(plan, p)];
    }
    case "reset":
    case "close": {
      const all = concat(records);
      const cutAt = Math.floor(plan.cut * all.length);
      const steps = chunkedSteps([all.subarray(0, cutAt)], item, p);
      return [...steps.map((s) => ({ ...s, framed: false })), { records: [], split: "whole", owner: null, action: plan.kind, framed: true }];
    }
    case "wrong-id": {
      const steps = chunkedSteps(records, item, p);
      for (let n = p.range(1, 4); n > 0; n--) {
        steps.splice(p.below(steps.length), 0, { records: [], split: "whole", owner: null, inject: { from: id, prng: new Prng(p.next()) }, framed: true });
      }
      return steps;
    }
    default:
      return chunkedSteps(records, item, p);
  }
}

/** Records grouped into a few steps (a pause may come between two steps). */
function chunkedSteps(records: Uint8Array[], item: (records: Uint8Array[]) => Item, p: Prng): Item[] {
  const steps: Item[] = [];
  for (let at = 0; at < records.length;) {
    const n = p.range(1, Math.max(1, Math.ceil(records.length / 4)));
    steps.push(item(records.slice(at, at + n)));
    at += n;
  }
  return steps;
}

/** How a hostile answer ends once its records are out. */
function ending(_plan: ResponsePlan, p: Prng): Item[] {
  const how = p.pick(["stall", "close", "reset", "end"] as const);
  if (how === "stall") return [];
  if (how === "end") return [{ records: [], split: "whole", owner: null, action: "close-after", framed: true }];
  return [{ records: [], split: "whole", owner: null, action: how, framed: true }];
}

/** A record the Client must ignore: for an id it never uses (it takes the lowest free one), or a management type nobody asked for. */
function strayRecord(p: Prng, id: number): Uint8Array {
  const far = p.range(1000, 0xffff);
  switch (p.below(7)) {
    case 0:
      return endRequest(far, p.next(), p.below(256));
    case 1:
      return rec(RecordType.STDOUT, far, p.bytes(p.range(0, 200)));
    case 2:
      return rec(RecordType.STDERR, far, latin1("stray\n"));
    case 3: // a type only a web server sends, on the request's own id
      return rec(p.pick([RecordType.BEGIN_REQUEST, RecordType.ABORT_REQUEST, RecordType.PARAMS, RecordType.STDIN, RecordType.DATA, RecordType.GET_VALUES]), id, p.bytes(p.range(0, 40)));
    case 4: // unknown types, on the request's id or on 0
      return rec(p.range(12, 255), p.chance(0.5) ? id : 0, p.bytes(p.range(0, 40)));
    case 5:
      return rec(RecordType.UNKNOWN_TYPE, 0, Uint8Array.of(p.below(256), 0, 0, 0, 0, 0, 0, 0));
    default: // a well-formed GET_VALUES_RESULT nobody asked for
      return rec(RecordType.GET_VALUES_RESULT, 0, pair("FCGI_MPXS_CONNS", "1"));
  }
}

/** A record of any type for the request's id, id 0 or any id, with random content and padding. */
function randomRecord(p: Prng, id: number): Uint8Array {
  const type = p.chance(0.6) ? p.pick([RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE]) : p.below(256);
  const to = p.pick([id, id, id, 0, p.range(1, 8), p.below(0x10000)]);
  const content = type === RecordType.STDOUT && p.chance(0.3) ? latin1(`Status: ${p.range(100, 700)}\nX-R: ${p.below(1000)}\n\n`) : p.bytes(p.chance(0.9) ? p.below(300) : p.below(0x10000));
  return rec(type, to, content, p.chance(0.7) ? padTo8(content.length) : p.below(256));
}

/** The listener: one per fuzzing run, its behaviour set per case. */
export class HostileBackend {
  readonly server: Server;
  readonly connections: Set<BackendConnection> = new Set();
  current: BackendCase | null = null;
  /** Requests begun so far (the fuzzer's count of how many reached the backend). */
  begun = 0;
  port = 0;

  private constructor(server: Server) {
    this.server = server;
    server.on("connection", (socket: Socket) => this.connections.add(new BackendConnection(this, socket)));
  }

  /** Listens on 127.0.0.1, on a port the system picks. */
  static async start(): Promise<HostileBackend> {
    const backend = new HostileBackend(createServer());
    await new Promise<void>((resolve, reject) => {
      backend.server.once("error", reject);
      backend.server.listen(0, "127.0.0.1", () => resolve());
    });
    backend.port = (backend.server.address() as { port: number }).port;
    return backend;
  }

  /** Closes the connections the backend put out of step itself: it knows, and a real backend would too. */
  dropDesynced(): void {
    for (const c of this.connections) if (c.desynced) c.destroy();
  }

  /** Ends the case: every connection is closed, and later requests get health answers. */
  endCase(): void {
    this.current = null;
    for (const c of this.connections) c.destroy();
    this.connections.clear();
  }

  /** Stops listening and closes every connection. */
  async stop(): Promise<void> {
    this.endCase();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
