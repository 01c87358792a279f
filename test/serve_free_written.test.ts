// A large byte body is the Response's own copy, made into a store of the body pool; fcgi gives the
// store back to the pool (or, for bytes the pool does not keep, to the connection's freeWritten:
// Bun's adapter detaches them) as soon as the socket has written it. Given back too early, the
// bytes a socket still holds would be overwritten by the next response, or gone: these tests drive
// a connection whose "kernel" takes nothing until told, and check what reaches the peer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../src/app/serve.ts";
import { getRuntime } from "../src/runtime/index.ts";
import type { Runtime } from "../src/runtime/types.ts";
import type { Connection, ConnectionHandlers } from "../src/socket.ts";
import { RecordType, Role } from "../src/protocol/constants.ts";
import { concat, pairs, record, stream } from "./oracle/build.ts";
import { OracleRecordDecoder } from "./oracle/decoder.ts";
import { httpParams, parseCgi } from "./_support/records.ts";

const BODY = 256 * 1024;

/** Bytes i of body `n`: distinct per body, so a body sent from another's memory shows. */
function pattern(n: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: BODY }, (_, i) => (i * 7 + n * 31) & 255);
}

/**
 * A connection whose kernel takes nothing until `take()`: what `write()` gets stays held (and
 * counted in bufferedAmount), as the chunks themselves, so a chunk freed early shows as empty.
 */
class HeldConnection implements Connection {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 40000;
  readonly localAddress = "127.0.0.1";
  readonly localPort = 9000;
  handlers: ConnectionHandlers | undefined;
  /** The chunks written that were views of a body-sized buffer (a body, not a header or merge). */
  readonly bodyChunks: Uint8Array[] = [];
  /** What the peer received: copies made when the kernel took the bytes. */
  readonly received: Uint8Array[] = [];
  /** The buffers freeWritten was given, in order. */
  readonly freed: ArrayBufferLike[] = [];
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  takesAtOnce = false;
  freeWritten?: (buffer: ArrayBufferLike) => void;

  constructor(canFree: boolean) {
    if (canFree) {
      this.freeWritten = (buffer) => {
        this.freed.push(buffer);
        (buffer as { transfer?: (length: number) => ArrayBuffer }).transfer?.(0);
      };
    }
  }

  write(chunks: readonly Uint8Array[]): boolean {
    for (const chunk of chunks) {
      if (chunk.buffer.byteLength >= BODY) this.bodyChunks.push(chunk);
      if (this.takesAtOnce) this.received.push(chunk.slice());
      else {
        this.#held.push(chunk);
        this.#heldBytes += chunk.byteLength;
      }
    }
    return this.#heldBytes === 0;
  }

  get bufferedAmount(): number {
    return this.#heldBytes;
  }

  /** The kernel takes everything held; then the drain event. */
  take(): void {
    for (const chunk of this.#held) this.received.push(chunk.slice());
    this.#held = [];
    this.#heldBytes = 0;
    this.handlers?.onDrain();
  }

  pause(): void {}
  resume(): void {}
  end(): void {
    this.destroy();
  }

  destroy(): void {
    const handlers = this.handlers;
    this.handlers = undefined;
    if (handlers) queueMicrotask(() => handlers.onClose());
  }
}

/** serve() on a runtime whose listener hands the test its accept function instead of a socket. */
async function serveOnHeldConnection(fetch: (request: Request) => Response | Promise<Response>, canFree = true): Promise<{ connection: HeldConnection; close(): Promise<void> }> {
  const real = await getRuntime("node");
  let accept: ((connection: Connection) => ConnectionHandlers) | undefined;
  const runtime: Runtime = {
    name: real.name,
    connect: real.connect,
    listen: async (address, onConnection) => {
      accept = onConnection;
      return { address, close: async () => {} };
    },
  };
  const server = await serve({ listen: "127.0.0.1:0", logger: null, runtime, fetch });
  const connection = new HeldConnection(canFree);
  connection.handlers = accept!(connection);
  return { connection, close: () => server.close() };
}

/** Sends requests first..last for /n on one connection, keeping it open. */
function sendRequests(connection: HeldConnection, first: number, last = first): void {
  const parts: Uint8Array[] = [];
  for (let id = first; id <= last; id++) {
    parts.push(record(RecordType.BEGIN_REQUEST, id, Uint8Array.of(0, Role.RESPONDER, 1, 0, 0, 0, 0, 0)));
    parts.push(stream(RecordType.PARAMS, id, pairs(Object.entries(httpParams(`/${id}`)))));
    parts.push(record(RecordType.PARAMS, id), record(RecordType.STDIN, id));
  }
  connection.handlers!.onData(concat(parts));
}

/** The STDOUT of each request, and which requests ended, from what the peer received. */
function answers(received: readonly Uint8Array[]): { stdout: Map<number, Uint8Array>; ended: Set<number> } {
  const pieces = new Map<number, Uint8Array[]>();
  const ended = new Set<number>();
  const decoder = new OracleRecordDecoder();
  decoder.decode(concat(received), (type, requestId, content) => {
    if (type === RecordType.STDOUT) pieces.set(requestId, [...(pieces.get(requestId) ?? []), content.slice()]);
    if (type === RecordType.END_REQUEST) ended.add(requestId);
  });
  return { stdout: new Map([...pieces].map(([id, parts]) => [id, concat(parts)])), ended };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** A handler answering /n with pattern(n), changing its own array after the Response copied it. */
function patternHandler(request: Request): Response {
  const n = Number(new URL(request.url).pathname.slice(1));
  const source = pattern(n);
  const response = new Response(source);
  // The Response copied them: what the handler does to its array afterwards must not show.
  source.fill(0);
  return response;
}

/** The distinct stores behind the body chunks written from index `from` on. */
function storesOf(chunks: readonly Uint8Array[], from = 0): Set<ArrayBufferLike> {
  return new Set(chunks.slice(from).map((chunk) => chunk.buffer));
}

test("bytes still held by the socket are never reused; once written their stores serve later responses, and every peer got its own bytes", { timeout: 10_000 }, async () => {
  const { connection, close } = await serveOnHeldConnection(patternHandler);
  try {
    sendRequests(connection, 1, 6);
    await settle();
    const bodyChunks = connection.bodyChunks;
    assert.equal(storesOf(bodyChunks).size, 6, `the bodies went out uncopied, each from a store of its own (${bodyChunks.length} chunks)`);
    // More responses while the kernel still holds the first six: none may take a held store.
    sendRequests(connection, 7, 12);
    await settle();
    assert.equal(storesOf(bodyChunks).size, 12, "a response was copied into a store the socket still held");
    for (const chunk of bodyChunks) assert.ok(chunk.byteLength > 0, "a body chunk the socket still held was freed");
    assert.equal(connection.freed.length, 0, "a pooled store went to freeWritten");

    connection.take();
    await settle();
    let { stdout, ended } = answers(connection.received);
    assert.equal(ended.size, 12);
    for (let n = 1; n <= 12; n++) assert.deepEqual(parseCgi(stdout.get(n)!).body, pattern(n), `request ${n} got another body's bytes, or freed ones`);

    // Written now: the next responses reuse those stores, one each, and still send their own bytes.
    const written = storesOf(bodyChunks);
    const before = bodyChunks.length;
    sendRequests(connection, 13, 18);
    await settle();
    const reused = storesOf(bodyChunks, before);
    assert.equal(reused.size, 6);
    for (const store of reused) assert.ok(written.has(store), "a written body's store was not reused");
    connection.take();
    await settle();
    ({ stdout, ended } = answers(connection.received));
    assert.equal(ended.size, 18);
    for (let n = 13; n <= 18; n++) assert.deepEqual(parseCgi(stdout.get(n)!).body, pattern(n), `request ${n} got another body's bytes`);
  } finally {
    await close();
  }
});

test("bytes the pool does not keep (a long text) go to freeWritten once written, not before", { timeout: 10_000 }, async () => {
  const text = "fcgi ".repeat(BODY / 4);
  const { connection, close } = await serveOnHeldConnection(() => new Response(text));
  try {
    sendRequests(connection, 1);
    await settle();
    const bodyChunks = connection.bodyChunks;
    assert.ok(bodyChunks.length > 0);
    assert.equal(connection.freed.length, 0, "bytes the socket still held went to freeWritten");
    connection.take();
    await settle();
    for (const chunk of bodyChunks) assert.ok(connection.freed.includes(chunk.buffer), "a written body was not handed to freeWritten");
    assert.equal(new TextDecoder().decode(parseCgi(answers(connection.received).stdout.get(1)!).body), text);
  } finally {
    await close();
  }
});

test("a Response whose bytes were sent cannot be sent again: the second request gets a 500, not a freed body", { timeout: 10_000 }, async () => {
  const shared = new Response(pattern(1));
  // A connection that frees nothing (Node's and Deno's): the second send must still be refused.
  const { connection, close } = await serveOnHeldConnection(() => shared, false);
  try {
    connection.takesAtOnce = true;
    sendRequests(connection, 1, 2);
    await settle();
    const { stdout, ended } = answers(connection.received);
    assert.equal(ended.size, 2);
    const [first, second] = [parseCgi(stdout.get(1)!), parseCgi(stdout.get(2)!)];
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, pattern(1));
    assert.equal(second.status, 500);
  } finally {
    await close();
  }
});
