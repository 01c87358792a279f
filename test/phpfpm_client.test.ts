// The Client against a real PHP-FPM, started from a temporary pool config, with the PHP scripts
// written by the test: queries, forms, uploads, 10 MiB through php://input, status, cookies,
// redirects, error_log() on FCGI_STDERR, 200 concurrent requests, abort, and PHP-FPM killed mid-response.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, type ClientOptions } from "../src/client/client.ts";
import { FastCGIError } from "../src/errors.ts";
import { phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";
import { waitFor, within } from "./_support/poll.ts";

const skip = phpFpmSkip();
const MiB = 1024 * 1024;

/** The PHP scripts the tests run. */
const SCRIPTS: Record<string, string> = {
  "hello.php": `<?php echo "hello";`,
  "get.php": `<?php header("Content-Type: application/json"); echo json_encode([
    "get" => $_GET,
    "method" => $_SERVER["REQUEST_METHOD"],
    "query" => $_SERVER["QUERY_STRING"],
    "uri" => $_SERVER["REQUEST_URI"],
    "script" => $_SERVER["SCRIPT_NAME"],
    "self" => $_SERVER["PHP_SELF"],
    "header" => $_SERVER["HTTP_X_TEST"] ?? null,
    "proxy" => getenv("HTTP_PROXY") ?: ($_SERVER["HTTP_PROXY"] ?? null),
    "remote" => $_SERVER["REMOTE_ADDR"] ?? null,
    "https" => $_SERVER["HTTPS"] ?? null,
  ]);`,
  "post.php": `<?php header("Content-Type: application/json");
    $files = [];
    foreach ($_FILES as $k => $f) $files[$k] = ["name" => $f["name"], "size" => $f["size"], "error" => $f["error"], "md5" => $f["error"] === 0 ? md5_file($f["tmp_name"]) : null];
    echo json_encode(["post" => $_POST, "files" => $files, "type" => $_SERVER["CONTENT_TYPE"] ?? null]);`,
  "input.php": `<?php $ctx = hash_init("sha256"); $n = 0; $in = fopen("php://input", "rb");
    while (!feof($in)) { $chunk = fread($in, 65536); $n += strlen($chunk); hash_update($ctx, $chunk); }
    echo $n, " ", hash_final($ctx), " ", $_SERVER["CONTENT_LENGTH"];`,
  "status.php": `<?php header("HTTP/1.1 404 Not Found"); header("X-Custom: yes");
    setcookie("a", "1"); setcookie("b", "two", ["path" => "/x", "httponly" => true]); setcookie("c", "3");
    echo "missing";`,
  "teapot.php": `<?php header("Status: 418 I'm a teapot"); echo "short and stout";`,
  "redirect.php": `<?php header("Location: /elsewhere.php?from=redirect");`,
  "nocontent.php": `<?php http_response_code(204);`,
  "log.php": `<?php error_log("message from php: zoë"); echo "logged";`,
  "big.php": `<?php echo str_repeat("0123456789abcdef", 65536 * 2);`,
  "sleep.php": `<?php sleep(3); echo "slept";`,
  "drip.php": `<?php for ($i = 0; $i < 100; $i++) { echo str_repeat("x", 1000), "\\n"; flush(); usleep(50000); }`,
};

function writeScripts(root: string): void {
  for (const [name, source] of Object.entries(SCRIPTS)) writeFileSync(join(root, name), source);
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function pattern(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

for (const listen of ["unix", "tcp"] as const) {
  describe(`Client against PHP-FPM over ${listen === "unix" ? "a Unix socket" : "TCP"}`, { skip }, () => {
    let root = "";
    let fpm: PhpFpm | undefined;
    let client: Client;
    const logs: string[] = [];

    const options = (extra: Partial<ClientOptions> = {}): ClientOptions => ({
      address: fpm!.address,
      maxConnections: 8,
      onStderr: (message) => logs.push(message),
      ...extra,
    });
    const get = (path: string, init?: RequestInit) => client.fetch(new Request(`http://localhost${path}`, init), { documentRoot: root });

    const ready = setup(async () => {
      root = mkdtempSync(join(tmpdir(), "fcgi-php-root-"));
      writeScripts(root);
      fpm = await startPhpFpm({ listen, root, maxChildren: 8, ini: { post_max_size: "64M", upload_max_filesize: "64M" } });
      client = new Client(options());
    });

    after(async () => {
      await client?.close().catch(() => {});
      await fpm?.stop();
      rmSync(root, { recursive: true, force: true });
    });

    it("GET with a query: PHP sees $_GET, the method, the URI and the script name", async () => {
      ready();
      const response = await get("/get.php?a=1&b[]=x&b[]=y&c=%C3%A9", { headers: { "X-Test": "header value", Proxy: "http://evil.example:8080" } });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      const body = await response.json();
      assert.deepEqual(body.get, { a: "1", b: ["x", "y"], c: "é" });
      assert.equal(body.method, "GET");
      assert.equal(body.query, "a=1&b[]=x&b[]=y&c=%C3%A9");
      assert.equal(body.uri, "/get.php?a=1&b[]=x&b[]=y&c=%C3%A9");
      assert.equal(body.script, "/get.php");
      assert.equal(body.self, "/get.php");
      assert.equal(body.header, "header value");
      assert.equal(body.proxy, null, "a Proxy header never becomes HTTP_PROXY (httpoxy)");
    });

    it("caller params reach PHP, overriding the built ones", async () => {
      ready();
      const response = await client.fetch(new Request("http://localhost/get.php"), { documentRoot: root, params: { REMOTE_ADDR: "203.0.113.5", HTTPS: "on" } });
      const body = await response.json();
      assert.equal(body.remote, "203.0.113.5");
      assert.equal(body.https, "on");
    });

    it("POST of a urlencoded form fills $_POST", async () => {
      ready();
      const form = new URLSearchParams({ name: "Zoë", list: "1,2" });
      const response = await get("/post.php", { method: "POST", body: form });
      const body = await response.json();
      assert.deepEqual(body.post, { name: "Zoë", list: "1,2" });
      assert.match(body.type, /^application\/x-www-form-urlencoded/);
    });

    it("a multipart upload arrives in $_FILES with the right size and hash", async () => {
      ready();
      const file = pattern(300_000);
      const form = new FormData();
      form.append("title", "an upload");
      form.append("doc", new Blob([file], { type: "application/octet-stream" }), "data.bin");
      const response = await get("/post.php", { method: "POST", body: form });
      const body = await response.json();
      assert.deepEqual(body.post, { title: "an upload" });
      assert.equal(body.files.doc.name, "data.bin");
      assert.equal(body.files.doc.size, file.length);
      assert.equal(body.files.doc.error, 0);
      assert.equal(body.files.doc.md5, createHash("md5").update(file).digest("hex"));
    });

    it("10 MiB streamed through php://input arrives whole (hash checked)", async () => {
      ready();
      const data = pattern(10 * MiB);
      // Streamed in 256 KiB pieces with its Content-Length: never buffered whole by the client.
      let at = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= data.length) return controller.close();
          controller.enqueue(data.subarray(at, at + 256 * 1024));
          at += 256 * 1024;
        },
      });
      const request = new Request("http://localhost/input.php", {
        method: "POST",
        body: stream,
        headers: { "content-type": "application/octet-stream", "content-length": String(data.length) },
        duplex: "half",
      } as RequestInit);
      const response = await within(client.fetch(request, { documentRoot: root }), 60_000, "the 10 MiB upload");
      assert.equal(await response.text(), `${data.length} ${sha256(data)} ${data.length}`);
    });

    it("a 2 MiB response streams back whole", async () => {
      ready();
      const response = await get("/big.php");
      const body = new Uint8Array(await response.arrayBuffer());
      assert.equal(body.length, 2 * MiB);
      assert.equal(new TextDecoder().decode(body.subarray(0, 20)), "0123456789abcdef0123");
    });

    it("status, a custom header and several cookies set by PHP", async () => {
      ready();
      const response = await get("/status.php");
      assert.equal(response.status, 404);
      assert.equal(response.statusText, "Not Found");
      assert.equal(response.headers.get("x-custom"), "yes");
      const cookies = response.headers.getSetCookie();
      assert.equal(cookies.length, 3);
      assert.equal(cookies[0], "a=1");
      assert.match(cookies[1]!, /^b=two; path=\/x; HttpOnly$/i);
      assert.equal(cookies[2], "c=3");
      assert.equal(await response.text(), "missing");
      const teapot = await get("/teapot.php");
      assert.equal(teapot.status, 418);
      assert.equal(teapot.statusText, "I'm a teapot");
      assert.equal(await teapot.text(), "short and stout");
    });

    it("a redirect set by PHP is a 302 with its Location, not followed", async () => {
      ready();
      const response = await get("/redirect.php");
      assert.equal(response.status, 302);
      assert.equal(response.headers.get("location"), "/elsewhere.php?from=redirect");
      await response.arrayBuffer();
    });

    it("a 204 from PHP has no body", async () => {
      ready();
      const response = await get("/nocontent.php");
      assert.equal(response.status, 204);
      assert.equal(response.body, null);
    });

    it("a missing script is PHP-FPM's own 404 (\"Primary script unknown\" on FCGI_STDERR)", async () => {
      ready();
      const before = logs.length;
      const response = await get("/nope.php");
      assert.equal(response.status, 404);
      await response.arrayBuffer();
      assert.ok(logs.slice(before).some((l) => /Primary script unknown/.test(l)), logs.slice(before).join("\n"));
    });

    it("error_log() in PHP arrives through FCGI_STDERR at onStderr", async () => {
      ready();
      const before = logs.length;
      const response = await get("/log.php");
      assert.equal(await response.text(), "logged");
      assert.ok(logs.slice(before).some((l) => l.includes("message from php: zoë")), logs.slice(before).join("\n"));
    });

    it("200 concurrent requests through a pool of 8 connections", async () => {
      ready();
      const results = await within(
        Promise.all(Array.from({ length: 200 }, () => get("/hello.php").then(async (r) => [r.status, await r.text()] as const))),
        60_000,
        "200 requests",
      );
      assert.equal(results.length, 200);
      assert.ok(results.every(([status, text]) => status === 200 && text === "hello"));
      const stats = client.stats();
      assert.ok(stats.connections <= 8, `${stats.connections} connections`);
      assert.equal(stats.queued, 0);
    });

    it("GET_VALUES: PHP-FPM says it does not multiplex", async () => {
      ready();
      const values = await client.values();
      assert.equal(values.FCGI_MPXS_CONNS, "0");
      assert.equal((await client.limits()).multiplex, false);
    });

    it("an abort while PHP sleeps rejects promptly, and the pool stays usable", async () => {
      ready();
      const controller = new AbortController();
      const pending = get("/sleep.php", { signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      controller.abort();
      await assert.rejects(pending, (e: unknown) => (e as Error).name === "AbortError");
      assert.ok(Date.now() - started < 500, "rejected promptly");
      const next = await within(get("/hello.php"), 5000, "a request after the abort");
      assert.equal(await next.text(), "hello");
    });
  });
}

describe("Client when PHP-FPM dies mid-response", { skip }, () => {
  let root = "";
  let fpm: PhpFpm | undefined;

  const ready = setup(() => {
    root = mkdtempSync(join(tmpdir(), "fcgi-php-root-"));
    writeScripts(root);
  });

  after(async () => {
    await fpm?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("SIGKILL of master and workers while PHP flushes output makes the body fail with CONNECTION_CLOSED", async () => {
    ready();
    fpm = await startPhpFpm({ listen: "unix", root, maxChildren: 2 });
    const client = new Client({ address: fpm.address, onStderr: () => {} });
    try {
      const response = await client.fetch(new Request("http://localhost/drip.php"), { documentRoot: root });
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      let received = 0;
      while (received < 5000) {
        const { done, value } = await within(reader.read(), 5000, "the first dripped lines");
        assert.equal(done, false);
        received += value!.length;
      }
      await fpm.kill();
      const failure = await within((async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return null;
          received += value.length;
        }
      })().then(() => null, (e: unknown) => e), 10_000, "the body to fail");
      assert.ok(failure instanceof FastCGIError, `the body failed (got ${String(failure)} after ${received} bytes)`);
      assert.equal(failure.code, "CONNECTION_CLOSED");
      // drip.php sends 100 lines of 1001 bytes: 101_000 or more could never arrive, fewer than all of them must.
      assert.ok(received < 100 * 1001, `the body was cut, and said so (got all ${received} bytes)`);
      // The backend is gone: the next request fails with a connect error, not a hang.
      await assert.rejects(within(client.fetch(new Request("http://localhost/hello.php"), { documentRoot: root }), 10_000, "a request to a dead backend"));
      await waitFor(() => client.stats().connections === 0, 5000, "no connection left");
    } finally {
      await within(client.close(), 5000, "client.close()").catch(() => {});
    }
  });
});
