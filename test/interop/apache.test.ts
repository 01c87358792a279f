// fcgi serve behind a real Apache httpd, configured with the README snippets: examples/apache.conf
// (mod_proxy_fcgi) for the responder role with GET, POST and bodies both ways; and
// examples/apache-authnz.conf (mod_authnz_fcgi) for /private/, the same app as its AUTHORIZER.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { sourcePath } from "../_support/env.ts";
import { patternBytes, sha256 } from "./app.ts";
import {
  type CountingRelay,
  type Service,
  type WebServer,
  fetchWithin,
  findApache,
  freePort,
  makeTempDir,
  mustHave,
  renderExample,
  sleep,
  startApache,
  startApp,
  startCountingRelay,
  webServerBinary,
  stopAll,
  logsOf,
} from "./_servers.ts";

const apacheBinary = webServerBinary("apache2 (httpd)", findApache());
const MiB = 1024 * 1024;

describe("fcgi serve behind Apache httpd (mod_proxy_fcgi, mod_authnz_fcgi)", { skip: apacheBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  let base = "";
  // Between mod_proxy_fcgi and the app: counts the FastCGI connections Apache opens.
  let relay: CountingRelay | undefined;

  const ready = setup(async () => {
    const binary = mustHave(apacheBinary.path, "apache2 (httpd)");
    dir = makeTempDir();
    const appAddress = `127.0.0.1:${await freePort()}`;
    services.push(await startApp(sourcePath("test/interop/app.ts"), appAddress));
    relay = await startCountingRelay(appAddress);
    const config = [
      renderExample("apache.conf", [["fcgi://127.0.0.1:9000/", `fcgi://127.0.0.1:${relay.port}/`]]),
      renderExample("apache-authnz.conf", [["fcgi://127.0.0.1:9000/", `fcgi://${appAddress}/`]]),
    ].join("\n");
    const modules = ["proxy", "proxy_fcgi", "authn_core", "authz_user", "authnz_fcgi"];
    const apache: WebServer = await startApache(binary, dir, config, await freePort(), modules);
    services.push(apache);
    base = apache.urls[0];
  });

  after(async () => {
    await relay?.close();
    await stopAll(services, dir);
  });

  const why = (): string => logsOf(services);

  it("answers a GET with a query string and request headers", async () => {
    ready();
    const r = await fetchWithin(`${base}/echo?name=Ada%20Lovelace&x=1&x=2`, { headers: { "x-test": "apache" } });
    assert.equal(r.status, 200, why());
    const echo = JSON.parse(r.text);
    assert.equal(echo.method, "GET");
    assert.equal(echo.path, "/echo");
    assert.deepEqual(echo.query, { name: "Ada Lovelace", x: "2" });
    assert.equal(echo.test, "apache");
  });

  it("decodes a urlencoded form POST", async () => {
    ready();
    const r = await fetchWithin(`${base}/form`, { method: "POST", body: new URLSearchParams({ name: "Ada", note: "a & b = c ✓" }) });
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text), { name: "Ada", note: "a & b = c ✓" });
  });

  it("passes a JSON POST and the handler's status back", async () => {
    ready();
    const r = await fetchWithin(`${base}/json`, { method: "POST", body: JSON.stringify({ a: [1, 2] }), headers: { "content-type": "application/json" } });
    assert.equal(r.status, 201, why());
    assert.deepEqual(JSON.parse(r.text), { got: { a: [1, 2] } });
  });

  it("streams a 4 MiB upload and a 4 MiB download intact", async () => {
    ready();
    const body = patternBytes(4 * MiB + 1);
    body[0] = 255;
    const up = await fetchWithin(`${base}/upload`, { method: "POST", body }, 60_000);
    assert.equal(up.status, 200, why());
    assert.deepEqual(JSON.parse(up.text), { bytes: body.length, sha256: sha256(body) });
    const down = await fetchWithin(`${base}/download?bytes=${4 * MiB + 1}`, {}, 60_000);
    assert.equal(down.status, 200, why());
    assert.equal(sha256(down.body), sha256(patternBytes(4 * MiB + 1)));
  });

  it("sends status codes, redirects and several cookies", async () => {
    ready();
    const missing = await fetchWithin(`${base}/status?code=404`);
    assert.equal(missing.status, 404, why());
    assert.equal(missing.text, "status 404\n");
    const moved = await fetchWithin(`${base}/redirect?code=301`);
    assert.equal(moved.status, 301);
    assert.match(moved.headers.get("location") ?? "", /\/echo\?from=redirect$/);
    const cookies = await fetchWithin(`${base}/cookies`);
    assert.deepEqual(cookies.headers.getSetCookie(), ["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Max-Age=60"]);
  });

  it("runs the app's authorizer for /private/ and passes its Variable- on to the responder", async () => {
    ready();
    const r = await fetchWithin(`${base}/private/params`, { headers: { authorization: "Bearer good-token" } });
    assert.equal(r.status, 200, why());
    const params = JSON.parse(r.text);
    assert.equal(params.FCGI_USER, "alice");
    assert.equal(params.REMOTE_USER, "alice", "UserExpr took the user from the Variable-");
  });

  it("sends the authorizer's deny status and body to the client", async () => {
    ready();
    for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
      const r = await fetchWithin(`${base}/private/params`, { headers });
      assert.equal(r.status, 403, why());
      assert.equal(r.text, "denied by the fcgi authorizer\n");
      assert.equal(r.headers.get("x-denied"), "yes");
    }
  });

  it("answers many requests in a row over reused connections (enablereuse=on)", async () => {
    ready();
    const requests = 10;
    const before = { connections: relay!.connections, closedByApp: relay!.closedByTarget };
    for (let i = 0; i < requests; i++) {
      // A short pause: the previous request's thread has given its connection back to the pool.
      if (i > 0) await sleep(20);
      const r = await fetchWithin(`${base}/echo?i=${i}`);
      assert.equal(r.status, 200, why());
      const echo = JSON.parse(r.text);
      assert.equal(echo.query.i, String(i), why());
      assert.equal(echo.keepConn, true, `the app sees FCGI_KEEP_CONN (request ${i}: ${r.text})`);
    }
    // The requests went through the relay, so its count is the count of Apache's FastCGI connections.
    assert.ok(relay!.connections >= 1, `no FastCGI connection reached the relay\n${why()}`);
    assert.equal(relay!.closedByTarget - before.closedByApp, 0, `the app closed a kept connection\n${why()}`);
    // One Apache child (ServerLimit 1) keeps its idle connections in one pool, and each request
    // takes the one the previous request gave back: at most one new connection (none when an
    // earlier test left one in the pool). Without reuse it would be one per request.
    const opened = relay!.connections - before.connections;
    assert.ok(opened <= 1, `Apache opened ${opened} FastCGI connections for ${requests} sequential requests\n${why()}`);
  });
});
