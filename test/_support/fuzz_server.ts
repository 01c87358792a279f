// A live fuzzer for `fcgi serve` (#13), shared by bench/fuzz_server.ts (minutes per runtime) and
// test/fuzz_server.test.ts (a fixed slice of seeds). Each seed makes one case from the test
// oracle's builders (test/oracle/): one or more connections, each a stream of records (well-formed
// requests, odd PARAMS pairs, records of any type, id, length, padding and version, management
// records, STDIN/DATA out of order, ABORT_REQUEST), written in random pieces with small pauses and
// then closed cleanly, cut mid-record or left open; or a flood (many records, many GET_VALUES or
// pipelined requests without reading, many connections). After every case the server must still
// run, answer /hello on a new connection within HEALTH_TIMEOUT_MS, and keep its RSS within
// RSS_MARGIN_MIB of what it used after start-up (with Node's and Deno's heap capped: HEAP_LIMIT_MIB).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { RecordType, Role } from "../../src/protocol/constants.ts";
import { concat, cutAt, header, latin1, padTo8, pair, pairLength, pairs } from "../oracle/build.ts";
import { Prng, caseSeed } from "../oracle/prng.ts";
import { canConnect } from "./env.ts";
import { fcgiRequest, httpParams, parseCgi } from "./records.ts";
import { within } from "./poll.ts";

/** The app every fuzzed server runs: /hello is the health check; the other paths read the body, answer large, or wait. */
export const FUZZ_APP = `const bodyBytes = async (stream) => {
  // A body cut short of CONTENT_LENGTH, or ended by an abort, rejects: an answer, not a handler error.
  try { return (await new Response(stream).arrayBuffer()).byteLength; } catch { return -1; }
};
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/hello") return new Response("Hello, World!", { headers: { "content-type": "text/plain" } });
    if (path === "/echo") return new Response(String(await bodyBytes(request.body)));
    if (path === "/big") return new Response("x".repeat(200000));
    if (path === "/slow") { await new Promise((resolve) => setTimeout(resolve, 50)); return new Response("slow"); }
    return new Response("not found", { status: 404 });
  },
  authorize: () => new Response(null, { status: 200 }),
  async filter(request, context) { return new Response(String(await bodyBytes(context.data))); },
};
`;

/**
 * Limits lower than the defaults, so that cases reach them with a few hundred KiB instead of
 * megabytes; timeouts stay the defaults (a request or connection left hanging must be cleaned
 * up by the server itself, and a leak shows in the RSS check).
 */
export const FUZZ_SERVE_FLAGS: readonly string[] = ["--max-params-bytes", "64K", "--max-body-bytes", "256K", "--max-buffered-bytes", "128K", "--max-unsent-bytes", "256K"];
const MAX_PARAMS = 64 * 1024;

/** How long the fresh /hello request after each case may take. */
export const HEALTH_TIMEOUT_MS = 5000;
/**
 * How far the server's RSS may rise above its post-start baseline (after 20 /hello requests).
 * Generous: a flood case legitimately holds up to --max-unsent-bytes per connection and
 * --max-buffered-bytes per request, and Deno's and Bun's heaps grow and shrink by tens of MiB
 * with their collectors; a leak of a few KiB per case passes 128 MiB within minutes.
 */
export const RSS_MARGIN_MIB = 128;
/**
 * The old-space limit, in MiB, of the servers on Node and Deno (NODE_OPTIONS, DENO_V8_FLAGS; Bun's
 * JavaScriptCore has no such flag). Deno's default limit is 4 GiB, and its heap grows by a hundred
 * MiB of garbage before it collects in earnest, which the RSS bound would take for a leak; with a
 * limit, garbage is collected and live data that keeps growing (a leak) ends in a crash instead.
 * The largest case needs well under it: Deno ran 150 rounds of 164-connection floods within 40.
 */
export const HEAP_LIMIT_MIB = 64;
/** An RSS over the bound is read again for this long (lowest sample counts): Bun's collector lags by seconds. */
const RSS_SETTLE_MS = 3000;

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Cases

/** One write of a connection, and the pause after it. */
export interface Piece {
  readonly bytes: Uint8Array;
  readonly pauseMs: number;
}

/** How a connection ends once its pieces are written. */
export type Ending = "end" | "destroy" | "linger";

/** What one connection of a case does. */
export interface ConnectionPlan {
  readonly pieces: readonly Piece[];
  /** Read the answers; false leaves them unread (the socket is paused). */
  readonly read: boolean;
  /** end: half-close and wait for the server's close; destroy: close at once; linger: stay open lingerMs, then destroy. */
  readonly ending: Ending;
  readonly lingerMs: number;
}

/** One seeded case: its connections run at the same time. */
export interface ServerCase {
  readonly seed: number;
  readonly kind: string;
  readonly connections: readonly ConnectionPlan[];
}

/** The case kinds and their weights (out of the sum). */
const KINDS: ReadonlyArray<readonly [string, number]> = [
  ["records", 40],
  ["requests", 20],
  ["early-close", 12],
  ["flood-records", 6],
  ["flood-values", 6],
  ["flood-requests", 6],
  ["flood-connections", 10],
];

function pickKind(p: Prng): string {
  let n = p.below(KINDS.reduce((sum, [, w]) => sum + w, 0));
  for (const [kind, weight] of KINDS) {
    if (n < weight) return kind;
    n -= weight;
  }
  return KINDS[0]![0];
}

/** The kind of a seed's case, without building the case (the kind is its first draw). */
export function serverCaseKind(seed: number): string {
  return pickKind(new Prng(caseSeed(seed)));
}

/** The case of a seed: the same on every runtime and every run. */
export function makeServerCase(seed: number): ServerCase {
  const p = new Prng(caseSeed(seed));
  const kind = pickKind(p);
  const connections: ConnectionPlan[] = [];
  switch (kind) {
    case "records":
      for (let i = p.range(1, 3); i > 0; i--) connections.push(plan(p, concat(spoilVersion(p, mixedUnits(p, p.range(1, 20)))), "any"));
      break;
    case "requests":
      for (let i = p.range(1, 3); i > 0; i--) connections.push(plan(p, concat(spoilVersion(p, interleave(p, Array.from({ length: p.range(1, 6) }, () => requestRecords(p, requestId(p), true))))), "any"));
      break;
    case "early-close":
      for (let i = p.range(1, 4); i > 0; i--) {
        const whole = concat(requestRecords(p, requestId(p), p.chance(0.5)));
        connections.push(plan(p, whole.subarray(0, p.below(whole.length)), "destroy"));
      }
      break;
    case "flood-records":
      connections.push(flood(p, Array.from({ length: p.range(2000, 40000) }, () => floodRecord(p))));
      break;
    case "flood-values":
      connections.push(flood(p, Array.from({ length: p.range(2000, 40000) }, () => getValues(p, false))));
      break;
    case "flood-requests": {
      const path = p.pick(["/hello", "/big", "/echo", "/slow"]);
      const count = p.range(100, path === "/big" ? 300 : 2000);
      connections.push(flood(p, Array.from({ length: count }, (_, i) => concat(wellFormedRequest(p, (i % 0xffff) + 1, path)))));
      break;
    }
    case "flood-connections":
      for (let i = p.range(20, 200); i > 0; i--) {
        const whole = concat(requestRecords(p, 1, p.chance(0.5)));
        connections.push({ pieces: [{ bytes: whole.subarray(0, p.below(Math.min(whole.length, 40))), pauseMs: 0 }], read: p.chance(0.5), ending: p.pick(["end", "destroy", "linger"]), lingerMs: p.below(500) });
      }
      break;
  }
  return { seed, kind, connections };
}

/** A short description of a case, for failure reports. */
export function describeServerCase(c: ServerCase): string {
  const bytes = c.connections.reduce((sum, conn) => sum + conn.pieces.reduce((s, piece) => s + piece.bytes.length, 0), 0);
  const endings = new Map<string, number>();
  for (const conn of c.connections) endings.set(conn.ending, (endings.get(conn.ending) ?? 0) + 1);
  return `${c.kind}: ${c.connections.length} connection(s), ${bytes} bytes, endings ${[...endings].map(([e, n]) => `${e}×${n}`).join(" ")}`;
}

/** A connection that writes `bytes` in random pieces with small pauses (at most 24 pieces, 15 ms each). */
function plan(p: Prng, bytes: Uint8Array, ending: Ending | "any"): ConnectionPlan {
  const count = Math.min(bytes.length, p.range(1, 24));
  const offsets = new Set<number>();
  while (offsets.size < count - 1) offsets.add(p.range(1, bytes.length - 1));
  const pieces = cutAt(bytes, [...offsets].sort((a, b) => a - b)).filter((b) => b.length > 0).map((b) => ({ bytes: b, pauseMs: p.chance(0.5) ? 0 : p.range(1, 15) }));
  const how: Ending = ending === "any" ? p.pick(["end", "end", "destroy", "linger"]) : ending;
  return { pieces, read: p.chance(0.8), ending: how, lingerMs: p.below(300) };
}

/** A flood: the units written back to back in 64 KiB writes, mostly without reading. */
function flood(p: Prng, units: Uint8Array[]): ConnectionPlan {
  const all = concat(units);
  const pieces: Piece[] = [];
  for (let at = 0; at < all.length; at += 65536) pieces.push({ bytes: all.subarray(at, at + 65536), pauseMs: 0 });
  return { pieces, read: p.chance(0.3), ending: p.pick(["destroy", "end", "linger"]), lingerMs: p.below(500) };
}

function requestId(p: Prng): number {
  return p.pick([1, 1, 1, 2, 3, 0, 0xffff, p.below(0x10000)]);
}

/** One record with a random padding (mostly to 8) of random bytes, and sometimes its reserved byte set. */
function rec(p: Prng, type: number, requestId: number, content: Uint8Array = EMPTY): Uint8Array {
  const padding = p.chance(0.6) ? padTo8(content.length) : p.below(256);
  const reserved = p.chance(0.05) ? p.below(256) : 0;
  return concat([header({ type, requestId, contentLength: content.length, paddingLength: padding, reserved }), content, p.bytes(padding)]);
}

/**
 * One connection in ten gets a version byte other than 1 in one of its records. Fatal to the
 * connection, so decided per connection, not per record: a stream of hundreds of records would
 * almost never get past its first few otherwise.
 */
function spoilVersion(p: Prng, records: Uint8Array[]): Uint8Array[] {
  if (records.length === 0 || !p.chance(0.1)) return records;
  const i = p.below(records.length);
  const spoilt = records[i]!.slice();
  spoilt[0] = p.pick([0, 2, 255]);
  return records.map((r, j) => (j === i ? spoilt : r));
}

/** A stream's records: the data cut into records of one random size, then (if `close`) the empty record. */
function streamRecords(p: Prng, type: number, id: number, data: Uint8Array, close: boolean): Uint8Array[] {
  // At most ~500 records per stream, whatever the size drawn.
  const size = Math.max(p.pick([1, 7, 8, 100, 4096, 65535, p.range(1, 65535)]), Math.ceil(data.length / 500));
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) out.push(rec(p, type, id, data.subarray(at, Math.min(at + size, at + 0xffff))));
  if (close) out.push(rec(p, type, id));
  return out;
}

function randomText(p: Prng, n: number): string {
  return latin1String(p.bytes(n));
}

function latin1String(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Params of a request: nginx's usual ones, sometimes changed or extended. */
function paramList(p: Prng): [string, string][] {
  const path = p.chance(0.9) ? p.pick(["/hello", "/echo", "/big", "/slow", "/missing", "/", "/a?b=c"]) : "/" + randomText(p, p.range(0, 40));
  const params = httpParams(path) as Record<string, string>;
  if (p.chance(0.3)) params.REQUEST_METHOD = p.pick(["POST", "PUT", "HEAD", "OPTIONS", "BREW", ""]);
  if (p.chance(0.3)) params.CONTENT_LENGTH = p.pick(["0", "1", "10", "1000", "1000000", "-1", "9007199254740993", "abc", ""]);
  if (p.chance(0.2)) params.HTTP_X_JUNK = randomText(p, p.range(0, 300));
  if (p.chance(0.1)) params.HTTP_HOST = randomText(p, p.range(0, 20));
  if (p.chance(0.1)) delete params[p.pick(Object.keys(params))];
  return Object.entries(params);
}

/** A pair no well-behaved web server sends. */
function oddPair(p: Prng): Uint8Array {
  switch (p.below(7)) {
    case 0: // cut inside its four length bytes
      return pairLength(p.range(128, 100000), true).subarray(0, p.range(1, 3));
    case 1: // lengths near 2^31 (libfcgi's CVE-2025-23016), a few bytes after them
      return concat([pairLength(0x7fff_ffff - p.below(16), true), pairLength(p.pick([0, 0x7fff_ffff, p.below(0x8000_0000)]), true), p.bytes(p.range(0, 32))]);
    case 2: // a name longer than what follows
      return concat([pairLength(p.range(10, 127)), pairLength(0), p.bytes(p.range(0, 9))]);
    case 3: // one value over --max-params-bytes
      return pair("HTTP_X_BIG", new Uint8Array(p.range(MAX_PARAMS, MAX_PARAMS * 2)).fill(0x61));
    case 4: // many small pairs, sometimes past the limit
      return concat(Array.from({ length: p.range(100, 6000) }, (_, i) => pair(`HTTP_N${i}`, "v")));
    case 5: // empty or binary names and values
      return pair(p.bytes(p.range(0, 3)), p.bytes(p.range(0, 200)));
    default: // noise
      return p.bytes(p.range(1, 64));
  }
}

/** PARAMS content: the list's pairs (some in the four-byte layout), with an odd pair inserted sometimes. */
function paramsBytes(p: Prng): Uint8Array {
  const parts = paramList(p).map(([name, value]) => pair(latin1(name), latin1(value), { wideName: p.chance(0.05), wideValue: p.chance(0.05) }));
  if (p.chance(0.3)) parts.splice(p.below(parts.length + 1), 0, oddPair(p));
  return concat(parts);
}

/** A request body: empty, small, or past --max-body-bytes and --max-buffered-bytes. */
function body(p: Prng): Uint8Array {
  return p.chance(0.5) ? EMPTY : p.bytes(p.pick([1, 100, 5000, 70000, p.range(0, 300000)]));
}

/** BEGIN_REQUEST content: a random role and flags, rarely a content of the wrong size (fatal). */
function beginContent(p: Prng, role: number, keepConn: boolean): Uint8Array {
  if (p.chance(0.02)) return p.bytes(p.range(0, 16));
  const flags = p.chance(0.9) ? (keepConn ? 1 : 0) : p.below(256);
  return Uint8Array.of(role >> 8, role & 0xff, flags, 0, 0, 0, 0, 0);
}

/** A request's records: BEGIN_REQUEST, PARAMS, STDIN, DATA, any of them cut short or left out. */
function requestRecords(p: Prng, id: number, keepConn: boolean): Uint8Array[] {
  const role = p.chance(0.8) ? p.pick([Role.RESPONDER, Role.RESPONDER, Role.RESPONDER, Role.AUTHORIZER, Role.FILTER]) : p.pick([0, 4, 0xffff, p.below(0x10000)]);
  const out = [rec(p, RecordType.BEGIN_REQUEST, id, beginContent(p, role, keepConn))];
  if (p.chance(0.95)) out.push(...streamRecords(p, RecordType.PARAMS, id, paramsBytes(p), p.chance(0.93)));
  if (p.chance(0.9)) out.push(...streamRecords(p, RecordType.STDIN, id, body(p), p.chance(0.9)));
  if (role === Role.FILTER || p.chance(0.05)) out.push(...streamRecords(p, RecordType.DATA, id, body(p), p.chance(0.9)));
  // Out of order: STDIN or DATA before PARAMS ends, or anything before BEGIN_REQUEST.
  if (p.chance(0.15)) shuffle(p, out);
  return out;
}

/** A GET request as nginx sends it, with KEEP_CONN: for the pipelined flood. */
function wellFormedRequest(p: Prng, id: number, path: string): Uint8Array[] {
  const params = pairs(Object.entries(httpParams(path)) as [string, string][]);
  const stdin = path === "/echo" ? p.bytes(p.range(0, 2000)) : EMPTY;
  return [
    rec(p, RecordType.BEGIN_REQUEST, id, Uint8Array.of(0, Role.RESPONDER, 1, 0, 0, 0, 0, 0)),
    ...streamRecords(p, RecordType.PARAMS, id, params, true),
    ...streamRecords(p, RecordType.STDIN, id, stdin, true),
  ];
}

/** GET_VALUES on id 0: the three names, or names never defined, or noise (`junk`). */
function getValues(p: Prng, junk: boolean): Uint8Array {
  if (junk && p.chance(0.5)) return rec(p, RecordType.GET_VALUES, 0, p.bytes(p.below(300)));
  const names = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"].filter(() => p.chance(0.7));
  if (junk && p.chance(0.5)) names.push(randomText(p, p.range(0, p.chance(0.9) ? 50 : 60000)));
  return rec(p, RecordType.GET_VALUES, 0, pairs(names.map((name) => [name, ""] as [string, string])));
}

/** A record of any type (mostly small ones), id and length, content random. */
function randomRecord(p: Prng): Uint8Array {
  const type = p.chance(0.5) ? p.range(0, 12) : p.below(256);
  return rec(p, type, p.pick([0, 0, 1, 2, p.below(0x10000)]), p.bytes(p.chance(0.9) ? p.below(300) : p.below(0x10000)));
}

/** A small record of a flood: management records, strays for ids never begun, aborts. */
function floodRecord(p: Prng): Uint8Array {
  switch (p.below(5)) {
    case 0:
      return rec(p, p.pick([0, 3, 6, 7, 10, 11, 12, 99, 255]), 0, p.bytes(p.below(16)));
    case 1:
      return getValues(p, false);
    case 2:
      return rec(p, RecordType.ABORT_REQUEST, p.below(0x10000));
    case 3:
      return rec(p, p.pick([RecordType.STDIN, RecordType.DATA, RecordType.PARAMS]), p.range(1, 0xffff), p.bytes(p.below(32)));
    default: // small, so that a flood is many records rather than many bytes
      return rec(p, p.below(256), p.pick([0, 1, p.below(0x10000)]), p.bytes(p.below(64)));
  }
}

/** `count` units of any kind, each a list of records: requests, strays, management, aborts. */
function mixedUnits(p: Prng, count: number): Uint8Array[] {
  const units: Uint8Array[][] = [];
  for (let i = 0; i < count; i++) {
    switch (p.below(6)) {
      case 0:
      case 1:
        units.push(requestRecords(p, requestId(p), p.chance(0.7)));
        break;
      case 2:
        units.push([randomRecord(p)]);
        break;
      case 3:
        units.push([p.chance(0.5) ? getValues(p, true) : rec(p, p.pick([0, 3, 6, 7, 10, 11, 12, 99, 255]), 0, p.bytes(p.below(16)))]);
        break;
      case 4:
        units.push([rec(p, RecordType.ABORT_REQUEST, requestId(p), p.chance(0.9) ? EMPTY : p.bytes(p.below(16)))]);
        break;
      default:
        units.push(streamRecords(p, p.pick([RecordType.STDIN, RecordType.DATA, RecordType.PARAMS]), requestId(p), body(p), p.chance(0.5)));
    }
  }
  return interleave(p, units);
}

/** The records of several units merged in random order, each unit's own order kept. */
function interleave(p: Prng, units: Uint8Array[][]): Uint8Array[] {
  const queues = units.map((u) => [...u]);
  const out: Uint8Array[] = [];
  for (let live = queues.filter((q) => q.length > 0); live.length > 0; live = live.filter((q) => q.length > 0)) out.push(p.pick(live).shift()!);
  return out;
}

function shuffle<T>(p: Prng, items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = p.below(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

// ---------------------------------------------------------------------------------------------
// Driving a case

/** How long one connection of a case may take in all (writes, pauses, lingering), and one write's drain. */
const CONNECTION_BUDGET_MS = 4000;
const DRAIN_WAIT_MS = 1000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs one connection's plan; errors of the socket (resets, refusals) are part of the game and ignored. */
async function runConnection(port: number, conn: ConnectionPlan): Promise<void> {
  const deadline = Date.now() + CONNECTION_BUDGET_MS;
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  let closed = false;
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const w of [...wakers]) w();
  };
  const until = (ms: number, done: () => boolean) =>
    new Promise<void>((resolve) => {
      if (done()) return resolve();
      const finish = () => {
        clearTimeout(timer);
        wakers.delete(check);
        resolve();
      };
      const check = () => done() && finish();
      const timer = setTimeout(finish, Math.max(0, Math.min(ms, deadline - Date.now())));
      wakers.add(check);
    });
  let connected = false;
  let drained = true;
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
    wake();
  });
  socket.on("connect", () => {
    connected = true;
    wake();
  });
  socket.on("drain", () => {
    drained = true;
    wake();
  });
  if (conn.read) socket.on("data", () => {});
  else socket.pause();
  try {
    await until(CONNECTION_BUDGET_MS, () => connected || closed);
    if (!connected) return;
    for (const piece of conn.pieces) {
      if (closed || Date.now() > deadline) return;
      drained = socket.write(piece.bytes);
      // A server that stopped reading (backpressure) ends the writing, not the case.
      if (!drained) await until(DRAIN_WAIT_MS, () => drained || closed);
      if (!drained) break;
      if (piece.pauseMs > 0) await sleep(piece.pauseMs);
    }
    if (conn.ending === "end") {
      socket.end();
      await until(conn.lingerMs + 200, () => closed);
    } else if (conn.ending === "linger") {
      await until(conn.lingerMs, () => closed);
    }
  } finally {
    socket.destroy();
  }
}

/** Runs every connection of a case at once. */
export async function runServerCase(port: number, c: ServerCase): Promise<void> {
  await Promise.all(c.connections.map((conn) => runConnection(port, conn)));
}

// ---------------------------------------------------------------------------------------------
// The server under test and the checks

/** The server's RSS, in MiB, from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

/** A running `fcgi serve`, its output's last 16 KiB, and whether it exited. */
export class FuzzedServer {
  readonly child: ChildProcess;
  readonly port: number;
  exit: string | undefined;
  #tail = "";
  #fresh = "";
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    const keep = (d: unknown) => {
      this.#tail = (this.#tail + String(d)).slice(-16384);
      this.#fresh = (this.#fresh + String(d)).slice(-16384);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.#exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        this.exit = `exited with ${signal ?? `code ${code}`}`;
        resolve();
      })
    );
  }

  /** Starts `command` (which must listen on `port`) and waits up to 30 s for it to accept. */
  static async start(command: [string, string[]], port: number, cwd: string): Promise<FuzzedServer> {
    const heap = `--max-old-space-size=${HEAP_LIMIT_MIB}`;
    const env = { ...process.env, NO_COLOR: "1", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${heap}`.trim(), DENO_V8_FLAGS: [process.env.DENO_V8_FLAGS, heap].filter(Boolean).join(",") };
    const child = spawn(command[0], command[1], { cwd, stdio: ["ignore", "pipe", "pipe"], env });
    const server = new FuzzedServer(child, port);
    const deadline = Date.now() + 30_000;
    while (!(await canConnect(`127.0.0.1:${port}`))) {
      if (server.exit || Date.now() > deadline) {
        await server.stop();
        throw new Error(`fcgi serve did not listen on ${port} (${server.exit ?? "30 s"}): ${server.output()}`);
      }
      await sleep(100);
    }
    return server;
  }

  /** What the server printed last (its log lines). */
  output(): string {
    return this.#tail;
  }

  /** What the server printed since the last call (its last 16 KiB at most). */
  takeFresh(): string {
    const fresh = this.#fresh;
    this.#fresh = "";
    return fresh;
  }

  /** Kills the server (SIGKILL: the fuzzer does not test the graceful shutdown) and waits up to 5 s for it. */
  async stop(): Promise<void> {
    if (!this.exit) this.child.kill("SIGKILL");
    await Promise.race([this.#exited, sleep(5000)]);
  }
}

/** A fresh /hello over a new connection: undefined when the answer is right within HEALTH_TIMEOUT_MS, else what was wrong. */
export async function checkHello(port: number): Promise<string | undefined> {
  try {
    const result = await within(fcgiRequest(port, { params: httpParams("/hello") }, HEALTH_TIMEOUT_MS), HEALTH_TIMEOUT_MS, "the /hello answer");
    if (result.protocolStatus !== 0 || result.appStatus !== 0) return `/hello ended with appStatus ${result.appStatus}, protocolStatus ${result.protocolStatus}`;
    const response = parseCgi(result.stdout);
    if (response.status !== 200 || response.text !== "Hello, World!") return `/hello answered ${response.status} ${JSON.stringify(response.text.slice(0, 100))}`;
    return undefined;
  } catch (error) {
    return `/hello failed: ${(error as Error).message}`;
  }
}

/** Undefined when the server is alive, answers /hello, and its RSS is within `limitMiB`; else the failure. */
async function checkServer(server: FuzzedServer, limitMiB: number): Promise<{ failure?: string; rss: number }> {
  if (server.exit) return { failure: `the server ${server.exit}`, rss: 0 };
  const hello = await checkHello(server.port);
  if (server.exit) return { failure: `the server ${server.exit}`, rss: 0 };
  if (hello) return { failure: hello, rss: 0 };
  let rss = rssMiB(server.child.pid!);
  for (const settleUntil = Date.now() + RSS_SETTLE_MS; rss > limitMiB && Date.now() < settleUntil;) {
    await sleep(250);
    rss = Math.min(rss, rssMiB(server.child.pid!));
  }
  if (rss > limitMiB) return { failure: `RSS ${rss.toFixed(1)} MiB over the bound of ${limitMiB.toFixed(1)} MiB`, rss };
  return { rss };
}

/** One failed case, with what reproduces it. */
export interface FuzzFailure {
  readonly seed: number;
  readonly what: string;
  readonly case: string;
  /** The first seed this server process ran: the failure may need the cases since then. */
  readonly serverFirstSeed: number;
  readonly serverOutput: string;
}

/** What a run covered. */
export interface FuzzReport {
  readonly firstSeed: number;
  /** The seed after the last one run. */
  nextSeed: number;
  cases: number;
  kinds: Record<string, number>;
  failures: FuzzFailure[];
  baselineMiB: number;
  peakMiB: number;
  /** Log lines of the server that look like errors (not the limits' own lines), first few. */
  suspectLines: string[];
}

/** Options of {@link fuzzServer}. */
export interface FuzzOptions {
  /** The command that runs `fcgi serve` with FUZZ_SERVE_FLAGS on `port`. */
  command(port: number): [string, string[]];
  /** A free loopback port for each server started. */
  freePort(): Promise<number>;
  cwd: string;
  firstSeed: number;
  maxCases: number;
  /** No case starts after this time (Date.now()). */
  deadline: number;
  /** Stop after this many failures (the server is restarted after each). Default 1. */
  maxFailures?: number;
  log?(line: string): void;
  /** Called after each case passed its checks, with how long the case and the checks took. */
  onCase?(seed: number, c: ServerCase, ms: number, rss: number): void;
}

// Lines the server writes on purpose for hostile input (limits, refusals) are expected; a stack
// trace (the app never throws) or an "uncaught" is not.
const FRAME = /^\s+at /;
const SUSPECT = /uncaught|unhandled/i;

/** Lines of `output` that look like an internal error: each stack trace's message with its first frame, or an "uncaught". */
function suspectLines(output: string): string[] {
  const lines = output.split("\n");
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (FRAME.test(lines[i]!)) {
      if (i === 0 || !FRAME.test(lines[i - 1]!)) found.push(`${i > 0 ? lines[i - 1] : "(message cut off)"} ${lines[i]!.trim()}`);
    } else if (SUSPECT.test(lines[i]!)) found.push(lines[i]!);
  }
  return found;
}

/** Runs seeds from `firstSeed` against a server it starts (and restarts after a failure), checking it after each. */
export async function fuzzServer(options: FuzzOptions): Promise<FuzzReport> {
  const report: FuzzReport = { firstSeed: options.firstSeed, nextSeed: options.firstSeed, cases: 0, kinds: {}, failures: [], baselineMiB: 0, peakMiB: 0, suspectLines: [] };
  const log = options.log ?? (() => {});
  const maxFailures = options.maxFailures ?? 1;
  while (report.cases < options.maxCases && Date.now() < options.deadline && report.failures.length < maxFailures) {
    const port = await options.freePort();
    const server = await FuzzedServer.start(options.command(port), port, options.cwd);
    const serverFirstSeed = report.nextSeed;
    try {
      for (let i = 0; i < 20; i++) {
        const hello = await checkHello(port);
        if (hello) throw new Error(`the fresh server failed its warm-up: ${hello}\n${server.output()}`);
      }
      const baseline = rssMiB(server.child.pid!);
      report.baselineMiB = Math.max(report.baselineMiB, baseline);
      const limit = baseline + RSS_MARGIN_MIB;
      log(`server pid ${server.child.pid} on port ${port}: baseline RSS ${baseline.toFixed(1)} MiB, bound ${limit.toFixed(1)} MiB`);
      while (report.cases < options.maxCases && Date.now() < options.deadline) {
        const seed = report.nextSeed;
        const c = makeServerCase(seed);
        const caseStarted = Date.now();
        await runServerCase(port, c);
        report.nextSeed++;
        report.cases++;
        report.kinds[c.kind] = (report.kinds[c.kind] ?? 0) + 1;
        const check = await checkServer(server, limit);
        report.peakMiB = Math.max(report.peakMiB, check.rss);
        for (const line of suspectLines(server.takeFresh())) {
          if (report.suspectLines.length < 20) report.suspectLines.push(`seed ${seed}: ${line}`);
        }
        if (check.failure) {
          report.failures.push({ seed, what: check.failure, case: describeServerCase(c), serverFirstSeed, serverOutput: server.output().slice(-4000) });
          log(`FAILURE at seed ${seed}: ${check.failure} (${describeServerCase(c)})`);
          break;
        }
        options.onCase?.(seed, c, Date.now() - caseStarted, check.rss);
      }
    } finally {
      await server.stop();
    }
  }
  return report;
}
