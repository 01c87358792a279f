// `fcgi serve --max-params-bytes 12K` behind a real nginx (the README snippet, examples/nginx.conf, with
// kept connections): a request whose params break the limit reaches the HTTP client as 431 (its
// headers) or 414 (its target) with a one-line body, not as nginx's 502; the app logs the limit
// and the param; the kept FastCGI connection goes on serving.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { type AppBehindNginx, fetchWithin, mustHave, startAppBehindNginx, webServerBinary } from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");

// No imports, so the same file runs under every runtime's `fcgi serve`.
const APP = `export default { fetch: () => new Response("ok") };\n`;

describe("fcgi serve --max-params-bytes behind nginx", { skip: nginxBinary.skip }, () => {
  let site: AppBehindNginx | undefined;
  const ready = setup(async () => {
    // 12 KiB: below what nginx itself lets through (an 8 KiB request line, 4 header buffers of
    // 8 KiB), so fcgi's limit is the one hit.
    site = await startAppBehindNginx(mustHave(nginxBinary.path, "nginx"), APP, ["--max-params-bytes", "12K"]);
  });
  after(async () => {
    await site?.stop();
  });
  const why = (): string => site!.why();

  it("headers over the limit are a 431 for the client, with the cause logged, and the kept connection serves on", async () => {
    ready();
    assert.equal((await fetchWithin(`${site!.base}/`)).status, 200, why());
    const opened = site!.relay.connections;
    const headers: Record<string, string> = {};
    for (let i = 0; i < 3; i++) headers[`x-fill-${i}`] = "f".repeat(7000);
    const refused = await fetchWithin(`${site!.base}/`, { headers });
    assert.equal(refused.status, 431, why());
    assert.equal(refused.text, "431 Request Header Fields Too Large\n");
    assert.match(site!.app.logs(), /PARAMS refused \(PARAMS_TOO_LARGE\): name-value stream exceeds maxTotalBytes \(12288\) \(at param "HTTP_X_FILL_\d"\): answered 431/);
    for (let i = 0; i < 3; i++) assert.equal((await fetchWithin(`${site!.base}/`)).text, "ok", why());
    assert.equal(site!.relay.connections, opened, `nginx had to open new connections\n${why()}`);
  });

  it("a request target over the limit is a 414", async () => {
    ready();
    // The target goes out twice (QUERY_STRING first, then REQUEST_URI): 2 × 6.5 KB passes 12 KiB
    // at REQUEST_URI, within nginx's 8 KiB request line.
    const refused = await fetchWithin(`${site!.base}/?q=${"q".repeat(6500)}`);
    assert.equal(refused.status, 414, why());
    assert.equal(refused.text, "414 URI Too Long\n");
    assert.equal((await fetchWithin(`${site!.base}/`)).text, "ok", why());
  });
});
