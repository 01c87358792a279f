// serve() over TLS, and the Client over TLS: a trusted server, mutual TLS, and every refusal (no
// client certificate, another CA, an expired certificate, plaintext, a silent peer, an untrusted
// server) closing that connection only, with a log line, while a good web server is served after.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { serve } from "../src/app/serve.ts";
import { getRuntime } from "../src/runtime/index.ts";
import type { Runtime, TlsClientOptions } from "../src/runtime/types.ts";
import type { Server, ServeOptions } from "../src/app/types.ts";
import { makeTestCerts, opensslPath, type TestCerts } from "./_support/tls.ts";
import { waitFor, within } from "./_support/poll.ts";
import { inCI } from "./_support/env.ts";

const skip = !opensslPath && !inCI ? "openssl is not installed (skipped outside CI)" : false;

describe("serve() and the Client over TLS", { skip }, () => {
  let certs: TestCerts;
  const ready = setup(() => {
    certs = makeTestCerts();
  });
  after(() => certs?.remove());

  /** A server over TLS answering with the web server's address, logging to `lines`. */
  async function tlsServer(options: Partial<ServeOptions> & { mutual?: boolean }, lines: string[] = []): Promise<{ server: Server; address: string; paths: string[] }> {
    const paths: string[] = [];
    const server = await serve({
      listen: "127.0.0.1:0",
      fetch: (request) => {
        const path = new URL(request.url).pathname;
        paths.push(path);
        return new Response(`hello ${path}`);
      },
      tls: { cert: certs.read(certs.serverCert), key: certs.read(certs.serverKey), ...(options.mutual ? { clientCa: certs.read(certs.ca) } : {}) },
      logger: { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) },
      ...options,
    } as ServeOptions);
    const bound = server.addresses[0]!;
    assert.equal(bound.transport, "tcp");
    return { server, address: `127.0.0.1:${(bound as { port: number }).port}`, paths };
  }

  /** One GET through a fresh Client; its body, or the error it failed with. */
  async function get(address: string, tls: TlsClientOptions | undefined, path = "/x", extra: Partial<ClientOptions> = {}): Promise<string | Error> {
    const client = new Client({ address, connectTimeout: 5000, responseTimeout: 5000, onStderr: () => {}, ...(tls ? { tls } : {}), ...extra });
    try {
      const response = await client.fetch(new Request(`http://localhost${path}`));
      return `${response.status} ${await response.text()}`;
    } catch (error) {
      return error as Error;
    } finally {
      await within(client.close(), 5000, "client.close()");
    }
  }

  const trusting = (): TlsClientOptions => ({ ca: certs.read(certs.ca) });
  const withCert = (cert: string): TlsClientOptions => ({ ...trusting(), cert: certs.read(cert), key: certs.read(certs.clientKey) });

  it("serves a Client that trusts the server's CA; one that trusts another CA is refused by its own check", async () => {
    ready();
    const { server, address } = await tlsServer({});
    try {
      assert.equal(await get(address, trusting()), "200 hello /x");
      const untrusting = await get(address, { ca: certs.read(certs.otherCa) });
      assert.ok(untrusting instanceof Error, `a client trusting another CA got ${String(untrusting)}`);
      assert.match(untrusting.message, /certificate/i);
      // The name checked is the address's host: the certificate is for 127.0.0.1, not for example.org.
      const wrongName = await get(address, { ...trusting(), servername: "example.org" });
      assert.ok(wrongName instanceof Error, `a client expecting example.org got ${String(wrongName)}`);
      assert.equal(await get(address, trusting(), "/after"), "200 hello /after");
    } finally {
      await server.close();
    }
  });

  it("mutual TLS: a web server with a certificate from the client CA is served", async () => {
    ready();
    const { server, address } = await tlsServer({ mutual: true });
    try {
      assert.equal(await get(address, withCert(certs.clientCert)), "200 hello /x");
      // Several requests on kept connections, and several connections.
      const client = new Client({ address, tls: withCert(certs.clientCert), maxConnections: 3, onStderr: () => {} });
      try {
        const bodies = await Promise.all(Array.from({ length: 6 }, async (_, i) => (await client.fetch(new Request(`http://localhost/${i}`))).text()));
        assert.deepEqual(bodies, Array.from({ length: 6 }, (_, i) => `hello /${i}`));
      } finally {
        await client.close();
      }
    } finally {
      await server.close();
    }
  });

  const refusals: Array<[string, () => TlsClientOptions | undefined, RegExp]> = [
    ["no client certificate", () => trusting(), /certificate/i],
    ["a certificate from another CA", () => withCert(certs.otherClientCert), /certificate|verify|issuer|unknown ca|alert/i],
    ["an expired certificate", () => withCert(certs.expiredClientCert), /expired|certificate|alert/i],
    ["a plaintext FastCGI client", () => undefined, /./],
  ];
  for (const [what, tls, logged] of refusals) {
    it(`mutual TLS refuses ${what}, logs it, and serves a good web server afterwards`, async () => {
      ready();
      const lines: string[] = [];
      const { server, address, paths } = await tlsServer({ mutual: true }, lines);
      try {
        const refused = await get(address, tls(), "/secret");
        assert.ok(refused instanceof Error, `${what} was answered: ${String(refused)}`);
        await waitFor(() => lines.some((l) => l.startsWith("refused a TLS connection from 127.0.0.1")), 5000, "the refusal's log line");
        const line = lines.find((l) => l.startsWith("refused a TLS connection"))!;
        assert.match(line, logged);
        assert.deepEqual(paths, [], "a request reached the app");
        assert.equal(await get(address, withCert(certs.clientCert), "/after"), "200 hello /after");
      } finally {
        await server.close();
      }
    });
  }

  it("closes a peer that never starts its handshake within paramsTimeout", async () => {
    ready();
    const lines: string[] = [];
    const { server, address } = await tlsServer({ mutual: true, paramsTimeout: 300 }, lines);
    try {
      const port = Number(address.split(":")[1]);
      const closed = await within(new Promise<boolean>((resolve) => {
        const socket = netConnect({ host: "127.0.0.1", port });
        socket.on("error", () => {});
        socket.on("close", () => resolve(true));
      }), 10_000, "the silent peer to be closed");
      assert.equal(closed, true);
      assert.equal(await get(address, withCert(certs.clientCert)), "200 hello /x");
    } finally {
      await server.close();
    }
  });

  it("connections still in their handshake count towards maxConnections: one more is closed at once, with a log line", async () => {
    ready();
    const lines: string[] = [];
    const { server, address } = await tlsServer({ mutual: true, maxConnections: 3, paramsTimeout: 20_000 }, lines);
    const port = Number(address.split(":")[1]);
    const silent: ReturnType<typeof netConnect>[] = [];
    try {
      // Three peers that connect and never say a word hold the three places...
      for (let i = 0; i < 3; i++) {
        const socket = netConnect({ host: "127.0.0.1", port });
        socket.on("error", () => {});
        await new Promise((resolve) => socket.once("connect", resolve));
        silent.push(socket);
      }
      // ...so a fourth is closed long before the 20 s handshake timeout, and the log says why.
      const started = Date.now();
      await within(new Promise<void>((resolve) => {
        const socket = netConnect({ host: "127.0.0.1", port });
        socket.on("error", () => {});
        socket.on("close", () => resolve());
      }), 5000, "the fourth connection to be closed");
      assert.ok(Date.now() - started < 5000);
      await waitFor(() => lines.some((line) => /refused a TLS connection from 127\.0\.0\.1: 3 connections are open or in their handshake \(maxConnections\)/.test(line)), 2000, "the log line");
      assert.ok(silent.every((socket) => !socket.destroyed), "the silent peers are still within their handshake time");
      assert.equal(server.status().refused["maxConnections"], 1, "counted as the limit that refused it");
      // Once they go, their places are free again.
      for (const socket of silent) socket.destroy();
      let answer: string | Error = "";
      for (let i = 0; i < 20 && answer !== "200 hello /x"; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
        answer = await get(address, withCert(certs.clientCert));
      }
      assert.equal(answer, "200 hello /x");
    } finally {
      for (const socket of silent) socket.destroy();
      await server.close();
    }
  });

  it("TLS and the allow-list combine: a good certificate from an address not allowed is refused", async () => {
    ready();
    const lines: string[] = [];
    const refused = await tlsServer({ mutual: true, allow: "127.0.0.9" }, lines);
    try {
      assert.ok((await get(refused.address, withCert(certs.clientCert))) instanceof Error);
      assert.ok(lines.some((l) => /refused a connection from 127\.0\.0\.1: not in the allowed/.test(l)), lines.join("\n"));
    } finally {
      await refused.server.close();
    }
    const allowed = await tlsServer({ mutual: true, allow: "127.0.0.1" });
    try {
      assert.equal(await get(allowed.address, withCert(certs.clientCert)), "200 hello /x");
    } finally {
      await allowed.server.close();
    }
  });

  it("reloadTls() switches the certificate for new connections, and refuses what cannot be used", async () => {
    ready();
    const { server, address } = await tlsServer({ mutual: true });
    try {
      const kept = new Client({ address, tls: withCert(certs.clientCert), onStderr: () => {} });
      try {
        assert.equal(await (await kept.fetch(new Request("http://localhost/before"))).text(), "hello /before");
        const next = { cert: certs.read(certs.serverCert2), key: certs.read(certs.serverKey), clientCa: certs.read(certs.ca) };
        assert.throws(() => server.reloadTls({ ...next, key: "not a key" }), /tls: the certificate, key or client CA cannot be used/);
        assert.throws(() => server.reloadTls({ cert: next.cert, key: next.key }), /cannot remove the client CA/);
        // Both refused: still the first certificate.
        assert.equal(await get(address, withCert(certs.clientCert)), "200 hello /x");
        server.reloadTls(next);
        // The kept connection keeps its session; new connections get the new certificate.
        assert.equal(await (await kept.fetch(new Request("http://localhost/kept"))).text(), "hello /kept");
      } finally {
        await kept.close();
      }
      assert.ok((await get(address, withCert(certs.clientCert))) instanceof Error, "a client trusting only the old CA still connected");
      assert.equal(await get(address, { ...withCert(certs.clientCert), ca: certs.read(certs.otherCa) }), "200 hello /x");
    } finally {
      await server.close();
    }
  });

  it("refuses to start with a certificate or key it cannot use, saying so", async () => {
    ready();
    await assert.rejects(tlsServer({ tls: { cert: certs.read(certs.serverCert), key: certs.read(certs.clientKey) } }), /tls: the certificate, key or client CA cannot be used/);
    await assert.rejects(tlsServer({ tls: { cert: "garbage", key: certs.read(certs.serverKey) } }), /tls: the certificate, key or client CA cannot be used/);
    await assert.rejects(tlsServer({ tls: { cert: certs.read(certs.serverCert) } as never }), /tls: key must be PEM text/);
  });

  it("fails closed with a socket adapter that ignores the tls option", async () => {
    ready();
    const real = await getRuntime("node");
    const plaintextOnly: Runtime = { name: "node", connect: real.connect, listen: (address, accept) => real.listen(address, accept) };
    await assert.rejects(tlsServer({ runtime: plaintextOnly }), /does not serve TLS.*not listening without it/);
  });

  it("a Client with a certificate but no key is refused before connecting", async () => {
    ready();
    const { server, address } = await tlsServer({});
    try {
      const result = await get(address, { ...trusting(), cert: certs.read(certs.clientCert) });
      assert.ok(result instanceof Error);
      assert.match(result.message, /a client certificate needs its key/);
    } finally {
      await server.close();
    }
  });
});
