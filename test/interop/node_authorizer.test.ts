// The FastCGI Authorizer role for a node:http app: an Express app run with fcgi/node's
// createServer (node_authorizer_app.ts, on the runtime running the tests) answers the web
// server's authorizer request with 200 and Variable-FCGI_USER, or 401; behind a real lighttpd
// (examples/lighttpd.conf: the app as authorizer and responder) and a real Apache
// (examples/apache-authnz.conf for /private/, examples/apache.conf as the responder).
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { Role } from "../../src/protocol/constants.ts";
import { canConnect, runtimeCommand } from "../_support/env.ts";
import {
  type Service,
  type WebServer,
  fetchWithin,
  findApache,
  freePort,
  logsOf,
  makeTempDir,
  mustHave,
  renderExample,
  startApache,
  startLighttpd,
  startProcess,
  stopAll,
  webServerBinary,
} from "./_servers.ts";

const lighttpdBinary = webServerBinary("lighttpd");
const apacheBinary = webServerBinary("apache2 (httpd)", findApache());
const allowed = { authorization: "Bearer good-token" };
const DENIED_BODY = "denied by the Express authorizer\n";

/** What the app's /whoami answers. */
interface WhoAmI {
  role: number;
  path: string;
  user: string | null;
  remoteUser: string | null;
  userHeader: string | null;
  seen: { authorizer: number; responder: number };
}

/** The web server under test, started in front of the app at "127.0.0.1:port". */
type Front = (binary: string, dir: string, appAddress: string) => Promise<WebServer>;

/**
 * A suite with the Express app (on the tests' runtime, a free loopback port) behind the web server
 * `front` starts; `tests` get a ready() that resolves to the server's URL.
 */
function behind(title: string, binary: { path: string | undefined; skip: string | false }, name: string, front: Front, tests: (ready: () => Promise<string>, why: () => string) => void): void {
  describe(title, { skip: binary.skip }, () => {
    let dir = "";
    const services: Service[] = [];
    let base = "";
    const ready = setup(async () => {
      dir = makeTempDir();
      const address = `127.0.0.1:${await freePort()}`;
      const [command, args] = runtimeCommand("test/interop/node_authorizer_app.ts", [address]);
      services.push(await startProcess("Express authorizer on fcgi/node", command, args, () => canConnect(address)));
      const server = await front(mustHave(binary.path, name), dir, address);
      services.push(server);
      base = server.urls[0]!;
    });
    after(() => stopAll(services, dir));
    tests(async () => {
      await ready();
      return base;
    }, () => logsOf(services));
  });
}

/** Checks that requests without the token, or with a wrong one, get the authorizer's own 401. */
async function assertDenied(url: string, why: () => string): Promise<void> {
  for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
    const r = await fetchWithin(url, { headers });
    assert.equal(r.status, 401, why());
    assert.equal(r.text, DENIED_BODY);
    assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="fcgi"');
  }
}

behind("an Express app on fcgi/node as authorizer and responder behind lighttpd", lighttpdBinary, "lighttpd", async (binary, dir, address) => {
  const [host, port] = address.split(":");
  const config = renderExample("lighttpd.conf", [['"host" => "127.0.0.1", "port" => 9000', `"host" => "${host}", "port" => ${port}`]]);
  return await startLighttpd(binary, dir, config, await freePort());
}, (ready, why) => {
  it("lets an authorized request through, with the authorizer's Variable-FCGI_USER as a param", async () => {
    const base = await ready();
    // A client header of the same name arrives as a header and must not become the param.
    const r = await fetchWithin(`${base}/whoami`, { headers: { ...allowed, "fcgi-user": "mallory" } });
    assert.equal(r.status, 200, why());
    const who = JSON.parse(r.text) as WhoAmI;
    assert.equal(who.role, Role.RESPONDER);
    assert.equal(who.path, "/whoami");
    assert.equal(who.user, "alice", why());
    assert.equal(who.userHeader, "mallory");
  });

  it("keeps the request body for the responder's body parser after authorizing", async () => {
    const base = await ready();
    const r = await fetchWithin(`${base}/json`, { method: "POST", headers: { ...allowed, "content-type": "application/json" }, body: JSON.stringify({ note: "Zoë" }) });
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text), { received: { note: "Zoë" }, user: "alice" });
  });

  it("sends the authorizer's 401, headers and body to the client, and never runs the responder for it", async () => {
    const base = await ready();
    const whoami = async (): Promise<WhoAmI> => {
      const r = await fetchWithin(`${base}/whoami`, { headers: allowed });
      assert.equal(r.status, 200, why());
      return JSON.parse(r.text) as WhoAmI;
    };
    const first = await whoami();
    await assertDenied(`${base}/whoami`, why);
    const next = await whoami();
    assert.equal(next.seen.responder, first.seen.responder + 1, "denied requests must not reach the responder");
    assert.equal(next.seen.authorizer, first.seen.authorizer + 3, "each request, denied or not, asks the authorizer once");
  });
});

behind("an Express app on fcgi/node as authorizer behind Apache (mod_authnz_fcgi)", apacheBinary, "apache2 (httpd)", async (binary, dir, address) => {
  const config = [
    renderExample("apache.conf", [["fcgi://127.0.0.1:9000/", `fcgi://${address}/`]]),
    renderExample("apache-authnz.conf", [["fcgi://127.0.0.1:9000/", `fcgi://${address}/`]]),
  ].join("\n");
  return await startApache(binary, dir, config, await freePort(), ["proxy", "proxy_fcgi", "authn_core", "authz_user", "authnz_fcgi"]);
}, (ready, why) => {
  it("runs the Express authorizer for /private/ and names the user to the responder", async () => {
    const base = await ready();
    const r = await fetchWithin(`${base}/private/whoami`, { headers: allowed });
    assert.equal(r.status, 200, why());
    const who = JSON.parse(r.text) as WhoAmI;
    assert.equal(who.role, Role.RESPONDER);
    assert.equal(who.path, "/private/whoami");
    assert.equal(who.remoteUser, "alice", "UserExpr took the user from the Variable-");
  });

  it("sends the authorizer's 401 and body to the client", async () => {
    const base = await ready();
    await assertDenied(`${base}/private/whoami`, why);
  });

  it("does not ask the authorizer outside /private/", async () => {
    const base = await ready();
    const r = await fetchWithin(`${base}/whoami`);
    assert.equal(r.status, 200, why());
    assert.equal((JSON.parse(r.text) as WhoAmI).user, null);
  });
});
