// fcgi serve behind a real Caddy 2, configured with the README snippet (examples/caddy.conf):
// reverse_proxy with the fastcgi transport, the app at /.
import { describeAppBehind, freePort, itServesTheTestApp, renderExample, startCaddy } from "./_servers.ts";

describeAppBehind("fcgi serve behind Caddy (reverse_proxy, transport fastcgi)", "caddy", async (binary, dir, appAddress) => {
  const port = await freePort();
  const config = renderExample("caddy.conf", [[":8080 {", `:${port} {`], ["reverse_proxy 127.0.0.1:9000 {", `reverse_proxy ${appAddress} {`]]);
  return startCaddy(binary, dir, config, port);
}, (site, ready) => {
  // Caddy dials a new FastCGI connection for every request, without FCGI_KEEP_CONN; with no
  // split_path the whole path is PATH_INFO.
  itServesTheTestApp(site, ready, { keepConn: false, SCRIPT_NAME: "", PATH_INFO: "/params" });
});
