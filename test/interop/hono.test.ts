// The Hono app in examples/hono_app.ts, unchanged, served by `fcgi serve` behind nginx with the
// README snippet: a framework's fetch handler works as a FastCGI responder as it is.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { sourcePath } from "../_support/env.ts";
import {
  type Service,
  fetchWithin,
  freePort,
  makeTempDir,
  mustHave,
  renderExample,
  startApp,
  startNginx,
  webServerBinary,
  stopAll,
  logsOf,
} from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");

describe("the Hono example app behind nginx", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  let base = "";

  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    dir = makeTempDir();
    const appAddress = `127.0.0.1:${await freePort()}`;
    services.push(await startApp(sourcePath("examples/hono_app.ts"), appAddress));
    const port = await freePort();
    const http = renderExample("nginx.conf", [
      ["server 127.0.0.1:9000;", `server ${appAddress};`],
      ["listen 8080;", `listen 127.0.0.1:${port};`],
    ]);
    const nginx = await startNginx(binary, dir, http, [port]);
    services.push(nginx);
    base = nginx.urls[0];
  });

  after(async () => {
    await stopAll(services, dir);
  });

  const why = (): string => logsOf(services);

  it("answers the root route with text", async () => {
    ready();
    const r = await fetchWithin(`${base}/`);
    assert.equal(r.status, 200, why());
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(r.text, "Hello from Hono over FastCGI");
  });

  it("routes path parameters and query strings, and sets headers", async () => {
    ready();
    const r = await fetchWithin(`${base}/greet/Ada%20Lovelace?greeting=Bonjour`);
    assert.equal(r.status, 200, why());
    assert.equal(r.headers.get("x-powered-by"), "Hono");
    assert.deepEqual(JSON.parse(r.text), { message: "Bonjour, Ada Lovelace!" });
  });

  it("takes a JSON POST and answers 201 with JSON", async () => {
    ready();
    const r = await fetchWithin(`${base}/todos`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "write the interop tests ✓" }),
    });
    assert.equal(r.status, 201, why());
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(JSON.parse(r.text), { id: 1, title: "write the interop tests ✓", done: false });
  });

  it("answers a JSON POST without a title with the app's 400", async () => {
    ready();
    const r = await fetchWithin(`${base}/todos`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(r.status, 400, why());
    assert.deepEqual(JSON.parse(r.text), { error: "title is required" });
  });

  it("answers unknown routes with the app's notFound handler", async () => {
    ready();
    const r = await fetchWithin(`${base}/nope`);
    assert.equal(r.status, 404, why());
    assert.equal(r.text, "Not here");
  });
});
