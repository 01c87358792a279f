// `fcgi serve --request-timeout` behind a real nginx (the README snippet, examples/nginx.conf, with
// kept connections): a handler that never settles is a 504 for the HTTP client within the timeout,
// the app logs it, and the kept FastCGI connection goes on serving.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CountingRelay,
  type Service,
  fetchWithin,
  freePort,
  makeTempDir,
  mustHave,
  renderExample,
  startApp,
  startCountingRelay,
  startNginx,
  webServerBinary,
  stopAll,
  logsOf,
} from "./_servers.ts";

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
  let dir = "";
  const services: Service[] = [];
  let relay: CountingRelay | undefined;
  let app: Service;
  let base = "";

  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    dir = makeTempDir();
    const module = join(dir, "app.mjs");
    writeFileSync(module, APP);
    const appAddress = `127.0.0.1:${await freePort()}`;
    app = await startApp(module, appAddress, ["--request-timeout", `${TIMEOUT / 1000}s`]);
    services.push(app);
    relay = await startCountingRelay(appAddress);
    const port = await freePort();
    const site = renderExample("nginx.conf", [
      ["server 127.0.0.1:9000;", `server 127.0.0.1:${relay.port};`],
      ["listen 8080;", `listen 127.0.0.1:${port};`],
    ]);
    const nginx = await startNginx(binary, dir, site, [port]);
    services.push(nginx);
    base = nginx.urls[0]!;
  });

  after(async () => {
    await relay?.close();
    await stopAll(services, dir);
  });

  const why = (): string => logsOf(services);

  it("a handler that never settles is a 504 within the timeout, logged, and the kept connection serves the next requests", async () => {
    ready();
    assert.equal((await fetchWithin(`${base}/`)).status, 200, why());
    const opened = relay!.connections;
    const started = Date.now();
    const hung = await fetchWithin(`${base}/hang?id=7`, {}, TIMEOUT + 5000);
    const took = Date.now() - started;
    assert.equal(hung.status, 504, why());
    assert.ok(took >= TIMEOUT - 50 && took < TIMEOUT + 1500, `answered after ${took} ms`);
    assert.match(app.logs(), /GET \/hang\?id=7\): ran \d+ ms, past requestTimeout/);
    for (let i = 0; i < 5; i++) assert.equal((await fetchWithin(`${base}/`)).text, "ok", why());
    assert.equal(relay!.closedByTarget, 0, `the app closed a kept connection\n${why()}`);
    assert.equal(relay!.connections, opened, `nginx had to open new connections\n${why()}`);
  });
});
