// Regression tests for what the hostile-backend fuzzer (npm run fuzz:client, test/_support/fuzz_client.ts)
// found in the Client: each one the smallest backend behaviour that showed the bug.
import { afterEach, describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { FastCGIError } from "../src/errors.ts";
import { startFakeApp, type FakeApp, type FakeAppHooks } from "./_support/fake_fcgi_app.ts";
import { within } from "./_support/poll.ts";

const OK = "Content-Type: text/plain\r\n\r\n";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

async function setup(hooks: FakeAppHooks, options: Partial<ClientOptions> = {}, multiplex = false): Promise<{ app: FakeApp; client: Client }> {
  const app = await startFakeApp(hooks, multiplex);
  const client = new Client({ address: app.address, onStderr: () => {}, ...options });
  cleanups.push(async () => {
    await within(client.close(), 5000, "client.close()").catch(() => {});
    await app.close();
  });
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
