// HAProxy → fcgi serve over TLS with the README's config (examples/haproxy-tls.conf): HAProxy checks
// the app's certificate (ssl verify required ca-file) and shows its own (crt), which the app
// requires (--tls-client-ca). A HAProxy without a certificate, or one trusting another CA, gets no
// answer from the app. Runs `fcgi serve` on the runtime running the tests.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { sourcePath } from "../_support/env.ts";
import { makeTestCerts, opensslPath, type TestCerts } from "../_support/tls.ts";
import { fetchWithin, freePort, makeTempDir, mustHave, removeDir, renderExample, type Service, startApp, startHaproxy, stopAll, webServerBinary, type WebServer } from "./_servers.ts";

const haproxy = webServerBinary("haproxy");
const hello = sourcePath("examples/hello.ts");

describe("HAProxy → fcgi serve over TLS (ssl verify required, crt: mutual TLS)", { skip: haproxy.skip || (opensslPath ? false : "openssl is not installed") }, () => {
  let dir: string;
  let certs: TestCerts;
  let app: Service;
  let appAddress: string;
  const services: Service[] = [];
  const ready = setup(async () => {
    mustHave(haproxy.path, "haproxy");
    dir = makeTempDir("fcgi-haproxy-tls-");
    certs = makeTestCerts();
    appAddress = `127.0.0.1:${await freePort()}`;
    app = await startApp(hello, appAddress, ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca]);
    services.push(app);
  });
  after(async () => {
    await stopAll(services);
    certs?.remove();
    if (dir) removeDir(dir);
  });

  /** HAProxy from the example, with the server line's TLS settings replaced by `serverTls`. */
  async function front(serverTls: string): Promise<WebServer> {
    const port = await freePort();
    const config = renderExample("haproxy-tls.conf", [
      ["bind :8080", `bind 127.0.0.1:${port}`],
      ["server app1 127.0.0.1:9000 proto fcgi ssl verify required ca-file /etc/haproxy/app-ca.pem crt /etc/haproxy/web-server.pem", `server app1 ${appAddress} proto fcgi ${serverTls}`],
      ["docroot /var/www/app", `docroot ${dir}`],
    ]);
    const server = await startHaproxy(haproxy.path!, dir, config, port);
    services.push(server);
    return server;
  }

  /**
   * Asks through `server` until the app logs a refusal matching `pattern` (bounded): the app logs
   * one TLS refusal a second, so one right after another test's may be counted, not shown.
   */
  async function refusedWith(server: WebServer, pattern: RegExp): Promise<void> {
    const before = app.logs().length;
    for (let attempt = 0; attempt < 8; attempt++) {
      // HAProxy may close a kept client connection after its 503: undici then fails the next fetch.
      const response = await fetchWithin(`${server.urls[0]}/`).catch((error: Error) => ({ status: 599, text: error.message }));
      assert.ok(response.status >= 500, `status ${response.status}: ${response.text}`);
      if (pattern.test(app.logs().slice(before))) return;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.match(app.logs().slice(before), pattern);
  }

  it("serves through HAProxy when each side's certificate checks out", async () => {
    ready();
    const server = await front(`ssl verify required ca-file ${certs.ca} crt ${certs.clientBundle}`);
    try {
      for (let i = 0; i < 5; i++) {
        const response = await fetchWithin(`${server.urls[0]}/`, { headers: { "user-agent": `haproxy-tls-${i}` } });
        assert.equal(response.status, 200, server.logs() + app.logs());
        assert.equal(response.text, `hello from fcgi, haproxy-tls-${i}\n`);
      }
      const missing = await fetchWithin(`${server.urls[0]}/nope`);
      assert.equal(missing.status, 404);
    } finally {
      await server.stop();
    }
  });

  it("the app refuses a HAProxy without a client certificate, and logs it", async () => {
    ready();
    const server = await front(`ssl verify required ca-file ${certs.ca}`);
    try {
      await refusedWith(server, /refused a TLS connection from 127\.0\.0\.1: .*certificate/i);
    } finally {
      await server.stop();
    }
  });

  it("the app refuses a HAProxy whose certificate another CA signed", async () => {
    ready();
    const bundle = `${certs.dir}/other-bundle.pem`;
    writeFileSync(bundle, certs.read(certs.otherClientCert) + certs.read(certs.clientKey));
    const server = await front(`ssl verify required ca-file ${certs.ca} crt ${bundle}`);
    try {
      await refusedWith(server, /refused a TLS connection from 127\.0\.0\.1: .*certificate/i);
    } finally {
      await server.stop();
    }
  });

  it("HAProxy refuses an app whose certificate its ca-file does not vouch for", async () => {
    ready();
    const server = await front(`ssl verify required ca-file ${certs.otherCa} crt ${certs.clientBundle}`);
    try {
      const response = await fetchWithin(`${server.urls[0]}/`);
      assert.ok(response.status >= 500, `status ${response.status}: ${response.text}`);
    } finally {
      await server.stop();
    }
    // And the app still serves a HAProxy it trusts afterwards.
    const good = await front(`ssl verify required ca-file ${certs.ca} crt ${certs.clientBundle}`);
    try {
      assert.equal((await fetchWithin(`${good.urls[0]}/`)).status, 200);
    } finally {
      await good.stop();
    }
  });
});
