// `fcgi serve --request-timeout` behind a real nginx (the README snippet, examples/nginx.conf, with
// kept connections): a handler that never settles is a 504 for the HTTP client within the timeout,
// the app logs it, and the kept FastCGI connection goes on serving.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { type AppBehindNginx, fetchWithin, mustHave, startAppBehindNginx, webServerBinary } from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");
const TIMEOUT = 1000;

// No imports, so the same file runs under every runtime's `fcgi serve`.
const APP = `export default {
  fetch(request) {
    if (new URL(request.url).pathname === "/hang") return new Promise(() => {});
    return new Response("ok");
  },
};
`;

describe("fcgi serve --request-timeout behind nginx", { skip: nginxBinary.skip }, () => {
  let site: AppBehindNginx | undefined;
  const ready = setup(async () => {
    site = await startAppBehindNginx(mustHave(nginxBinary.path, "nginx"), APP, ["--request-timeout", `${TIMEOUT / 1000}s`]);
  });
  after(async () => {
    await site?.stop();
  });
  const why = (): string => site!.why();

  it("a handler that never settles is a 504 within the timeout, logged, and the kept connection serves the next requests", async () => {
    ready();
    assert.equal((await fetchWithin(`${site!.base}/`)).status, 200, why());
    const opened = site!.relay.connections;
    const started = Date.now();
    const hung = await fetchWithin(`${site!.base}/hang?id=7`, {}, TIMEOUT + 5000);
    const took = Date.now() - started;
    assert.equal(hung.status, 504, why());
    assert.ok(took >= TIMEOUT - 50 && took < TIMEOUT + 1500, `answered after ${took} ms`);
    assert.match(site!.app.logs(), /GET \/hang\?id=7\): ran \d+ ms, past requestTimeout/);
    for (let i = 0; i < 5; i++) assert.equal((await fetchWithin(`${site!.base}/`)).text, "ok", why());
    assert.equal(site!.relay.closedByTarget, 0, `the app closed a kept connection\n${why()}`);
    assert.equal(site!.relay.connections, opened, `nginx had to open new connections\n${why()}`);
  });
});
