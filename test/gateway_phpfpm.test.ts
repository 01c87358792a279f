// The gateway in front of a real PHP-FPM, served over HTTP by listenHttp (Deno.serve, Bun.serve,
// or node:http through toNodeHandler, whichever runtime runs the test): what a browser would see.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gateway, type Gateway } from "../src/client/gateway.ts";
import { listenHttp, type HttpServer } from "../src/runtime/http.ts";
import { phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";
import { within } from "./_support/poll.ts";

const skip = phpFpmSkip();
const MiB = 1024 * 1024;
const PWNED = "PWNED-" + "by-evil-jpg";

const SCRIPTS: Record<string, string> = {
  "index.php": `<?php header("Content-Type: application/json"); echo json_encode([
    "front" => true, "script" => $_SERVER["SCRIPT_NAME"], "uri" => $_SERVER["REQUEST_URI"],
    "query" => $_SERVER["QUERY_STRING"], "get" => $_GET, "remote" => $_SERVER["REMOTE_ADDR"] ?? null,
  ]);`,
  "app.php": `<?php header("Content-Type: application/json"); echo json_encode([
    "script" => $_SERVER["SCRIPT_NAME"], "filename" => $_SERVER["SCRIPT_FILENAME"],
    "path_info" => $_SERVER["PATH_INFO"] ?? null, "uri" => $_SERVER["REQUEST_URI"],
  ]);`,
  "blog/index.php": `<?php echo "blog index";`,
  "input.php": `<?php $ctx = hash_init("sha256"); $n = 0; $in = fopen("php://input", "rb");
    while (!feof($in)) { $chunk = fread($in, 65536); $n += strlen($chunk); hash_update($ctx, $chunk); }
    echo $n, " ", hash_final($ctx);`,
  "form.php": `<?php echo $_POST["name"] ?? "none", "/", $_POST["city"] ?? "none";`,
  "cookies.php": `<?php setcookie("a", "1"); setcookie("b", "2"); header("Location: /app.php/after"); http_response_code(302);`,
  "big.php": `<?php for ($i = 0; $i < 64; $i++) { echo str_repeat("z", 65536); flush(); }`,
  "slow.php": `<?php usleep(600000); echo "slow done";`,
  "style.css": "body { color: blue }\n",
  "uploads/evil.jpg": `\xff\xd8\xff<?php echo "${PWNED}"; ?>`,
};

let dir: string;
let root: string;
let php: PhpFpm;
let front: Gateway;
let server: HttpServer;
let base: string;

async function get(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await within(fetch(base + path, { redirect: "manual", ...init }), 30_000, `GET ${path}`);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe("gateway in front of PHP-FPM, over HTTP", { skip }, () => {
  const ready = setup(async () => {
    dir = mkdtempSync(join(tmpdir(), "fcgi-gw-php-"));
    root = join(dir, "www");
    mkdirSync(join(root, "blog"), { recursive: true });
    mkdirSync(join(root, "uploads"));
    for (const [name, source] of Object.entries(SCRIPTS)) writeFileSync(join(root, name), source);
    writeFileSync(join(dir, "outside.php"), `<?php echo "${PWNED}";`);
    symlinkSync(join(dir, "outside.php"), join(root, "link.php"));
    // As permissive as a real site that lets PHP run any upload it is given: PHP-FPM's default
    // (.php only) would refuse evil.jpg by itself, and hide whether the gateway sent it at all.
    php = await startPhpFpm({ listen: "unix", root, maxChildren: 4, ini: { post_max_size: "64M" }, pool: { "security.limit_extensions": ".php .jpg" } });
    front = gateway({ upstream: php.address, documentRoot: root, staticFiles: true, client: { maxConnections: 4 } });
    server = await listenHttp(front, { hostname: "127.0.0.1", port: 0 });
    base = server.url.replace(/\/$/, "");
  });

  after(async () => {
    await server?.close();
    await front?.close();
    await php?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("listenHttp reports the real port for port 0", () => {
    ready();
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}/`);
  });

  it("a script with PATH_INFO, and REMOTE_ADDR from the HTTP connection", async () => {
    ready();
    const r = await get("/app.php/users/7?x=1");
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { script: "/app.php", filename: join(root, "app.php"), path_info: "/users/7", uri: "/app.php/users/7?x=1" });
    const front = JSON.parse((await get("/")).text);
    assert.equal(front.remote, "127.0.0.1");
  });

  it("the front controller answers a pretty URL with the query intact", async () => {
    ready();
    const r = JSON.parse((await get("/articles/42?page=2&q=a%20b")).text);
    assert.equal(r.front, true);
    assert.equal(r.script, "/index.php");
    assert.equal(r.uri, "/articles/42?page=2&q=a%20b");
    assert.deepEqual(r.get, { page: "2", q: "a b" });
  });

  it("a directory's index.php, and a static file with its type", async () => {
    ready();
    assert.equal((await get("/blog/")).text, "blog index");
    const css = await get("/style.css");
    assert.equal(css.text, "body { color: blue }\n");
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  });

  it("a form POST, and 10 MiB through php://input intact", async () => {
    ready();
    const form = await get("/form.php", { method: "POST", body: new URLSearchParams({ name: "Zoë", city: "Oslo" }) });
    assert.equal(form.text, "Zoë/Oslo");
    const body = new Uint8Array(10 * MiB);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 13)) & 0xff;
    const r = await get("/input.php", { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
    assert.equal(r.text, `${body.length} ${createHash("sha256").update(body).digest("hex")}`);
  });

  it("several cookies and a redirect set by PHP come through as such", async () => {
    ready();
    const r = await get("/cookies.php");
    assert.equal(r.status, 302);
    assert.equal(r.headers.get("location"), "/app.php/after");
    assert.deepEqual(r.headers.getSetCookie(), ["a=1", "b=2"]);
  });

  it("PHP code hidden in an upload never runs: /uploads/evil.jpg/x.php and friends", async () => {
    ready();
    // The gateway's own answers ("Not Found", "Bad Request"), not PHP-FPM's ("File not found.",
    // "Access denied."): nothing of these reached PHP, which here would run evil.jpg if asked.
    const expected: Array<[string, number, string]> = [
      ["/uploads/evil.jpg/x.php", 404, "Not Found\n"],
      ["/uploads/evil.jpg%00.php", 400, "Bad Request\n"],
      ["/uploads/evil.jpg%2fx.php", 400, "Bad Request\n"],
      ["/uploads/evil.jpg/x.php%0a", 400, "Bad Request\n"],
    ];
    for (const [path, status, text] of expected) {
      const r = await get(path);
      assert.ok(!r.text.includes(PWNED), `${path} ran the upload: ${r.status} ${r.text}`);
      assert.deepEqual({ status: r.status, text: r.text }, { status, text }, path);
    }
    // "/.php" is no script name: the front controller answers it, and evil.jpg stays unrun.
    const dot = await get("/uploads/evil.jpg/.php");
    assert.equal(JSON.parse(dot.text).script, "/index.php");
    // Served as a static file it is only bytes, never executed.
    const jpg = await get("/uploads/evil.jpg");
    assert.ok(jpg.headers.get("content-type")?.startsWith("image/jpeg"));
    assert.ok(jpg.text.includes(PWNED), "the static file is served as its bytes");
  });

  it("a symlink to a script outside the root does not run it", async () => {
    ready();
    const r = await get("/link.php");
    assert.equal(r.status, 404);
    assert.ok(!r.text.includes(PWNED));
  });

  it("a client that goes away mid-download leaves the gateway serving", async () => {
    ready();
    const controller = new AbortController();
    const response = await within(fetch(base + "/big.php", { signal: controller.signal }), 30_000, "big.php head");
    const reader = response.body!.getReader();
    await within(reader.read(), 30_000, "the first bytes of big.php");
    controller.abort();
    await reader.cancel().catch(() => {});
    const after = await get("/app.php");
    assert.equal(after.status, 200);
    const whole = await get("/big.php");
    assert.equal(whole.text.length, 64 * 65536);
  });

  it("close() is graceful: a request in flight finishes, then nothing listens", async () => {
    ready();
    const extra = await listenHttp(front, { hostname: "127.0.0.1", port: 0, closeTimeout: 5000 });
    const pending = within(fetch(`${extra.url}slow.php`).then((r) => r.text()), 30_000, "the request in flight");
    await new Promise((r) => setTimeout(r, 200));
    const closed = extra.close();
    assert.equal(await pending, "slow done");
    await within(closed, 10_000, "close()");
    await within(extra.finished, 1000, "finished");
    await assert.rejects(fetch(`${extra.url}app.php`));
  });
});
