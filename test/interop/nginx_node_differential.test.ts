// The same Express 5 app (test/interop/node_apps.ts) served twice on the runtime running the
// tests: by plain node:http, and by fcgi/node's createServer behind real nginx (examples/nginx.conf).
// Every request of the interop list must get the same status, headers and body from both, except
// for the headers that describe the HTTP connection (Date, Connection, Keep-Alive,
// Transfer-Encoding) and the one nginx provably adds (Server, see `masked`).
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runtimeCommand } from "../_support/env.ts";
import {
  type HttpResult,
  type Service,
  canConnect,
  fetchWithin,
  freePort,
  logsOf,
  makeTempDir,
  mustHave,
  renderExample,
  startNginx,
  startProcess,
  stopAll,
  webServerBinary,
} from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");

/** Headers about the HTTP connection itself: each server makes its own. */
const CONNECTION_HEADERS = ["date", "connection", "keep-alive", "transfer-encoding"];

/** The headers of a response less the connection's, and less `server` when nginx added it. */
function masked(result: HttpResult, behindNginx: boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of result.headers) {
    if (CONNECTION_HEADERS.includes(name)) continue;
    // node:http sends no Server header; nginx adds its own ("nginx/1.x") to every answer. It is
    // masked only where it says nginx, so an app's own Server header would still be compared.
    if (name === "server" && behindNginx && value.startsWith("nginx")) continue;
    headers[name] = value;
  }
  return headers;
}

function multipart(): FormData {
  const form = new FormData();
  form.append("title", "holiday");
  form.append("photo", new Blob([new Uint8Array(70_000).fill(7)]), "photo.bin");
  return form;
}

/** The requests of the interop list (test/interop/nginx_node.test.ts), less the client's abort. */
const REQUESTS: ReadonlyArray<readonly [string, string, () => RequestInit]> = [
  ["a page", "/hello", () => ({})],
  ["a JSON body", "/json", () => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "Zoë", n: [1, 2] }) })],
  ["an urlencoded form", "/form", () => ({ method: "POST", body: new URLSearchParams({ a: "1", b: "x y&z" }) })],
  ["a multipart upload", "/upload", () => ({ method: "POST", body: multipart() })],
  ["a static file", "/static/file.txt", () => ({})],
  ["a static file's Range", "/static/file.txt", () => ({ headers: { range: "bytes=3-9" } })],
  ["a static file's unsatisfiable Range", "/static/file.txt", () => ({ headers: { range: "bytes=500-600" } })],
  ["a redirect", "/redirect", () => ({})],
  ["a permanent redirect", "/moved", () => ({})],
  ["several cookies", "/cookies", () => ({})],
  ["a streamed response", "/stream", () => ({})],
  ["an error handler's 500", "/error", () => ({})],
  ["Express's 404", "/no/such/page", () => ({})],
  ["HEAD of a page", "/hello", () => ({ method: "HEAD" })],
];

describe("Express on node:http and behind nginx through fcgi/node answer alike", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  let plain = "";
  let fastcgi = "";

  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    dir = makeTempDir();
    const staticDir = join(dir, "public");
    mkdirSync(staticDir);
    writeFileSync(join(staticDir, "file.txt"), "the same file for both servers\n");
    const start = async (mode: "http" | "fcgi"): Promise<string> => {
      const address = `127.0.0.1:${await freePort()}`;
      const [command, args] = runtimeCommand("test/interop/node_app_main.ts", ["express5", mode, address, staticDir]);
      services.push(await startProcess(`express5 on ${mode}`, command, args, () => canConnect(address)));
      return address;
    };
    plain = `http://${await start("http")}`;
    const upstream = await start("fcgi");
    const port = await freePort();
    const site = renderExample("nginx.conf", [
      ["server 127.0.0.1:9000;", `server ${upstream};`],
      ["listen 8080;", `listen 127.0.0.1:${port};`],
    ]);
    services.push(await startNginx(binary, dir, site, [port]));
    fastcgi = `http://127.0.0.1:${port}`;
  });

  after(() => stopAll(services, dir));

  for (const [what, path, init] of REQUESTS) {
    it(`${what} (${init().method ?? "GET"} ${path}): the same status, headers and body`, async () => {
      await ready();
      const direct = await fetchWithin(plain + path, init());
      const viaNginx = await fetchWithin(fastcgi + path, init());
      const why = `\nnode:http: ${direct.status} ${JSON.stringify([...direct.headers])}\nfcgi: ${viaNginx.status} ${JSON.stringify([...viaNginx.headers])}\n${logsOf(services)}`;
      assert.equal(viaNginx.status, direct.status, why);
      assert.deepEqual(masked(viaNginx, true), masked(direct, false), why);
      assert.equal(viaNginx.text, direct.text);
    });
  }

  it("a conditional GET of a static file is a 304 on both", async () => {
    await ready();
    const etag = (await fetchWithin(plain + "/static/file.txt")).headers.get("etag")!;
    // fetch() adds "cache-control: no-cache" to a conditional request unless one is given.
    const init = { headers: { "if-none-match": etag, "cache-control": "max-age=0" } };
    const direct = await fetchWithin(plain + "/static/file.txt", init);
    const viaNginx = await fetchWithin(fastcgi + "/static/file.txt", init);
    assert.equal(direct.status, 304);
    assert.equal(viaNginx.status, 304);
    assert.deepEqual(masked(viaNginx, true), masked(direct, false));
  });
});
