// A peer that writes and never reads (#13): three connections pipelining requests, or flooding
// management records, into `fcgi serve` on this runtime without reading a byte of the answers. The
// server must stop reading once maxUnsentBytes wait (its RSS, read from /proc, grows by well under
// 64 MiB; without the bound it grew by hundreds), answer every request once the peer reads, and
// cut a peer that never drains after sendTimeout, with a log line.
import { describe, it, setup, after } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canConnect, startCli, type RunningCli } from "./_support/env.ts";
import { httpParams } from "./_support/records.ts";
import { concat, pairs, record, stream } from "./oracle/build.ts";
import { freePort, makeTempDir, removeDir, waitFor } from "./interop/_servers.ts";
import { RecordType, Role } from "../src/protocol/constants.ts";
import { currentRuntimeName, getRuntime } from "../src/runtime/index.ts";
import type { Connection } from "../src/socket.ts";

const MiB = 1024 * 1024;
const CONNECTIONS = 3;
/**
 * What each connection sends at most (it stops sooner when the server stops reading and the kernel
 * buffers between them are full). Loopback buffers take tens of MiB, so a server that kept reading
 * would take in all of it: 60 000 requests, 400 000 records, several times what fills the kernel's
 * buffers and then maxUnsentBytes.
 */
const MAX_REQUESTS = 60_000;
const MAX_RECORDS = 400_000;

// /kb answers 1 KiB: a flood of those outgrows what the kernel's socket buffers absorb (tens of
// MiB on loopback) well before the peer stops sending, so the server has to stop reading.
const APP = `const kb = "k".repeat(1024);
export default { fetch: (request) => new Response(new URL(request.url).pathname === "/kb" ? kb : "Hello, World!", { headers: { "content-type": "text/plain" } }) };
`;

/** /proc/<pid>/status fields, in MiB. */
function memory(pid: number, field: "VmRSS" | "VmHWM"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no ${field} for pid ${pid}`);
  return Number(match[1]) / 1024;
}

/**
 * The bytes waiting unread in the kernel on the server's side (local port `port`) of the
 * connections from these peer ports (rx_queue in /proc/net/tcp): more than zero once the server
 * has stopped reading them.
 */
function unreadInput(port: number, peerPorts: readonly number[]): number[] {
  const hex = (n: number) => `:${n.toString(16).toUpperCase().padStart(4, "0")}`;
  const queues: number[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    // sl, local_address, rem_address, st, tx_queue:rx_queue, …
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !fields[1]!.endsWith(hex(port)) || !peerPorts.some((p) => fields[2]!.endsWith(hex(p)))) continue;
    queues.push(parseInt(fields[4]!.split(":")[1]!, 16));
  }
  return queues;
}

/** One pipelined GET request (keepConn), as nginx would send it. */
function getRequest(requestId: number, path = "/hello"): Uint8Array {
  const begin = record(RecordType.BEGIN_REQUEST, requestId, new Uint8Array([0, Role.RESPONDER, 1, 0, 0, 0, 0, 0]));
  return concat([begin, stream(RecordType.PARAMS, requestId, pairs(Object.entries(httpParams(path)) as [string, string][])), record(RecordType.STDIN, requestId)]);
}

/** `count` copies of a request with the ids from `firstId` on (pipelined requests need distinct ids while they run). */
function requestBatch(template: Uint8Array, firstId: number, count: number): Uint8Array {
  const out = new Uint8Array(template.length * count);
  for (let i = 0; i < count; i++) {
    const at = i * template.length;
    out.set(template, at);
    const id = ((firstId + i - 1) % 0xffff) + 1;
    // Every record header of the copy gets the id (bytes 2-3).
    for (let r = at; r < at + template.length; r += 8 + ((out[r + 4]! << 8) | out[r + 5]!) + out[r + 6]!) {
      out[r + 2] = id >> 8;
      out[r + 3] = id & 0xff;
    }
  }
  return out;
}

/** Counts what comes back on one connection, record by record. */
class Tally {
  ends = 0;
  badEnds = 0;
  badKinds = new Map<string, number>();
  stdoutBytes = 0;
  unknownType = 0;
  valuesResults = 0;
  #pending = new Uint8Array(0);

  take(chunk: Uint8Array): void {
    const data = this.#pending.length > 0 ? concat([this.#pending, chunk]) : chunk;
    let at = 0;
    while (data.length - at >= 8) {
      const type = data[at + 1]!;
      const length = (data[at + 4]! << 8) | data[at + 5]!;
      const size = 8 + length + data[at + 6]!;
      if (data.length - at < size) break;
      const content = data.subarray(at + 8, at + 8 + length);
      if (type === RecordType.STDOUT) this.stdoutBytes += length;
      else if (type === RecordType.END_REQUEST) {
        this.ends++;
        // appStatus 0 and REQUEST_COMPLETE.
        if (content[0] !== 0 || content[1] !== 0 || content[2] !== 0 || content[3] !== 0 || content[4] !== 0) {
          this.badEnds++;
          this.badKinds.set(`app ${content[3]} protocol ${content[4]}`, (this.badKinds.get(`app ${content[3]} protocol ${content[4]}`) ?? 0) + 1);
        }
      } else if (type === RecordType.UNKNOWN_TYPE) this.unknownType++;
      else if (type === RecordType.GET_VALUES_RESULT) this.valuesResults++;
      at += size;
    }
    this.#pending = data.slice(at);
  }
}

/**
 * A peer socket that does not read until `read()`, and what it got once it does. It is the
 * runtime's own adapter (src/runtime/), whose pause() stops reading from the kernel on every
 * runtime, so that TCP pushes back on the server; Bun's node:net keeps reading while paused.
 */
class Peer {
  readonly tally = new Tally();
  /** Units (requests or records) written. */
  sent = 0;
  /** True once a write waited 1 s for a drain that did not come: the server stopped reading. */
  blocked = false;
  closed = false;
  connection!: Connection;
  #drained: (() => void) | undefined;

  static async open(port: number): Promise<Peer> {
    const peer = new Peer();
    const runtime = await getRuntime(currentRuntimeName());
    peer.connection = await runtime.connect({ transport: "tcp", hostname: "127.0.0.1", port }, {
      onData: (chunk) => peer.tally.take(chunk),
      onDrain: () => peer.#drained?.(),
      onClose: () => {
        peer.closed = true;
        peer.#drained?.();
      },
    });
    peer.connection.pause();
    return peer;
  }

  read(): void {
    this.connection.resume();
  }

  /** Writes; false when the write has to wait for a drain that did not come within 1 s. */
  async write(bytes: Uint8Array): Promise<boolean> {
    if (this.connection.write([bytes])) return true;
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      this.#drained = () => {
        clearTimeout(timer);
        this.#drained = undefined;
        resolve(true);
      };
    });
  }

  destroy(): void {
    this.connection.destroy();
  }
}

/** Writes batches of `units` units each (`batch(n)`: the n-th) until a drain does not come within 1 s, or `max` units went out. */
async function flood(peer: Peer, batch: (n: number) => Uint8Array, units: number, max: number): Promise<void> {
  while (peer.sent < max && !peer.closed) {
    const bytes = batch(peer.sent / units);
    peer.sent += units;
    if (!(await peer.write(bytes))) {
      peer.blocked = true;
      return;
    }
  }
}

describe("fcgi serve and a web server that does not read its answers", () => {
  let dir = "";
  let app = "";
  const running: RunningCli[] = [];
  const ready = setup(() => {
    dir = makeTempDir("fcgi-unread-");
    app = join(dir, "hello.mjs");
    writeFileSync(app, APP);
  });
  after(async () => {
    for (const cli of running) {
      cli.child.kill("SIGKILL");
      await cli.exited;
    }
    if (dir) removeDir(dir);
  });

  async function startServer(extra: string[] = []): Promise<{ cli: RunningCli; port: number }> {
    const port = await freePort();
    const cli = startCli(["serve", app, "--listen", `127.0.0.1:${port}`, ...extra]);
    running.push(cli);
    await waitFor("fcgi serve to listen", () => canConnect(`127.0.0.1:${port}`), 20_000);
    return { cli, port };
  }

  /**
   * The same flood from CONNECTIONS peers twice: first read as it is answered (the control: what
   * serving this load costs anyway, in compiled code, heap and the allocators' retained memory,
   * which after a burst differs by tens of MiB between runs on Deno and Bun), then not read at
   * all. Returns the unread peers and the server's RSS growth, in MiB, over the most it reached
   * in the control: once settled, and at its peak. So it is what not reading adds.
   */
  async function floodUnread(pid: number, port: number, batch: (n: number) => Uint8Array, units: number, max: number, answered: (peer: Peer) => number): Promise<{ peers: Peer[]; growth: number; peak: number }> {
    writeFileSync(`/proc/${pid}/clear_refs`, "5"); // VmHWM starts again from the current RSS
    const warm = await Promise.all(Array.from({ length: CONNECTIONS }, () => Peer.open(port)));
    for (const peer of warm) peer.read();
    await Promise.all(warm.map((peer) => flood(peer, batch, units, max)));
    await waitFor("the warm-up's answers", () => warm.every((peer) => answered(peer) >= peer.sent), 60_000);
    for (const peer of warm) peer.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = Math.max(memory(pid, "VmHWM"), memory(pid, "VmRSS"));
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    const peers = await Promise.all(Array.from({ length: CONNECTIONS }, () => Peer.open(port)));
    await Promise.all(peers.map((peer) => flood(peer, batch, units, max)));
    // RSS once the server has answered what it took in and its garbage collector has caught up
    // (Bun's lags by seconds): the lowest of 3 s of samples. What the unread answers hold stays
    // in it; a burst's garbage does not.
    const samples: number[] = [];
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      samples.push(memory(pid, "VmRSS"));
    }
    const peak = memory(pid, "VmHWM") - before;
    const unread = unreadInput(port, peers.map((peer) => peer.connection.localPort));
    assert.equal(unread.length, CONNECTIONS, "the server's connections in /proc/net/tcp");
    for (const bytes of unread) assert.ok(bytes > 0, `the server stopped reading: its connections hold ${unread.join(", ")} bytes unread`);
    return { peers, growth: Math.min(...samples) - before, peak };
  }

  it("pipelined requests: the server stops reading, its memory stays bounded, and every request is answered once the peer reads", { timeout: 120_000 }, async () => {
    ready();
    const { cli, port } = await startServer();
    const pid = cli.child.pid!;
    const one = getRequest(1, "/kb");
    const { peers, growth, peak } = await floodUnread(pid, port, (n) => requestBatch(one, 1 + n * 64, 64), 64, MAX_REQUESTS, (peer) => peer.tally.ends);
    assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB, ${peak.toFixed(1)} MiB at its peak (${peers.map((p) => `${p.sent}${p.blocked ? " until blocked" : ""}`).join(", ")} requests sent)`);

    for (const peer of peers) peer.read();
    await waitFor("every request's answer", () => peers.every((peer) => peer.tally.ends >= peer.sent), 60_000);
    for (const peer of peers) {
      assert.equal(peer.tally.ends, peer.sent);
      assert.equal(peer.tally.badEnds, 0, `END_REQUESTs other than complete: ${[...peer.tally.badKinds].join(", ")}`);
      assert.equal(peer.tally.stdoutBytes % peer.sent, 0, "every answer the same");
      assert.ok(!peer.closed, "the connection stays open");
      peer.destroy();
    }
  });

  it("management records (UNKNOWN_TYPE and GET_VALUES): the server stops reading, its memory stays bounded, and every record is answered once the peer reads", { timeout: 120_000 }, async () => {
    ready();
    const { cli, port } = await startServer();
    const pid = cli.child.pid!;
    const unknown = record(99, 0, new Uint8Array(8));
    const values = record(RecordType.GET_VALUES, 0, pairs([["FCGI_MAX_CONNS", ""], ["FCGI_MAX_REQS", ""], ["FCGI_MPXS_CONNS", ""]]));
    const batch = concat(Array.from({ length: 256 }, (_, i) => (i % 2 ? values : unknown)));
    const { peers, growth, peak } = await floodUnread(pid, port, () => batch, 256, MAX_RECORDS, (peer) => peer.tally.unknownType + peer.tally.valuesResults);
    assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB, ${peak.toFixed(1)} MiB at its peak (${peers.map((p) => `${p.sent}${p.blocked ? " until blocked" : ""}`).join(", ")} records sent)`);

    for (const peer of peers) peer.read();
    await waitFor("every record's answer", () => peers.every((peer) => peer.tally.unknownType + peer.tally.valuesResults >= peer.sent), 60_000);
    for (const peer of peers) {
      assert.equal(peer.tally.unknownType, peer.sent / 2);
      assert.equal(peer.tally.valuesResults, peer.sent / 2);
      peer.destroy();
    }
  });

  it("a peer that never drains is cut off after --send-timeout, with a log line, and the server goes on serving", { timeout: 60_000 }, async () => {
    ready();
    const { cli, port } = await startServer(["--send-timeout", "1s", "--max-unsent-bytes", "64K"]);
    const peer = await Peer.open(port);
    const one = getRequest(1, "/kb");
    await flood(peer, (n) => requestBatch(one, 1 + n * 64, 64), 64, MAX_REQUESTS);
    await waitFor("the server to close the connection", () => peer.closed, 10_000);
    await waitFor("the log line", () => /sendTimeout/.test(cli.stderr()), 5000);
    assert.match(cli.stderr(), /127\.0\.0\.1:\d+: \d+ bytes of output unread for sendTimeout \(1000 ms\): closing/);
    // Another web server connection is served as before.
    const fresh = await Peer.open(port);
    fresh.read();
    fresh.connection.write([getRequest(1)]);
    await waitFor("a fresh request's answer", () => fresh.tally.ends === 1, 5000);
    assert.equal(fresh.tally.badEnds, 0);
    fresh.destroy();
  });
});
