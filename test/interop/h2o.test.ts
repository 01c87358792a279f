// fcgi serve behind a real h2o, configured with the README snippet (examples/h2o.conf):
// fastcgi.connect at /, FastCGI connections kept open between requests.
import { it } from "../_support/test.ts";
import assert from "node:assert/strict";
import { describeAppBehind, fetchWithin, freePort, itServesTheTestApp, renderExample, startH2o } from "./_servers.ts";

describeAppBehind("fcgi serve behind h2o (fastcgi.connect)", "h2o", async (binary, dir, appAddress) => {
  const port = await freePort();
  const config = renderExample("h2o.conf", [
    ["listen: 8080", `listen:\n  host: 127.0.0.1\n  port: ${port}`],
    ["port: 9000", `port: ${appAddress.split(":")[1]}`],
  ]);
  return startH2o(binary, dir, config, port);
}, (site, ready) => {
  // fastcgi.timeout.keepalive in the snippet: h2o sets FCGI_KEEP_CONN. The path under / is PATH_INFO.
  itServesTheTestApp(site, ready, { keepConn: true, SCRIPT_NAME: "", PATH_INFO: "/params" });

  it("keeps one FastCGI connection for requests one after another", async () => {
    ready();
    const peers = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await fetchWithin(`${site().base}/echo?i=${i}`);
      assert.equal(r.status, 200, site().why());
      peers.add(JSON.parse(r.text).fcgiPeer);
    }
    // Usually one; a second is legitimate if a request arrives before h2o has put the first
    // connection back (the client may have the whole response before END_REQUEST is read).
    assert.ok(peers.size <= 2, `h2o used ${peers.size} FastCGI connections for 6 sequential requests: ${[...peers].join(" ")}`);
  });
});
