// The Client against this project's own application server, which multiplexes: many requests
// share few connections, and a slow one does not hold up the rest.
import { afterEach, describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { serve } from "../src/app/serve.ts";
import type { Server } from "../src/app/types.ts";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { waitFor, within } from "./_support/poll.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

interface Setup {
  server: Server;
  client: Client;
  /** The most connections the pool had open or opening at once, seen from the handler. */
  peak(): number;
  /** The most requests the handler ran at once. */
  busiest(): number;
  /** Requests with `hold=1` now waiting in the handler for {@link release}. */
  holding(): number;
  /** Lets the held requests answer. */
  release(): void;
}

async function setup(options: Partial<ClientOptions> = {}, multiplex = true): Promise<Setup> {
  let peak = 0;
  let running = 0;
  let busiest = 0;
  let holding = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let client!: Client;
  const server: Server = await serve({
    listen: "127.0.0.1:0",
    logger: null,
    overrideGlobalObjects: false,
    multiplex,
    fetch: async (request) => {
      const stats = client.stats();
      peak = Math.max(peak, stats.connections + stats.connecting);
      busiest = Math.max(busiest, ++running);
      try {
        return await answer(request);
      } finally {
        running--;
      }
    },
  });
  async function answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const wait = Number(url.searchParams.get("wait") ?? 0);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (url.searchParams.get("hold") === "1") {
      holding++;
      await released;
      holding--;
    }
    const size = Number(url.searchParams.get("size") ?? -1);
    if (size >= 0) return new Response(new Uint8Array(size).fill(0x62));
    const body = new Uint8Array(await request.arrayBuffer());
    let sum = 0;
    for (const b of body) sum = (sum + b) % 65521;
    return new Response(`${url.searchParams.get("i")} ${body.length} ${sum}`, { headers: { "x-i": url.searchParams.get("i") ?? "" } });
  }
  client = new Client({ address: server.addresses[0]!, onStderr: () => {}, ...options });
  cleanups.push(async () => {
    await within(client.close(), 10_000, "client.close()");
    await server.close();
  });
  return { server, client, peak: () => peak, busiest: () => busiest, holding: () => holding, release };
}

function body(i: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(i * 997).map((_, k) => (k * 31 + i) & 0xff);
}

function expected(i: number): string {
  let sum = 0;
  for (const b of body(i)) sum = (sum + b) % 65521;
  return `${i} ${i * 997} ${sum}`;
}

describe("Client multiplexing against serve()", () => {
  it("100 concurrent requests with bodies share at most 4 connections, each getting its own answer", async () => {
    const { client, peak } = await setup({ maxConnections: 4 });
    const limits = await client.limits();
    assert.equal(limits.multiplex, true, "serve() answers FCGI_MPXS_CONNS=1");
    const results = await within(
      Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const response = await client.fetch(new Request(`http://app/x?i=${i}`, { method: "POST", body: body(i) }));
        assert.equal(response.headers.get("x-i"), String(i));
        return await response.text();
      })),
      30_000,
      "100 requests",
    );
    results.forEach((text, i) => assert.equal(text, expected(i)));
    assert.ok(peak() <= 4, `the pool had ${peak()} connections at once`);
    assert.ok(client.stats().connections <= 4);
  });

  it("a slow request does not stall the fast ones on the same connection", async () => {
    const { client, holding, release } = await setup({ maxConnections: 1 });
    await client.limits();
    const order: string[] = [];
    // The slow one is held in the handler until the test lets it go: however loaded the machine,
    // the fast ones can finish only by passing it on the connection.
    const slow = client.fetch("http://app/?i=slow&hold=1").then((r) => r.text()).then((text) => (order.push("slow"), text));
    await waitFor(() => holding() === 1, 10_000, "the slow request in the handler");
    const fast = await within(
      Promise.all(Array.from({ length: 50 }, (_, i) => client.fetch(`http://app/?i=${i}`).then((r) => r.text()).then((text) => (order.push("fast"), text)))),
      20_000,
      "the fast requests beside a held one",
    );
    assert.deepEqual(fast, Array.from({ length: 50 }, (_, i) => `${i} 0 0`));
    assert.equal(holding(), 1, "the slow request was still running");
    assert.equal(client.stats().connections, 1, "all on one connection");
    release();
    assert.equal(await within(slow, 10_000, "the slow request"), "slow 0 0");
    assert.deepEqual(order, [...Array(50).fill("fast"), "slow"]);
  });

  it("an unread response does not stall the others on its connection", async () => {
    const { client } = await setup({ maxConnections: 1 });
    const unread = await client.fetch("http://app/?size=3145728");
    const others = await within(
      Promise.all(Array.from({ length: 20 }, (_, i) => client.fetch(`http://app/?i=${i}`).then((r) => r.text()))),
      10_000,
      "requests beside an unread response",
    );
    assert.equal(others.length, 20);
    assert.equal((await unread.arrayBuffer()).byteLength, 3145728, "the unread response was kept whole");
  });

  it("multiplex: false sends one request per connection even to a multiplexing backend", async () => {
    const { client, busiest } = await setup({ maxConnections: 3, multiplex: false });
    const texts = await Promise.all(Array.from({ length: 12 }, (_, i) => client.fetch(`http://app/?i=${i}&wait=20`).then((r) => r.text())));
    assert.equal(texts.length, 12);
    assert.equal((await client.limits()).multiplex, false);
    assert.ok(busiest() <= 3, `${busiest()} requests ran at once`);
  });

  it("multiplex: true on a backend that refuses (CANT_MPX_CONN) retries the refused request alone", async () => {
    const { client } = await setup({ maxConnections: 2, multiplex: true }, false);
    const texts = await within(
      Promise.all(Array.from({ length: 6 }, (_, i) => client.fetch(`http://app/?i=${i}&wait=30`).then((r) => r.text()))),
      10_000,
      "requests to a backend that does not multiplex",
    );
    assert.deepEqual(texts, ["0 0 0", "1 0 0", "2 0 0", "3 0 0", "4 0 0", "5 0 0"]);
  });
});
