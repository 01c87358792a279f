// The socket adapters (src/runtime/): every adapter this runtime can run (its native one, plus the
// node:net one on Deno and Bun) echoes over TCP IPv4, IPv6 and Unix sockets, pushes back when its
// buffers are full, really stops reading when paused, reports onClose exactly once, replaces stale
// Unix socket files but not live ones, and fails with errors that name the address.
import { requirePresent, skipUnless, test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentRuntimeName, detectRuntime, getRuntime } from "../src/runtime/index.ts";
import type { Runtime } from "../src/runtime/types.ts";
import type { Connection, ConnectionHandlers, Listener, SocketAddress } from "../src/socket.ts";
import { runtimeName } from "./_support/env.ts";
import { concatBytes } from "../src/bytes.ts";

const ADAPTERS: ReadonlyArray<Runtime["name"]> = runtimeName === "node" ? ["node"] : [runtimeName, "node"];
const LOOPBACK: SocketAddress = { transport: "tcp", hostname: "127.0.0.1", port: 0 };
const WAIT = 20_000;

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Whether this machine can listen on the IPv6 loopback (some containers have no ::1). */
const hasIPv6Loopback = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once("error", () => resolve(false));
  probe.listen(0, "::1", () => probe.close(() => resolve(true)));
});
const hasPython = spawnSync("python3", ["-c", "pass"]).status === 0;
const NO_IPV6 = "this machine has no IPv6 loopback";
const NO_PYTHON = "python3 is needed to leave a stale socket file";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Bytes that differ at every offset within 256 and drift every 8 KiB, so reordering or reuse shows. */
function pattern(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + (i >>> 13) + seed) & 0xff;
  return out;
}

const encode = (text: string) => new TextEncoder().encode(text);

/** Handlers that record what a connection reports, with bounded waits on it. */
class Peer implements ConnectionHandlers {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;
  drains = 0;
  readonly closes: Array<Error | undefined> = [];
  readonly closed = deferred<Error | undefined>();
  /** Called after each chunk is recorded. */
  hook: ((chunk: Uint8Array) => void) | undefined;
  /** Called on each drain. */
  drainHook: (() => void) | undefined;
  #waiters: Array<{ bytes: number; resolve: () => void }> = [];
  #drainWaiter: (() => void) | undefined;

  readonly keep: boolean;

  constructor(keep = true) {
    this.keep = keep;
  }

  onData(chunk: Uint8Array): void {
    assert.ok(chunk instanceof Uint8Array);
    if (this.keep) this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    this.hook?.(chunk);
    this.#waiters = this.#waiters.filter((w) => (this.bytes >= w.bytes ? (w.resolve(), false) : true));
  }

  onDrain(): void {
    this.drains++;
    this.drainHook?.();
    const waiter = this.#drainWaiter;
    this.#drainWaiter = undefined;
    waiter?.();
  }

  onClose(error?: Error): void {
    this.closes.push(error);
    this.closed.resolve(error);
  }

  received(bytes: number, what = `${bytes} bytes`): Promise<void> {
    if (this.bytes >= bytes) return Promise.resolve();
    const wait = deferred();
    this.#waiters.push({ bytes, resolve: wait.resolve });
    return deadline(wait.promise, WAIT, `${what} (got ${this.bytes})`);
  }

  nextDrain(): Promise<void> {
    const wait = deferred();
    this.#drainWaiter = wait.resolve;
    return deadline(wait.promise, WAIT, "onDrain");
  }

  whenClosed(): Promise<Error | undefined> {
    return deadline(this.closed.promise, WAIT, "onClose");
  }

  text(): string {
    return new TextDecoder().decode(concatBytes(this.chunks));
  }
}

/** Compares held chunks with the expected bytes without one big copy. */
function assertChunksEqual(chunks: readonly Uint8Array[], expected: Uint8Array): void {
  let at = 0;
  for (const chunk of chunks) {
    const want = expected.subarray(at, at + chunk.byteLength);
    if (!Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).equals(want)) {
      for (let i = 0; i < chunk.byteLength; i++) assert.equal(chunk[i], want[i], `byte ${at + i} differs`);
    }
    at += chunk.byteLength;
  }
  assert.equal(at, expected.byteLength, "byte count");
}

/** A listener whose accepted connections echo (pausing while their writes are over the mark). */
async function echoServer(runtime: Runtime, address: SocketAddress) {
  const peers: Peer[] = [];
  const connections: Connection[] = [];
  const listener = await runtime.listen(address, (connection) => {
    const peer = new Peer();
    peer.hook = (chunk) => {
      if (!connection.write([chunk])) connection.pause();
    };
    peer.drainHook = () => connection.resume();
    peers.push(peer);
    connections.push(connection);
    return peer;
  });
  return { listener, peers, connections };
}

/** A listener that hands each accepted connection to the test. */
async function acceptingServer(runtime: Runtime, address: SocketAddress, onAccept?: (connection: Connection, peer: Peer) => void) {
  const accepted: Array<{ connection: Connection; peer: Peer }> = [];
  const waiters: Array<() => void> = [];
  const listener = await runtime.listen(address, (connection) => {
    const peer = new Peer();
    onAccept?.(connection, peer);
    accepted.push({ connection, peer });
    waiters.shift()?.();
    return peer;
  });
  let taken = 0;
  const next = async (): Promise<{ connection: Connection; peer: Peer }> => {
    const index = taken++;
    while (accepted.length <= index) {
      const wait = deferred();
      waiters.push(wait.resolve);
      await deadline(wait.promise, WAIT, "a connection to be accepted");
    }
    return accepted[index]!;
  };
  return { listener, accepted, next };
}

async function cleanup(listener: Listener | undefined, ...connections: Array<Connection | undefined>): Promise<void> {
  for (const c of connections) c?.destroy();
  await listener?.close();
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "fcgi-rt-"));
}

/** Leaves a Unix socket file nobody listens on (what a crashed server leaves behind). */
function staleSocketFile(path: string): boolean {
  const r = spawnSync("python3", ["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", path], { encoding: "utf8" });
  return r.status === 0 && existsSync(path);
}

async function echoRoundTrip(runtime: Runtime, client: Runtime, address: SocketAddress) {
  const server = await echoServer(runtime, address);
  const peer = new Peer();
  let connection: Connection | undefined;
  try {
    connection = await client.connect(server.listener.address, peer);
    assert.equal(connection.write([encode("hello, "), encode("Fast"), encode("CGI")]), true);
    await peer.received(14, "the echo");
    connection.write([encode("!")]);
    await peer.received(15, "the second echo");
    assert.equal(peer.text(), "hello, FastCGI!");
    return { server, connection, peer };
  } catch (error) {
    await cleanup(server.listener, connection);
    throw error;
  }
}

test("detectRuntime picks this runtime's native adapter; getRuntime forces one, and refuses one this runtime cannot run", async () => {
  assert.equal(currentRuntimeName(), runtimeName);
  assert.equal((await detectRuntime()).name, runtimeName);
  assert.equal((await getRuntime("node")).name, "node");
  assert.equal((await getRuntime(runtimeName)).name, runtimeName);
  for (const other of ["deno", "bun"] as const) {
    if (other === runtimeName) continue;
    await assert.rejects(getRuntime(other), new RegExp(`needs ${other === "deno" ? "Deno" : "Bun"}; this is ${runtimeName}`));
  }
  await assert.rejects(getRuntime("java" as Runtime["name"]), (e: unknown) => e instanceof TypeError && /unknown runtime "java"/.test(e.message));
});

for (const name of ADAPTERS) {
  const get = () => getRuntime(name);

  test(`${name}: bytes echo over TCP IPv4, and both ends report each other's address and port`, async () => {
    const runtime = await get();
    const { server, connection, peer } = await echoRoundTrip(runtime, runtime, LOOPBACK);
    try {
      const address = server.listener.address;
      assert.equal(address.transport, "tcp");
      if (address.transport !== "tcp") return;
      assert.equal(address.hostname, "127.0.0.1");
      assert.ok(address.port > 0, "the real port replaces 0");
      const accepted = server.connections[0]!;
      assert.match(accepted.remoteAddress, /^(::ffff:)?127\.0\.0\.1$/);
      assert.equal(accepted.remotePort, connection.localPort);
      assert.equal(accepted.localPort, address.port);
      assert.equal(connection.remoteAddress, "127.0.0.1");
      assert.equal(connection.remotePort, address.port);
      assert.equal(connection.localAddress, "127.0.0.1");
      assert.ok(connection.localPort > 0);
      assert.equal(peer.closes.length, 0);
    } finally {
      await cleanup(server.listener, connection);
    }
  });

  test(`${name}: bytes echo over TCP IPv6 loopback [::1]`, { skip: skipUnless(hasIPv6Loopback, NO_IPV6) }, async () => {
    requirePresent(hasIPv6Loopback, NO_IPV6);
    const runtime = await get();
    const result = await echoRoundTrip(runtime, runtime, { transport: "tcp", hostname: "::1", port: 0 });
    const { server, connection } = result;
    try {
      const address = server.listener.address;
      assert.ok(address.transport === "tcp" && address.hostname === "::1" && address.port > 0, JSON.stringify(address));
      assert.equal(server.connections[0]!.remoteAddress, "::1");
      assert.equal(connection.remoteAddress, "::1");
    } finally {
      await cleanup(server.listener, connection);
    }
  });

  test(`${name}: bytes echo over a Unix socket; the peer address is "" and the local address is the path`, async () => {
    const runtime = await get();
    const dir = tempDir();
    const path = join(dir, "echo.sock");
    const { server, connection } = await echoRoundTrip(runtime, runtime, { transport: "unix", path });
    try {
      assert.deepEqual(server.listener.address, { transport: "unix", path });
      const accepted = server.connections[0]!;
      assert.equal(accepted.remoteAddress, "");
      assert.equal(accepted.remotePort, 0);
      assert.equal(accepted.localAddress, path);
      assert.equal(accepted.localPort, 0);
      assert.equal(connection.remoteAddress, "");
      assert.equal(connection.localAddress, path);
    } finally {
      await cleanup(server.listener, connection);
      assert.equal(existsSync(path), false, "closing the listener removes its socket file");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  if (name !== "node") {
    test(`${name}: the native adapter and the node:net adapter talk to each other both ways`, async () => {
      const native = await get();
      const node = await getRuntime("node");
      for (const [server, client] of [[native, node], [node, native]] as const) {
        const { server: s, connection } = await echoRoundTrip(server, client, LOOPBACK);
        await cleanup(s.listener, connection);
      }
    });
  }

  test(`${name}: fifty connections at once each get back exactly their own bytes; empty writes send nothing`, async () => {
    const runtime = await get();
    const server = await echoServer(runtime, LOOPBACK);
    const clients: Array<{ connection: Connection; peer: Peer; data: Uint8Array }> = [];
    try {
      for (let i = 0; i < 50; i++) {
        const peer = new Peer();
        const connection = await runtime.connect(server.listener.address, peer);
        clients.push({ connection, peer, data: pattern(10_000 + i * 997, i) });
      }
      for (const { connection, data } of clients) {
        assert.equal(connection.write([]), true);
        assert.equal(connection.write([new Uint8Array(0)]), true);
        connection.write([data.subarray(0, 5000), new Uint8Array(0), data.subarray(5000)]);
      }
      await Promise.all(clients.map(({ peer, data }) => peer.received(data.byteLength)));
      await sleep(50);
      for (const { peer, data } of clients) assertChunksEqual(peer.chunks, data);
    } finally {
      await cleanup(server.listener, ...clients.map((c) => c.connection));
    }
  });

  test(`${name}: 32 MiB each way at once in multi-chunk writes: write returns false, onDrain follows, every byte arrives in order in chunks never reused`, async () => {
    const runtime = await get();
    const size = 32 << 20;
    const toServer = pattern(size, 1);
    const toClient = pattern(size, 2);
    const { listener, next } = await acceptingServer(runtime, LOOPBACK);
    const clientPeer = new Peer();
    let client: Connection | undefined;
    let server: Connection | undefined;
    // Writes shaped like FastCGI output: an 8-byte header, up to 65535 bytes of content, padding.
    const pump = async (connection: Connection, peer: Peer, data: Uint8Array) => {
      let falses = 0;
      for (let at = 0; at < data.byteLength; ) {
        const header = data.subarray(at, at + 8);
        const content = data.subarray(at + 8, Math.min(at + 8 + 65535, data.byteLength));
        const padding = data.subarray(at + 8 + content.byteLength, Math.min(at + 8 + content.byteLength + 1, data.byteLength));
        at += header.byteLength + content.byteLength + padding.byteLength;
        if (!connection.write([header, content, padding])) {
          falses++;
          await peer.nextDrain();
        }
      }
      return falses;
    };
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const accepted = await next();
      server = accepted.connection;
      const [clientFalses, serverFalses] = await Promise.all([
        pump(client, clientPeer, toServer),
        pump(server, accepted.peer, toClient),
        accepted.peer.received(size, "32 MiB at the server"),
        clientPeer.received(size, "32 MiB at the client"),
      ]);
      assert.ok(clientFalses > 0, "the client's write returned false at least once");
      assert.ok(serverFalses > 0, "the server's write returned false at least once");
      assert.equal(clientPeer.drains, clientFalses);
      assert.equal(accepted.peer.drains, serverFalses);
      assertChunksEqual(accepted.peer.chunks, toServer);
      assertChunksEqual(clientPeer.chunks, toClient);
    } finally {
      await cleanup(listener, client, server);
    }
  });

  test(`${name}: a connection paused on accept delivers nothing until resume, then everything in order; a pause inside onData stops delivery at once`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK, (connection) => connection.pause());
    let client: Connection | undefined;
    let server: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, new Peer());
      const { connection, peer } = await next();
      server = connection;
      const first = pattern(1 << 20, 3);
      client.write([first]);
      await sleep(300);
      assert.equal(peer.bytes, 0, "no onData while paused");
      connection.resume();
      await peer.received(first.byteLength);

      const second = pattern(4 << 20, 4);
      let pausedAt = -1;
      peer.hook = () => {
        if (pausedAt < 0) {
          pausedAt = peer.bytes;
          connection.pause();
        }
      };
      client.write([second]);
      await peer.received(first.byteLength + 1, "the first chunk after resume");
      await sleep(300);
      assert.equal(peer.bytes, pausedAt, "no onData after pause() inside onData");
      assert.ok(pausedAt < first.byteLength + second.byteLength);
      peer.hook = undefined;
      connection.resume();
      await peer.received(first.byteLength + second.byteLength);
      assertChunksEqual(peer.chunks, concatBytes([first, second]));
    } finally {
      await cleanup(listener, client, server);
    }
  });

  test(`${name}: a paused receiver pushes back on the sender: its onDrain waits until the receiver resumes`, async () => {
    const runtime = await get();
    // More than the kernel can buffer on both ends (loopback buffers may grow to tens of MiB).
    const size = 48 << 20;
    const { listener, next } = await acceptingServer(runtime, LOOPBACK, (connection) => connection.pause());
    const clientPeer = new Peer();
    let client: Connection | undefined;
    let server: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { connection, peer } = await next();
      server = connection;
      const drained = clientPeer.nextDrain();
      assert.equal(client.write([new Uint8Array(size)]), false, "48 MiB is over the mark");
      await sleep(500);
      assert.equal(clientPeer.drains, 0, "no drain while the receiver is paused");
      assert.equal(peer.bytes, 0);
      connection.resume();
      await drained;
      await peer.received(size);
    } finally {
      await cleanup(listener, client, server);
    }
  });

  test(`${name}: ending flushes what was written first; both ends report onClose once, without error`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK);
    const clientPeer = new Peer();
    let client: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { peer } = await next();
      const data = pattern(4 << 20, 5);
      client.write([data]);
      client.end();
      assert.equal(client.write([encode("late")]), false, "a write after end() is dropped");
      assert.equal(await peer.whenClosed(), undefined);
      assert.equal(await clientPeer.whenClosed(), undefined);
      assertChunksEqual(peer.chunks, data);
      await sleep(100);
      assert.equal(peer.closes.length, 1);
      assert.equal(clientPeer.closes.length, 1);
    } finally {
      await cleanup(listener, client);
    }
  });

  test(`${name}: the server ending a connection closes the client too, after the client got every byte`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK);
    const clientPeer = new Peer();
    let client: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { connection, peer } = await next();
      const data = pattern(2 << 20, 6);
      connection.write([data.subarray(0, 100), data.subarray(100)]);
      connection.end();
      assert.equal(await clientPeer.whenClosed(), undefined);
      assert.equal(await peer.whenClosed(), undefined);
      assertChunksEqual(clientPeer.chunks, data);
      await sleep(100);
      assert.deepEqual([peer.closes.length, clientPeer.closes.length], [1, 1]);
    } finally {
      await cleanup(listener, client);
    }
  });

  test(`${name}: a peer that resets the connection mid-transfer makes onClose report an error, once on each side`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK, (connection) => connection.pause());
    const clientPeer = new Peer();
    let client: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { connection, peer } = await next();
      client.write([new Uint8Array(48 << 20)]);
      await sleep(200);
      // Closing with unread bytes in the kernel buffer makes the kernel answer with RST.
      connection.destroy();
      const error = await clientPeer.whenClosed();
      assert.ok(error instanceof Error, "the client's onClose carries an error");
      assert.match(String((error as { code?: string }).code ?? error.message), /ECONNRESET|EPIPE|reset|broken pipe/i);
      assert.equal(await peer.whenClosed(), undefined);
      await sleep(100);
      assert.deepEqual([peer.closes.length, clientPeer.closes.length], [1, 1]);
    } finally {
      await cleanup(listener, client);
    }
  });

  test(`${name}: destroy(error) hands that error to onClose once, and the peer sees the connection close`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK);
    const clientPeer = new Peer();
    let client: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { connection, peer } = await next();
      const reason = new Error("paramsTimeout");
      connection.destroy(reason);
      connection.destroy(new Error("again"));
      assert.equal(connection.write([encode("x")]), false, "a write after destroy() is dropped");
      assert.equal(await peer.whenClosed(), reason);
      await clientPeer.whenClosed();
      await sleep(100);
      assert.deepEqual([peer.closes.length, clientPeer.closes.length], [1, 1]);
    } finally {
      await cleanup(listener, client);
    }
  });

  test(`${name}: a connection destroyed inside accept reports onClose once to the handlers accept returned`, async () => {
    const runtime = await get();
    const { listener, next } = await acceptingServer(runtime, LOOPBACK, (connection) => connection.destroy());
    const clientPeer = new Peer();
    let client: Connection | undefined;
    try {
      client = await runtime.connect(listener.address, clientPeer);
      const { peer } = await next();
      assert.equal(await peer.whenClosed(), undefined);
      await clientPeer.whenClosed();
      await sleep(100);
      assert.equal(peer.closes.length, 1);
      assert.equal(peer.bytes, 0);
    } finally {
      await cleanup(listener, client);
    }
  });

  test(`${name}: an accept callback or onData handler that throws closes that connection only`, async () => {
    const runtime = await get();
    let throwInAccept = true;
    const peers: Peer[] = [];
    const listener = await runtime.listen(LOOPBACK, () => {
      if (throwInAccept) {
        throwInAccept = false;
        throw new Error("accept bug");
      }
      const peer = new Peer();
      peer.hook = () => {
        throw new Error("onData bug");
      };
      peers.push(peer);
      return peer;
    });
    const first = new Peer();
    const second = new Peer();
    let a: Connection | undefined;
    let b: Connection | undefined;
    try {
      a = await runtime.connect(listener.address, first);
      await first.whenClosed();
      b = await runtime.connect(listener.address, second);
      b.write([encode("boom")]);
      await second.whenClosed();
      await deadline((async () => { while (peers[0]?.closes.length !== 1) await sleep(10); })(), WAIT, "the throwing connection's onClose");
      assert.match(String(peers[0]!.closes[0]?.message), /onData bug/);
      // The listener still serves.
      const { server, connection } = await echoRoundTrip(runtime, runtime, LOOPBACK);
      await cleanup(server.listener, connection);
    } finally {
      await cleanup(listener, a, b);
    }
  });

  test(`${name}: closing the listener refuses new connections and leaves established ones working`, async () => {
    const runtime = await get();
    const { server, connection, peer } = await echoRoundTrip(runtime, runtime, LOOPBACK);
    try {
      await server.listener.close();
      await server.listener.close();
      await assert.rejects(runtime.connect(server.listener.address, new Peer()), (e: unknown) => (e as { code?: string }).code === "ECONNREFUSED");
      connection.write([encode(" still here")]);
      await peer.received(26);
      assert.equal(peer.text(), "hello, FastCGI! still here");
    } finally {
      await cleanup(undefined, connection);
    }
  });

  test(`${name}: connecting where nothing listens rejects with an error naming the code and the address`, async () => {
    const runtime = await get();
    const probe = await runtime.listen(LOOPBACK, () => new Peer());
    const address = probe.address;
    await probe.close();
    assert.equal(address.transport, "tcp");
    const port = address.transport === "tcp" ? address.port : 0;
    await assert.rejects(deadline(runtime.connect(address, new Peer()), WAIT, "connect"), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.equal((e as { code?: string }).code, "ECONNREFUSED");
      assert.ok(e.message.includes(`127.0.0.1:${port}`), e.message);
      assert.match(e.message, /refused/);
      return true;
    });
    const dir = tempDir();
    try {
      const path = join(dir, "nobody.sock");
      await assert.rejects(runtime.connect({ transport: "unix", path }, new Peer()), (e: unknown) => {
        assert.equal((e as { code?: string }).code, "ENOENT");
        assert.ok((e as Error).message.includes(path));
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await assert.rejects(runtime.connect({ transport: "fd", fd: 0 }, new Peer()), TypeError);
  });

  test(`${name}: listening on a TCP port already taken rejects with EADDRINUSE naming the address`, async () => {
    const runtime = await get();
    const first = await runtime.listen(LOOPBACK, () => new Peer());
    try {
      await assert.rejects(runtime.listen(first.address, () => new Peer()), (e: unknown) => {
        assert.equal((e as { code?: string }).code, "EADDRINUSE");
        assert.match((e as Error).message, /EADDRINUSE 127\.0\.0\.1:\d+: address already in use/);
        return true;
      });
    } finally {
      await first.close();
    }
  });

  test(`${name}: a stale Unix socket file (nobody listening) is replaced`, { skip: skipUnless(hasPython, NO_PYTHON) }, async () => {
    requirePresent(hasPython, NO_PYTHON);
    const runtime = await get();
    const dir = tempDir();
    const path = join(dir, "stale.sock");
    try {
      assert.ok(staleSocketFile(path), "python3 left no socket file");
      assert.ok(statSync(path).isSocket());
      const { server, connection } = await echoRoundTrip(runtime, runtime, { transport: "unix", path });
      await cleanup(server.listener, connection);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: a live Unix socket is not taken over, and a file that is not a socket is not removed`, async () => {
    const runtime = await get();
    const dir = tempDir();
    const path = join(dir, "live.sock");
    const { server, connection } = await echoRoundTrip(runtime, runtime, { transport: "unix", path });
    try {
      await assert.rejects(runtime.listen({ transport: "unix", path }, () => new Peer()), (e: unknown) => {
        assert.equal((e as { code?: string }).code, "EADDRINUSE");
        assert.match((e as Error).message, /another process accepts connections/);
        assert.ok((e as Error).message.includes(path));
        return true;
      });
      // The first listener still owns the path.
      const again = await echoRoundTrip(runtime, runtime, { transport: "unix", path }).catch((e: unknown) => e);
      assert.ok(again instanceof Error, "still refused");
      const peer = new Peer();
      const second = await runtime.connect({ transport: "unix", path }, peer);
      second.write([encode("ping")]);
      await peer.received(4);
      second.destroy();

      const file = join(dir, "not-a-socket");
      writeFileSync(file, "precious");
      await assert.rejects(runtime.listen({ transport: "unix", path: file }, () => new Peer()), /exists and is not a socket/);
      assert.equal(readFileSync(file, "utf8"), "precious");
    } finally {
      await cleanup(server.listener, connection);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: the mode option sets the Unix socket file's permissions`, async () => {
    const runtime = await get();
    const dir = tempDir();
    try {
      for (const mode of [0o600, 0o660, 0o666]) {
        const path = join(dir, `mode-${mode.toString(8)}.sock`);
        const listener = await runtime.listen({ transport: "unix", path }, () => new Peer(), { mode });
        try {
          assert.equal(statSync(path).mode & 0o777, mode, `mode ${mode.toString(8)}`);
        } finally {
          await listener.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
