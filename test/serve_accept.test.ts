// The accept-loop form: for await (const exchange of accept(...)).
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { accept } from "../src/app/accept.ts";
import { Role } from "../src/protocol/constants.ts";
import { fcgiRequest, httpParams, parseCgi } from "./_support/records.ts";
import { within } from "./_support/poll.ts";

test("accept() hands out each request as an exchange and sends what respond() gets", async () => {
  const exchanges = accept({ listen: "127.0.0.1:0", logger: null });
  const server = await exchanges.server;
  const port = (server.addresses[0] as { port: number }).port;
  const loop = (async () => {
    let n = 0;
    for await (const { request, context, respond } of exchanges) {
      n++;
      const body = request.method === "POST" ? await request.text() : "";
      respond(new Response(`${n} ${request.method} ${new URL(request.url).pathname} ${body} ${context.params.get("REMOTE_ADDR")}`));
    }
    return n;
  })();
  const first = await fcgiRequest(port, { params: httpParams("/one") });
  assert.equal(parseCgi(first.stdout).text, "1 GET /one  127.0.0.1");
  const second = await fcgiRequest(port, { params: httpParams("/two", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4" }), stdin: "data" });
  assert.equal(parseCgi(second.stdout).text, "2 POST /two data 127.0.0.1");
  await exchanges.close();
  assert.equal(await within(loop, 3000, "the loop to end"), 2);
});

test("breaking out of the loop closes the server", async () => {
  const exchanges = accept({ listen: "127.0.0.1:0", logger: null });
  const server = await exchanges.server;
  const port = (server.addresses[0] as { port: number }).port;
  const pending = fcgiRequest(port, { params: httpParams("/") });
  for await (const exchange of exchanges) {
    exchange.respond(new Response("last"));
    break;
  }
  assert.equal(parseCgi((await pending).stdout).text, "last");
  await within(server.finished, 3000, "the server to close");
});

test("a rejected respond() promise becomes a 500, and the loop goes on", async () => {
  const exchanges = accept({ listen: "127.0.0.1:0", logger: null });
  const port = ((await exchanges.server).addresses[0] as { port: number }).port;
  const loop = (async () => {
    for await (const { request, respond } of exchanges) {
      if (request.url.endsWith("/bad")) respond(Promise.reject(new Error("no")));
      else respond(new Response("good"));
    }
  })();
  assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/bad") })).stdout).status, 500);
  assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ok") })).stdout).text, "good");
  await exchanges.close();
  await within(loop, 3000, "the loop to end");
});

test("accept() hands out only the roles asked for", async () => {
  const exchanges = accept({ listen: "127.0.0.1:0", logger: null, roles: ["authorizer"] });
  const port = ((await exchanges.server).addresses[0] as { port: number }).port;
  const loop = (async () => {
    for await (const { context, respond } of exchanges) respond(new Response(null, { headers: { "Variable-Role": String(context.role) } }));
  })();
  const refused = await fcgiRequest(port, { params: httpParams("/") });
  assert.equal(refused.protocolStatus, 3);
  const allowed = await fcgiRequest(port, { role: Role.AUTHORIZER, params: httpParams("/") });
  assert.equal(parseCgi(allowed.stdout).header("Variable-Role"), "2");
  await exchanges.close();
  await within(loop, 3000, "the loop to end");
});

test("accept() on an address in use rejects the iteration with the listen error", async () => {
  const first = accept({ listen: "127.0.0.1:0", logger: null });
  const port = ((await first.server).addresses[0] as { port: number }).port;
  const second = accept({ listen: `127.0.0.1:${port}`, logger: null });
  await assert.rejects(second.next());
  await first.close();
});
