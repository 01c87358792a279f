// fcgi serve behind a real nginx, configured with the README snippet (examples/nginx.conf):
// requests, bodies both ways, status codes, redirects, cookies, FCGI_KEEP_CONN on and off,
// over TCP and over a Unix socket.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { sourcePath } from "../_support/env.ts";
import { patternBytes, sha256 } from "./app.ts";
import {
  type CountingRelay,
  type Service,
  type WebServer,
  expectDownload,
  expectHello,
  expectUpload,
  fetchWithin,
  freePort,
  makeTempDir,
  mustHave,
  renderExample,
  startApp,
  startCountingRelay,
  startNginx,
  webServerBinary,
  withTimeout,
  stopAll,
  logsOf,
} from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");
const MiB = 1024 * 1024;

/**
 * One request written to a raw TCP connection with `Connection: close`, and every byte the server
 * sent until it closed (fetch() drops whatever follows the headers of a HEAD answer, so it cannot
 * show whether a body came).
 */
function rawExchange(base: string, request: string, timeoutMs = 10_000): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was not closed within ${timeoutMs} ms; got ${JSON.stringify(data)}`));
    }, timeoutMs);
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (data += d));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.write(request);
  });
}

/** The README snippet with its upstream, listen port and (optionally) keep_conn rewritten. */
function site(name: string, upstream: string, port: number, keepConn = true): string {
  const replacements: Array<[string, string]> = [
    ["fcgi_app", name],
    ["server 127.0.0.1:9000;", `server ${upstream};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
  ];
  if (!keepConn) replacements.push(["fastcgi_keep_conn on;", "fastcgi_keep_conn off;"]);
  return renderExample("nginx.conf", replacements);
}

describe("fcgi serve behind nginx", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  const relays: CountingRelay[] = [];
  let nginx: WebServer;
  let tcp = "", unix = "", keepOn = "", keepOff = "";
  let keepOnRelay: CountingRelay, keepOffRelay: CountingRelay;

  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    dir = makeTempDir();
    const module = sourcePath("test/interop/app.ts");
    const appAddress = `127.0.0.1:${await freePort()}`;
    const socket = join(dir, "app.sock");
    // Started together (startup dominates), but each one that did start is stopped in after().
    const started = await Promise.allSettled([startApp(module, appAddress), startApp(module, socket)]);
    for (const s of started) if (s.status === "fulfilled") services.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    keepOnRelay = await startCountingRelay(appAddress);
    keepOffRelay = await startCountingRelay(appAddress);
    relays.push(keepOnRelay, keepOffRelay);
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    nginx = await startNginx(binary, dir, [
      site("app_tcp", appAddress, ports[0]),
      site("app_unix", `unix:${socket}`, ports[1]),
      site("app_keep_on", `127.0.0.1:${keepOnRelay.port}`, ports[2]),
      site("app_keep_off", `127.0.0.1:${keepOffRelay.port}`, ports[3], false),
    ].join("\n"), ports);
    services.push(nginx);
    [tcp, unix, keepOn, keepOff] = nginx.urls;
  });

  after(async () => {
    for (const relay of relays) await relay.close();
    await stopAll(services, dir);
  });

  // If a test fails, the logs say why (nginx's error log names the upstream problem).
  const why = (): string => logsOf(services);

  for (const [transport, base] of [["TCP", () => tcp], ["a Unix socket", () => unix]] as const) {
    it(`answers a GET with a query string over ${transport}`, async () => {
      ready();
      const fcgiPeer = await expectHello(base(), why, true);
      // nginx's end of the FastCGI connection: an address and port over TCP, none over a Unix
      // socket (both sites reach the same app, so this is what tells the transports apart).
      if (transport === "TCP") assert.match(fcgiPeer, /^127\.0\.0\.1:\d+$/);
      else assert.doesNotMatch(fcgiPeer, /^127\.0\.0\.1:\d+$/, "the Unix-socket site reached the app over TCP");
    });

    it(`streams a 10 MiB upload to the handler intact over ${transport}`, async () => {
      ready();
      await expectUpload(base(), why);
    });

    it(`streams a 10 MiB download to the client intact over ${transport}`, async () => {
      ready();
      await expectDownload(base(), why);
    });
  }

  it("decodes a urlencoded form POST", async () => {
    ready();
    const form = new URLSearchParams({ name: "Ada Lovelace", note: "a & b = c", check: "✓ café" });
    const r = await fetchWithin(`${tcp}/form`, { method: "POST", body: form });
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text), { name: "Ada Lovelace", note: "a & b = c", check: "✓ café" });
  });

  it("decodes a multipart form POST with a file", async () => {
    ready();
    const form = new FormData();
    form.append("title", "report");
    form.append("file", new Blob([patternBytes(70_000)]), "data.bin");
    const r = await fetchWithin(`${tcp}/form`, { method: "POST", body: form });
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text), { title: "report", file: "file:data.bin:70000" });
  });

  it("passes the request body and its content type to the handler", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/echo`, { method: "PUT", body: "plain words", headers: { "content-type": "text/plain" } });
    assert.equal(r.status, 200, why());
    const echo = JSON.parse(r.text);
    assert.equal(echo.method, "PUT");
    assert.equal(echo.body, "plain words");
    assert.equal(echo.contentType, "text/plain");
  });

  it("answers HEAD with the headers and no body", async () => {
    ready();
    const cases: Array<[string, RegExp, string[]]> = [
      ["/echo", /^application\/json/, []],
      ["/cookies", /^text\/plain/, ["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Max-Age=60"]],
    ];
    for (const [path, contentType, cookies] of cases) {
      const host = new URL(tcp).host;
      const raw = await rawExchange(tcp, `HEAD ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      const end = raw.indexOf("\r\n\r\n");
      assert.ok(end > 0, `HEAD ${path}: no complete header block in ${JSON.stringify(raw)}\n${why()}`);
      const [statusLine, ...fields] = raw.slice(0, end).split("\r\n");
      assert.match(statusLine!, /^HTTP\/1\.1 200 OK$/, `HEAD ${path}: ${JSON.stringify(raw)}\n${why()}`);
      const header = (name: string) =>
        fields.filter((f) => f.toLowerCase().startsWith(`${name}:`)).map((f) => f.slice(name.length + 1).trim());
      assert.equal(header("content-type").length, 1, `HEAD ${path}: one Content-Type in ${JSON.stringify(raw)}`);
      assert.match(header("content-type")[0]!, contentType, `HEAD ${path}`);
      assert.deepEqual(header("set-cookie"), cookies, `HEAD ${path}: the app's Set-Cookie headers`);
      assert.equal(raw.slice(end + 4), "", `HEAD ${path}: nothing may follow the headers`);
    }
  });

  it("sends the handler's status codes to the client", async () => {
    ready();
    for (const code of [200, 201, 204, 400, 404, 418, 500, 503]) {
      const r = await fetchWithin(`${tcp}/status?code=${code}`);
      assert.equal(r.status, code, `status ${code}\n${why()}`);
      assert.equal(r.text, code === 204 ? "" : `status ${code}\n`);
    }
  });

  it("answers an unknown route with the handler's 404, not nginx's", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/nowhere`);
    assert.equal(r.status, 404);
    assert.equal(r.text, "no such route\n");
  });

  it("passes redirects with their Location on", async () => {
    ready();
    for (const code of [301, 302, 303, 307, 308]) {
      const r = await fetchWithin(`${tcp}/redirect?code=${code}`);
      assert.equal(r.status, code, why());
      assert.equal(new URL(r.headers.get("location") ?? "", tcp).pathname + new URL(r.headers.get("location") ?? "", tcp).search, "/echo?from=redirect");
    }
  });

  it("passes several Set-Cookie headers on as separate headers", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/cookies`);
    assert.equal(r.status, 200, why());
    assert.deepEqual(r.headers.getSetCookie(), ["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Max-Age=60"]);
  });

  it("passes a long query string (params longer than 127 bytes, and than 4 KiB) intact", async () => {
    ready();
    const long = "é".repeat(300) + "x".repeat(5000);
    const r = await fetchWithin(`${tcp}/echo?long=${encodeURIComponent(long)}&short=1`);
    assert.equal(r.status, 200, why());
    assert.deepEqual(JSON.parse(r.text).query, { long, short: "1" });
  });

  it("answers 500 when the handler throws, and keeps serving", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/throw`);
    assert.equal(r.status, 500, why());
    assert.doesNotMatch(r.text, /on purpose/, "the error text stays in the log, not in the answer");
    const next = await fetchWithin(`${tcp}/echo?after=throw`);
    assert.equal(JSON.parse(next.text).query.after, "throw");
  });

  it("never lets a CR/LF in a header value become a header", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/crlf`);
    assert.equal(r.headers.get("x-injected"), null, why());
    assert.ok(r.status === 500 || r.status === 200, `status ${r.status}`);
    const next = await fetchWithin(`${tcp}/echo?after=crlf`);
    assert.equal(JSON.parse(next.text).query.after, "crlf");
  });

  it("does not put a Proxy request header into the app's environment (httpoxy)", async () => {
    ready();
    const r = await fetchWithin(`${tcp}/echo`, { headers: { proxy: "http://httpoxy.invalid:1" } });
    assert.equal(r.status, 200, why());
    assert.notEqual(JSON.parse(r.text).envProxy, "http://httpoxy.invalid:1");
  });

  it("keeps the FastCGI connection open for further requests with fastcgi_keep_conn on", async () => {
    ready();
    const before = { connections: keepOnRelay.connections, closedByApp: keepOnRelay.closedByTarget };
    const upload = patternBytes(MiB);
    for (let i = 0; i < 4; i++) {
      const hello = await fetchWithin(`${keepOn}/echo?i=${i}`);
      assert.equal(JSON.parse(hello.text).query.i, String(i), why());
      assert.equal(JSON.parse(hello.text).keepConn, true, `the app sees FCGI_KEEP_CONN: ${hello.text}`);
      const up = await fetchWithin(`${keepOn}/upload`, { method: "POST", body: upload });
      assert.equal(JSON.parse(up.text).sha256, sha256(upload));
      const down = await fetchWithin(`${keepOn}/download?bytes=${MiB}`);
      assert.equal(sha256(down.body), sha256(upload));
    }
    assert.equal(keepOnRelay.closedByTarget - before.closedByApp, 0, `the app closed a kept connection\n${why()}`);
    // 12 requests, one at a time. Usually one connection; a second one is legitimate: a response
    // with Content-Length may reach the client before nginx has read END_REQUEST, and the next
    // request can then find the first connection not yet back in nginx's keepalive cache.
    const opened = keepOnRelay.connections - before.connections;
    assert.ok(opened >= 1 && opened <= 2, `nginx opened ${opened} connections for 12 sequential requests\n${why()}`);
  });

  it("answers every request on its own connection with fastcgi_keep_conn off", async () => {
    ready();
    const before = keepOffRelay.connections;
    for (let i = 0; i < 5; i++) {
      const r = await fetchWithin(`${keepOff}/echo?i=${i}`);
      assert.equal(r.status, 200, why());
      assert.equal(JSON.parse(r.text).query.i, String(i));
      assert.equal(JSON.parse(r.text).keepConn, false, `the app sees no FCGI_KEEP_CONN (request ${i}: ${r.text}; ` +
        `relay connections: keep-off ${keepOffRelay.connections}, keep-on ${keepOnRelay.connections}; urls ${nginx.urls.join(" ")})\n${why()}`);
    }
    const up = await fetchWithin(`${keepOff}/upload`, { method: "POST", body: patternBytes(MiB) });
    assert.equal(JSON.parse(up.text).bytes, MiB);
    assert.equal(keepOffRelay.connections - before, 6);
  });

  it("keeps serving after a client goes away in the middle of a download", async () => {
    ready();
    for (const base of [keepOn, tcp]) {
      const controller = new AbortController();
      const response = await withTimeout(fetch(`${base}/download?bytes=${64 * MiB}`, { signal: controller.signal }), 30_000, "download headers");
      const reader = response.body!.getReader();
      const first = await withTimeout(reader.read(), 30_000, "first download chunk");
      assert.ok(first.value && first.value.length > 0);
      controller.abort();
      await reader.cancel().catch(() => {});
      const r = await fetchWithin(`${base}/echo?after=abort`);
      assert.equal(r.status, 200, why());
      assert.equal(JSON.parse(r.text).query.after, "abort");
    }
  });

  it("answers concurrent requests", async () => {
    ready();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => fetchWithin(`${keepOn}/echo?n=${i}`)));
    results.forEach((r, i) => assert.equal(JSON.parse(r.text).query.n, String(i), why()));
  });
});
