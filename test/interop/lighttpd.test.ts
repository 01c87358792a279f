// fcgi serve behind a real lighttpd, configured with the README snippet (examples/lighttpd.conf):
// one app as FastCGI AUTHORIZER and RESPONDER. Allowed requests reach the responder with the
// authorizer's Variable-* values; denied ones get the authorizer's own status and body.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { Role } from "../../src/protocol/constants.ts";
import { sourcePath } from "../_support/env.ts";
import { patternBytes, sha256 } from "./app.ts";
import {
  type Service,
  fetchWithin,
  freePort,
  makeTempDir,
  mustHave,
  renderExample,
  startApp,
  startLighttpd,
  webServerBinary,
  stopAll,
  logsOf,
} from "./_servers.ts";

const lighttpdBinary = webServerBinary("lighttpd");
const allowed = { authorization: "Bearer good-token" };

describe("fcgi serve as authorizer and responder behind lighttpd", { skip: lighttpdBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  let base = "";

  const ready = setup(async () => {
    const binary = mustHave(lighttpdBinary.path, "lighttpd");
    dir = makeTempDir();
    const appPort = await freePort();
    services.push(await startApp(sourcePath("test/interop/app.ts"), `127.0.0.1:${appPort}`));
    const config = renderExample("lighttpd.conf", [['"host" => "127.0.0.1", "port" => 9000', `"host" => "127.0.0.1", "port" => ${appPort}`]]);
    const lighttpd = await startLighttpd(binary, dir, config, await freePort());
    services.push(lighttpd);
    base = lighttpd.urls[0];
  });

  after(async () => {
    await stopAll(services, dir);
  });

  const why = (): string => logsOf(services);

  it("lets an authorized request through to the responder", async () => {
    ready();
    const r = await fetchWithin(`${base}/echo?q=1`, { headers: allowed });
    assert.equal(r.status, 200, why());
    const echo = JSON.parse(r.text);
    assert.equal(echo.path, "/echo");
    assert.deepEqual(echo.query, { q: "1" });
    assert.equal(echo.role, Role.RESPONDER);
  });

  it("passes the authorizer's Variable- header on to the responder as a param", async () => {
    ready();
    // A client header of the same name arrives as HTTP_FCGI_USER and must not win.
    const r = await fetchWithin(`${base}/params`, { headers: { ...allowed, "fcgi-user": "mallory" } });
    assert.equal(r.status, 200, why());
    const params = JSON.parse(r.text);
    assert.equal(params.FCGI_USER, "alice", why());
    assert.equal(params.HTTP_FCGI_USER, "mallory");
  });

  it("keeps the request body for the responder after authorizing", async () => {
    ready();
    const body = patternBytes(1024 * 1024 + 17);
    const r = await fetchWithin(`${base}/upload`, { method: "POST", body, headers: allowed }, 60_000);
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text), { bytes: body.length, sha256: sha256(body) });
  });

  it("sends the authorizer's deny status, headers and body to the client", async () => {
    ready();
    for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
      const r = await fetchWithin(`${base}/echo`, { headers });
      assert.equal(r.status, 403, why());
      assert.equal(r.text, "denied by the fcgi authorizer\n");
      assert.equal(r.headers.get("x-denied"), "yes");
    }
  });

  it("never runs the responder for a denied request", async () => {
    ready();
    const hits = async (headers: Record<string, string>) => {
      const r = await fetchWithin(`${base}/hits`, { headers });
      return { status: r.status, hits: r.status === 200 ? JSON.parse(r.text).hits : undefined };
    };
    const first = await hits(allowed);
    assert.equal(first.status, 200, why());
    for (let i = 0; i < 3; i++) assert.equal((await hits({})).status, 403);
    const next = await hits(allowed);
    assert.equal(next.hits, first.hits + 1, "denied requests must not reach the responder");
  });
});
