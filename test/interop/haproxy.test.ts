// fcgi serve behind a real HAProxy, configured with the README snippet (examples/haproxy.conf):
// an fcgi-app with keep-conn and mpxs-conns, a backend with use-fcgi-app and a proto fcgi server.
import { it } from "../_support/test.ts";
import assert from "node:assert/strict";
import { describeAppBehind, fetchWithin, freePort, itServesTheTestApp, renderExample, startHaproxy } from "./_servers.ts";

/** What app.ts's /slow answers: the FastCGI connection and request id, and when it ran. */
interface Slow {
  fcgiPeer: string;
  requestId: number;
  started: number;
  ended: number;
}

describeAppBehind("fcgi serve behind HAProxy (fcgi-app, proto fcgi)", "haproxy", async (binary, dir, appAddress) => {
  const port = await freePort();
  const config = renderExample("haproxy.conf", [
    ["bind :8080", `bind 127.0.0.1:${port}`],
    ["server app1 127.0.0.1:9000 proto fcgi", `server app1 ${appAddress} proto fcgi`],
    ["docroot /var/www/app", `docroot ${dir}`],
  ]);
  return startHaproxy(binary, dir, config, port);
}, (site, ready) => {
  // option keep-conn: HAProxy sets FCGI_KEEP_CONN. Without a path-info regex the path is SCRIPT_NAME.
  itServesTheTestApp(site, ready, { keepConn: true, SCRIPT_NAME: "/params", PATH_INFO: undefined });

  it("multiplexes requests from several clients on one FastCGI connection (mpxs-conns)", async () => {
    ready();
    // 12 clients at once, each request held 1 s by the app: without multiplexing HAProxy would
    // need 12 FastCGI connections; with max-reqs 16 it puts several on one, in flight together.
    const answers = await Promise.all(Array.from({ length: 12 }, async () => {
      const r = await fetchWithin(`${site().base}/slow?ms=1000`);
      assert.equal(r.status, 200, site().why());
      return JSON.parse(r.text) as Slow;
    }));
    const overlapping = answers.filter((a) =>
      answers.some((b) => b !== a && b.fcgiPeer === a.fcgiPeer && b.started < a.ended && a.started < b.ended));
    const peers = new Set(answers.map((a) => a.fcgiPeer));
    assert.ok(overlapping.length >= 2, `no two requests were in flight together on one connection: ${JSON.stringify(answers)}`);
    assert.ok(peers.size < answers.length, `${peers.size} FastCGI connections for ${answers.length} requests`);
  });
});
