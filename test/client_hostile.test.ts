// Regression tests for what the hostile-backend fuzzer (npm run fuzz:client, test/_support/fuzz_client.ts)
// found in the Client: each one the smallest backend behaviour that showed the bug.
import { afterEach, describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { FastCGIError } from "../src/errors.ts";
import { ResponseBody } from "../src/client/response_body.ts";
import { startFakeApp, type FakeApp, type FakeAppHooks, type FakeConnection } from "./_support/fake_fcgi_app.ts";
import { waitFor, within } from "./_support/poll.ts";

const OK = "Content-Type: text/plain\r\n\r\n";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

/** A fake backend and a Client of it, both closed after the test (the client first). */
async function setup(hooks: FakeAppHooks, options: Partial<ClientOptions> = {}, multiplex = false): Promise<{ app: FakeApp; client: Client }> {
  const app = await startFakeApp(hooks, multiplex);
  cleanups.push(() => app.close());
  const client = new Client({ ...options, address: app.address, onStderr: () => {} });
  cleanups.push(() => within(client.close(), 5000, "client.close()").then(() => {}, () => {}));
  return { app, client };
}

function isError(code: string, limit?: string) {
  return (e: unknown) => e instanceof FastCGIError && e.code === code && (limit === undefined || e.limit === limit);
}

describe("Client against hostile backends (fuzzer findings)", () => {
  it("close() resolves when a multiplexed backend never ends a request given up on (it ignores ABORT_REQUEST)", async () => {
    // Seed 8 of the fuzzer: a request timed out on a multiplexed connection, and the backend never
    // sent its END_REQUEST; close() waited for that connection forever.
    const { app, client } = await setup({ onStdinEnd: () => {}, onAbort: () => {} }, { responseTimeout: 200 }, true);
    await assert.rejects(client.fetch("http://x/stalled"), isError("TIMEOUT", "responseTimeout"));
    assert.equal(client.stats().active, 0);
    assert.equal(app.open() > 0, true, "the backend keeps the connection open");
    await within(client.close(), 3000, "client.close()");
    assert.equal(client.stats().connections, 0);
  });

  it("close() resolves when the last request on such a connection ends while the client closes", async () => {
    let answer: (() => void) | null = null;
    const { client } = await setup({
      onStdinEnd: (r) => {
        // The first request stalls (and its abort is ignored); the second answers when told to.
        if (r.params.REQUEST_URI === "/held") answer = () => r.connection.respond(r.requestId, OK + "held");
      },
      onAbort: () => {},
    }, { responseTimeout: 300, maxConnections: 1 }, true);
    const stalled = client.fetch("http://x/stalled");
    // The held one starts later, so that the stalled one times out while it still waits.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const held = client.fetch("http://x/held");
    await assert.rejects(stalled, isError("TIMEOUT", "responseTimeout"));
    const closed = client.close();
    answer!();
    assert.equal(await (await held).text(), "held");
    await within(closed, 3000, "client.close()");
  });

});

describe("ResponseBody and maxResponseBuffer (fuzzer seed 1022)", () => {
  const enc = new TextEncoder();
  function body(maxResponseBuffer: number) {
    const failures: unknown[] = [];
    const owner = { multiplexed: true, flowChanged: () => {}, giveUp: (error: unknown) => void failures.push(error) };
    return { failures, body: new ResponseBody(owner, 1, 65536, maxResponseBuffer) };
  }
  /** One socket read: the head, then `records` pieces of 4 KiB, pushed in one turn as the socket does. */
  function read(b: ResponseBody, records: number, head = false): void {
    if (head) b.push(enc.encode("Content-Type: text/plain\r\n\r\n"));
    for (let i = 0; i < records; i++) b.push(new Uint8Array(4096).fill(0x62));
  }
  const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

  it("bytes that came in the same read as the head are not held against a reader that has not had the Response yet", async () => {
    // The head and 132 KiB of body in one read: queued at once when the Response went out, and a
    // maxResponseBuffer of 64 KiB failed a reader that read everything as soon as it could.
    const { body: b, failures } = body(64 * 1024);
    read(b, 33, true);
    const response = b.respond("GET", false)!;
    b.deliverEarly();
    const reader = response.body!.getReader();
    let got = 0;
    for (let r = await reader.read(); !r.done; r = got >= 33 * 4096 ? { done: true, value: undefined } : await reader.read()) got += r.value.length;
    assert.equal(got, 33 * 4096);
    assert.deepEqual(failures, []);
  });

  it("a reader that does not read fails once more than maxResponseBuffer waited while more came, below the high-water mark too", async () => {
    const { body: b, failures } = body(64 * 1024);
    read(b, 1, true);
    b.respond("GET", false);
    b.deliverEarly();
    await turn();
    read(b, 20); // 84 KiB now wait, unread
    assert.deepEqual(failures, []);
    await turn();
    read(b, 1);
    await turn();
    assert.equal(failures.length, 1);
    assert.ok(isError("LIMIT_EXCEEDED", "maxResponseBuffer")(failures[0]));
  });

  it("what one socket read brings reaches the reader as one chunk, not one chunk per record", async () => {
    // Seed 20086 on Deno: a reader of a 2 MiB multiplexed body that never stopped reading failed
    // past a 1 MiB maxResponseBuffer. Deno's socket reads resolve as microtasks, and the reader,
    // taking one record per microtask, fell behind by a read's worth of records each time.
    const { body: b, failures } = body(64 * 1024);
    read(b, 1, true);
    const reader = b.respond("GET", false)!.body!.getReader();
    b.deliverEarly();
    await turn();
    assert.equal((await reader.read()).value!.length, 4096);
    read(b, 30);
    assert.equal((await reader.read()).value!.length, 30 * 4096);
    assert.deepEqual(failures, []);
  });
  it("a request given up on after CANT_MPX_CONN turned multiplexing off does not cut the others on its connection", async () => {
    // Flaky seed 1123: the backend said FCGI_MPXS_CONNS=1, then refused a request with
    // CANT_MPX_CONN while two others ran on the same connection; aborting one of those closed the
    // connection under the other.
    const held = new Map<string, () => void>();
    const carriers = new Map<string, FakeConnection>();
    let keptArrivals = 0;
    const { client } = await setup({
      onGetValues: () => [["FCGI_MPXS_CONNS", "1"], ["FCGI_MAX_CONNS", "1"], ["FCGI_MAX_REQS", "10"]],
      onStdinEnd: (r) => {
        const uri = r.params.REQUEST_URI!;
        if (uri === "/refused") return r.connection.end(r.requestId, 0, 1 /* CANT_MPX_CONN */);
        if (uri === "/kept") {
          keptArrivals++;
          // As PHP-FPM and fcgi serve do: the web server's EOF ends the connection and what runs on it.
          r.connection.socket.once("end", () => r.connection.destroy());
        }
        carriers.set(uri, r.connection);
        held.set(uri, () => r.connection.respond(r.requestId, OK + uri));
      },
      onAbort: () => {},
    }, { maxConnections: 1 }, true);
    const aborter = new AbortController();
    const kept = client.fetch("http://x/kept");
    const aborted = client.fetch(new Request("http://x/aborted", { signal: aborter.signal }));
    await waitFor(() => held.size === 2, 3000, "both requests at the backend");
    const first = carriers.get("/kept")!;
    assert.equal(carriers.get("/aborted"), first, "both on one multiplexed connection");
    // The refusal: the Client stops multiplexing (its one retry of /refused waits for a connection
    // of its own, and is refused again: how it ends does not matter here).
    const refused = client.fetch("http://x/refused").then((r) => r.status, (e: unknown) => e);
    await within((async () => { while ((await client.limits()).multiplex) await new Promise((resolve) => setTimeout(resolve, 5)); })(), 3000, "multiplexing turned off");
    aborter.abort();
    await assert.rejects(aborted);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(first.closed, false, "the connection still carries /kept");
    held.get("/kept")!();
    assert.equal(await (await kept).text(), "/kept");
    assert.equal(keptArrivals, 1, "/kept was answered where it began");
    // The abandoned request's id stays reserved there: once /kept is done, the connection closes.
    await waitFor(() => first.closed, 3000, "the connection to close once /kept is done");
    await within(refused, 5000, "the refused request to end");
  });
});
