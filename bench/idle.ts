/**
 * Idle kept connections (issue #12): what does an app pay for each FastCGI connection a web server
 * keeps open (FCGI_KEEP_CONN) without using it, and does a fresh request stay fast meanwhile?
 *
 * Per contender, on a Unix socket: the app starts and serves a warm-up request; its VmRSS is read;
 * then `--connections` connections (default 10 000) each send one /hello request with KEEP_CONN,
 * read the whole answer, and stay open. Once all are open (and 2 s later) VmRSS is read again, and
 * 20 fresh requests, each on a new connection, are timed; VmRSS is read a third time once the
 * connections have been idle for `--idle-wait` seconds (default 45: the runtimes' collectors shrink
 * what the fill grew only after some idleness, V8's memory reducer after about 30 s); then the
 * idle connections are checked to be still open, and closed. Contenders: fcgi serve on Node, Deno and Bun (bench/_apps.ts'
 * app, with --max-connections and --idle-timeout raised so they may stay), and Go's
 * net/http/fcgi (bench/go). PHP-FPM cannot take part: each of its processes serves one connection
 * at a time, so it holds only as many idle connections as it has processes.
 *
 * ```sh
 * node scripts/run-ts.mjs bench/idle.ts                                   # all, 10 000 connections
 * node scripts/run-ts.mjs bench/idle.ts --connections 2000 --only fcgi-deno --idle-wait 0
 * ```
 * Needs go on PATH for the go contender. Linux only (reads /proc). Loopback only.
 * @module
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { RecordType, Role } from "../src/protocol/constants.ts";
import { repoRoot } from "../test/_support/env.ts";
import { canConnect, findBinary, makeTempDir, removeDir, startProcess, type Service } from "../test/interop/_servers.ts";
import { concat, pairs, record, stream } from "../test/oracle/build.ts";
import { FCGI_APP, compileTo, procStatus, runtimeBinaries, serveCommand } from "./_apps.ts";
import { median, option, version } from "./_wrk.ts";

const CONNECTIONS = Number(option("connections", "10000"));
const ONLY = option("only", "").split(",").filter(Boolean);
const IDLE_WAIT_S = Number(option("idle-wait", "45"));
/** Connections opened at once while filling up (each sends its request and waits for the answer). */
const BATCH = 100;
const FRESH_REQUESTS = 20;
const TIMEOUT_MS = 10_000;

/** One /hello request with KEEP_CONN: BEGIN_REQUEST, PARAMS, the empty PARAMS, the empty STDIN. */
const REQUEST = concat([
  record(RecordType.BEGIN_REQUEST, 1, Uint8Array.of(0, Role.RESPONDER, 1, 0, 0, 0, 0, 0)),
  stream(RecordType.PARAMS, 1, pairs([["REQUEST_METHOD", "GET"], ["SCRIPT_NAME", "/hello"], ["REQUEST_URI", "/hello"], ["QUERY_STRING", ""], ["SERVER_PROTOCOL", "HTTP/1.1"], ["GATEWAY_INTERFACE", "CGI/1.1"], ["SERVER_NAME", "localhost"], ["SERVER_PORT", "80"], ["REMOTE_ADDR", "127.0.0.1"], ["REMOTE_PORT", "40000"], ["HTTP_HOST", "localhost"]])),
  record(RecordType.PARAMS, 1),
  record(RecordType.STDIN, 1),
]);

/** Resolves once `socket` has received a whole END_REQUEST record for request 1, with "Hello, World!" before it. */
function answer(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // Walk the records: END_REQUEST (type 3) ends the request.
      for (let at = 0; at + 8 <= received.length;) {
        const length = received.readUInt16BE(at + 4) + received[at + 6]!;
        if (at + 8 + length > received.length) break;
        if (received[at + 1] === RecordType.END_REQUEST) {
          return done(received.includes("Hello, World!") ? undefined : new Error("the answer was not Hello, World!"));
        }
        at += 8 + length;
      }
    };
    const onClose = () => done(new Error("closed before END_REQUEST"));
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** Opens a connection to `path`, sends the request, waits for the answer; the connection stays open. */
function openAndAsk(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    socket.once("error", reject);
    socket.once("connect", () => {
      const answered = answer(socket);
      socket.write(REQUEST);
      answered.then(() => resolve(socket), (error) => {
        socket.destroy();
        reject(error);
      });
    });
  });
}

interface Contender {
  name: string;
  start(socket: string): [string, string[]];
}

interface Result {
  name: string;
  held: number;
  before: number;
  after: number;
  /** VmRSS once the connections have been idle for IDLE_WAIT_S (NaN with --idle-wait 0). */
  afterIdle: number;
  freshMs: number;
  freshMaxMs: number;
  stillOpen: number;
}

async function measure(contender: Contender, dir: string): Promise<Result> {
  const socket = join(dir, `${contender.name}.sock`);
  const [command, args] = contender.start(socket);
  const app: Service = await startProcess(contender.name, command, args, () => canConnect(socket));
  const sockets: Socket[] = [];
  try {
    (await openAndAsk(socket)).destroy();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = procStatus(app.pid, "VmRSS") / 1024;
    while (sockets.length < CONNECTIONS) {
      const batch = Math.min(BATCH, CONNECTIONS - sockets.length);
      sockets.push(...await Promise.all(Array.from({ length: batch }, () => openAndAsk(socket))));
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = procStatus(app.pid, "VmRSS") / 1024;
    const times: number[] = [];
    for (let i = 0; i < FRESH_REQUESTS; i++) {
      const started = performance.now();
      const fresh = await openAndAsk(socket);
      times.push(performance.now() - started);
      fresh.destroy();
    }
    let afterIdle = NaN;
    if (IDLE_WAIT_S > 0) {
      await new Promise((resolve) => setTimeout(resolve, IDLE_WAIT_S * 1000));
      afterIdle = procStatus(app.pid, "VmRSS") / 1024;
    }
    const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
    return { name: contender.name, held: sockets.length, before, after, afterIdle, freshMs: median(times), freshMaxMs: Math.max(...times), stillOpen };
  } finally {
    for (const s of sockets) s.destroy();
    await app.stop();
  }
}

async function main(): Promise<void> {
  const dir = makeTempDir("fcgi-bench-idle-");
  try {
    const { node, deno, bun } = runtimeBinaries;
    compileTo(join(dir, "dist"));
    const app = join(dir, "app.mjs");
    writeFileSync(app, FCGI_APP);
    const keep = ["--max-connections", String(CONNECTIONS + 100), "--idle-timeout", "60m"];
    const all: Contender[] = [
      ...(["node", "deno", "bun"] as const).map((r) => ({ name: `fcgi-${r}`, start: (s: string) => serveCommand(r, join(dir, "dist"), app, s, keep) })),
      // Deno's node:net sockets, beside its own (Deno.listen): they hold less per connection.
      { name: "fcgi-deno-node-net", start: (s: string) => serveCommand("deno", join(dir, "dist"), app, s, [...keep, "--runtime", "node"]) },
      { name: "go", start: (s: string) => [join(dir, "go-fcgi"), ["-listen", `unix:${s}`]] },
    ];
    const contenders = ONLY.length ? all.filter((c) => ONLY.includes(c.name)) : all;
    if (contenders.some((c) => c.name === "go")) {
      if (!findBinary("go")) throw new Error("bench/idle.ts needs go on PATH for the go contender (or --only fcgi-node,fcgi-deno,fcgi-bun)");
      const built = spawnSync("go", ["build", "-o", join(dir, "go-fcgi"), join(repoRoot, "bench", "go", "main.go")], {
        env: { ...process.env, GO111MODULE: "off", GOPROXY: "off", GOFLAGS: "", CGO_ENABLED: "0" },
        encoding: "utf8",
      });
      if (built.status !== 0) throw new Error(`go build failed: ${built.stderr}`);
    }
    console.log(`idle: ${CONNECTIONS} kept connections per contender; load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const results: Result[] = [];
    for (const contender of contenders) {
      const result = await measure(contender, dir);
      results.push(result);
      console.log(`  ${result.name}: RSS ${result.before.toFixed(1)} → ${result.after.toFixed(1)} MiB` +
        (IDLE_WAIT_S > 0 ? ` (${result.afterIdle.toFixed(1)} MiB after ${IDLE_WAIT_S} s idle)` : "") + `, fresh request ${result.freshMs.toFixed(2)} ms`);
    }
    const idle = IDLE_WAIT_S > 0;
    console.log(`\n| contender | connections held | still open after | RSS before | RSS with them open | growth | per connection |` +
      (idle ? ` growth after ${IDLE_WAIT_S} s idle | per connection then |` : "") + ` fresh request, median (max of ${FRESH_REQUESTS}) |`);
    console.log(`|---|---:|---:|---:|---:|---:|---:|${idle ? "---:|---:|" : ""}---:|`);
    const perConnection = (growth: number, held: number) => `${(growth * 1024 / held).toFixed(1)} KiB`;
    for (const r of results) {
      const growth = r.after - r.before;
      const idleGrowth = r.afterIdle - r.before;
      console.log(`| ${r.name} | ${r.held.toLocaleString("en-US")} | ${r.stillOpen.toLocaleString("en-US")} | ${r.before.toFixed(1)} MiB | ${r.after.toFixed(1)} MiB | ` +
        `${growth.toFixed(1)} MiB | ${perConnection(growth, r.held)} |` + (idle ? ` ${idleGrowth.toFixed(1)} MiB | ${perConnection(idleGrowth, r.held)} |` : "") +
        ` ${r.freshMs.toFixed(2)} ms (${r.freshMaxMs.toFixed(2)}) |`);
    }
    console.log(`\nversions: node ${version(node, ["--version"])}, ${version(deno, ["--version"]).split("\n")[0]}, bun ${version(bun, ["--version"])}` +
      (contenders.some((c) => c.name === "go") ? `, ${version("go", ["version"])}` : "") + `; load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  } finally {
    removeDir(dir);
  }
}

await main();
