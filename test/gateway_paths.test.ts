// The gateway's routing and path safety, against this project's own app server as the backend:
// the backend reports the params it got, so each test sees exactly what would reach PHP-FPM,
// and that a refused request reaches nothing at all.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../src/app/serve.ts";
import type { Server } from "../src/app/types.ts";
import { gateway, safeSegments, type Gateway } from "../src/client/gateway.ts";
import { formatAddress } from "../src/address.ts";
import { NativeResponse } from "../src/native.ts";
import { listenHttp } from "../src/runtime/http.ts";

import { runtimeName } from "./_support/env.ts";
import { connect } from "node:net";
import { within } from "./_support/poll.ts";

let dir: string;
let root: string;
let server: Server;
let php: Gateway;
let phpStatic: Gateway;
let noTryFiles: Gateway;
/** `php` behind the runtime's own HTTP server, for request lines that no Request could carry. */
let http: Awaited<ReturnType<typeof listenHttp>>;
/** Every request the backend got, as the params that matter. */
const seen: Array<Record<string, string | undefined>> = [];

const NAMES = ["SCRIPT_FILENAME", "DOCUMENT_URI", "SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "QUERY_STRING", "DOCUMENT_ROOT", "REMOTE_ADDR", "REMOTE_PORT", "X_EXTRA"];

const ready = setup(async () => {
  dir = mkdtempSync(join(tmpdir(), "fcgi-gateway-"));
  root = join(dir, "www");
  mkdirSync(join(root, "uploads"), { recursive: true });
  mkdirSync(join(root, "blog"));
  mkdirSync(join(root, "empty"));
  writeFileSync(join(root, "index.php"), "<?php // front controller");
  writeFileSync(join(root, "app.php"), "<?php");
  writeFileSync(join(root, "blog", "index.php"), "<?php");
  writeFileSync(join(root, "style.css"), "body { color: red }\n");
  writeFileSync(join(root, "uploads", "evil.jpg"), "<?php system($_GET['c']); ?>");
  writeFileSync(join(dir, "secret.php"), "<?php // outside the root");
  writeFileSync(join(dir, "secret.txt"), "outside the root");
  symlinkSync(join(dir, "secret.php"), join(root, "out.php"));
  symlinkSync(join(dir, "secret.txt"), join(root, "out.txt"));
  symlinkSync(dir, join(root, "up"));
  symlinkSync(join(root, "app.php"), join(root, "alias.php"));
  server = await serve({
    listen: "127.0.0.1:0",
    logger: null,
    overrideGlobalObjects: false,
    fetch: (_request, context) => {
      const got: Record<string, string | undefined> = {};
      for (const name of NAMES) got[name] = context.params.get(name);
      seen.push(got);
      return Response.json(got);
    },
  });
  const upstream = formatAddress(server.addresses[0]!);
  php = gateway({ upstream, documentRoot: root, params: { X_EXTRA: "1" }, onError: () => {} });
  phpStatic = gateway({ upstream: php.client, documentRoot: root, staticFiles: true });
  noTryFiles = gateway({ upstream: php.client, documentRoot: root, tryFiles: false });
  http = await listenHttp(php, { hostname: "127.0.0.1", port: 0 });
});

after(async () => {
  await http?.close();
  await php?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `path` (raw, not normalized by URL parsing where it matters) and returns the response with what reached the backend. */
async function get(handler: Gateway, path: string, init: RequestInit = {}, info?: unknown) {
  const before = seen.length;
  const response = await handler(new Request("http://example.test" + path, init), info);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, reached: seen.slice(before) };
}

/** Sends `target` as the request line's target, byte for byte, to `php` behind the runtime's HTTP server. */
async function rawGet(target: string) {
  const before = seen.length;
  const data = await new Promise<string>((resolve, reject) => {
    const socket = connect(http.port, "127.0.0.1");
    let got = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to GET ${target} within 10 s: ${JSON.stringify(got)}`));
    }, 10_000);
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (got += d));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.write(`GET ${target} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n`);
  });
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  assert.ok(status, `not an HTTP answer to GET ${target}: ${JSON.stringify(data.slice(0, 200))}`);
  return { status: Number(status[1]), text: data.slice(data.indexOf("\r\n\r\n") + 4), reached: seen.slice(before) };
}

/**
 * Deno.serve hands the gateway the target as sent, and the gateway refuses it. Bun.serve resolves dot
 * segments and backslashes itself, and on Node the WHATWG Request does, before any handler runs: there
 * the path that arrives is already inside the root, and all that can be checked is where it went.
 */
const SERVER_RESOLVES_DOTS = runtimeName !== "deno";

/** `resolved`: the scripts under the root that the resolved path reaches, where the server resolves it. */
async function refusedAsSent(target: string, resolved: string[]) {
  const r = await rawGet(target);
  if (SERVER_RESOLVES_DOTS) {
    assert.ok(!r.text.includes("outside the root"), `${target} leaked a file outside the root`);
    assert.deepEqual(r.reached.map((p) => p.SCRIPT_FILENAME), resolved.map((name) => join(root, name)), `${target} went elsewhere`);
  } else {
    assert.equal(r.status, 400, `${target}: ${r.text}`);
    assert.deepEqual(r.reached, [], `${target} reached the backend`);
  }
}

async function refused(path: string, status: number) {
  const r = await get(php, path);
  assert.equal(r.status, status, `${path}: ${r.text}`);
  assert.equal(r.reached.length, 0, `${path} reached the backend: ${JSON.stringify(r.reached)}`);
}

describe("gateway routing", () => {
  it("sends a script with SCRIPT_FILENAME under the root and the original REQUEST_URI", async () => {
    ready();
    const r = await get(php, "/app.php?a=1&b=2");
    assert.equal(r.status, 200);
    assert.equal(r.reached.length, 1);
    assert.equal(r.reached[0]!.SCRIPT_FILENAME, join(root, "app.php"));
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/app.php");
    assert.equal(r.reached[0]!.PATH_INFO, "", "empty, as nginx's PHP snippet sends it");
    assert.equal(r.reached[0]!.REQUEST_URI, "/app.php?a=1&b=2");
    assert.equal(r.reached[0]!.QUERY_STRING, "a=1&b=2");
    assert.equal(r.reached[0]!.DOCUMENT_ROOT, root);
    assert.equal(r.reached[0]!.X_EXTRA, "1");
  });

  it("splits PATH_INFO after the script, as fastcgi_split_path_info does", async () => {
    ready();
    const r = await get(php, "/app.php/users/7?x=y");
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/app.php");
    assert.equal(r.reached[0]!.SCRIPT_FILENAME, join(root, "app.php"));
    assert.equal(r.reached[0]!.PATH_INFO, "/users/7");
    assert.equal(r.reached[0]!.REQUEST_URI, "/app.php/users/7?x=y");
  });

  it("doubled slashes are one, as with nginx's merge_slashes; REQUEST_URI keeps them", async () => {
    ready();
    const r = await get(php, "/app.php//users//7");
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/app.php");
    assert.equal(r.reached[0]!.DOCUMENT_URI, "/app.php");
    assert.equal(r.reached[0]!.PATH_INFO, "/users/7");
    assert.equal(r.reached[0]!.REQUEST_URI, "/app.php//users//7");
  });

  it("sends any other path to the front controller with the query (try_files … /index.php?$query_string)", async () => {
    ready();
    const r = await get(php, "/articles/42?page=2");
    assert.equal(r.status, 200);
    assert.equal(r.reached[0]!.SCRIPT_FILENAME, join(root, "index.php"));
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/index.php");
    assert.equal(r.reached[0]!.REQUEST_URI, "/articles/42?page=2");
    assert.equal(r.reached[0]!.QUERY_STRING, "page=2");
  });

  it("answers a directory with its index, after a redirect that adds the slash", async () => {
    ready();
    const redirect = await get(php, "/blog?x=1");
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get("location"), "/blog/?x=1");
    assert.equal(redirect.reached.length, 0);
    const r = await get(php, "/blog/");
    assert.equal(r.reached[0]!.SCRIPT_FILENAME, join(root, "blog", "index.php"));
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/blog/index.php");
  });

  it("a script that does not exist is a 404 from the gateway (try_files $fastcgi_script_name =404)", async () => {
    ready();
    await refused("/missing.php", 404);
    await refused("/missing.php/x", 404);
  });

  it("without tryFiles, a path that is no script is a 404 and a directory without index a 403", async () => {
    ready();
    const r = await get(noTryFiles, "/articles/42");
    assert.equal(r.status, 404);
    assert.equal(r.reached.length, 0);
    const d = await get(noTryFiles, "/empty/");
    assert.equal(d.status, 403);
    assert.equal((await get(noTryFiles, "/app.php")).reached.length, 1);
  });

  it("serves static files when asked, with type, length, Last-Modified and 304, and never a script's source", async () => {
    ready();
    const r = await get(phpStatic, "/style.css");
    assert.equal(r.status, 200);
    assert.equal(r.text, "body { color: red }\n");
    assert.equal(r.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(r.headers.get("content-length"), "20");
    assert.equal(r.reached.length, 0);
    const modified = r.headers.get("last-modified")!;
    const again = await get(phpStatic, "/style.css", { headers: { "if-modified-since": modified } });
    assert.equal(again.status, 304);
    assert.equal(again.text, "");
    const head = await get(phpStatic, "/style.css", { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), "20");
    assert.equal(head.text, "");
    const post = await get(phpStatic, "/style.css", { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    const source = await get(phpStatic, "/app.php");
    assert.ok(!source.text.includes("<?php"), "a script's source was served");
    assert.equal(source.reached.length, 1);
  });

  it("without staticFiles, a file that exists still goes to the front controller, never sent as is", async () => {
    ready();
    const r = await get(php, "/style.css");
    assert.ok(!r.text.includes("color: red"));
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/index.php");
  });

  it("REMOTE_ADDR and REMOTE_PORT come from the server's connection info", async () => {
    ready();
    const r = await get(php, "/app.php", {}, { remoteAddr: { hostname: "203.0.113.9", port: 51234, transport: "tcp" } });
    assert.equal(r.reached[0]!.REMOTE_ADDR, "203.0.113.9");
    assert.equal(r.reached[0]!.REMOTE_PORT, "51234");
  });

  it("a backend that cannot be reached is a 502, not a crash", async () => {
    ready();
    const errors: unknown[] = [];
    const dead = gateway({ upstream: `unix:${join(dir, "nobody.sock")}`, documentRoot: root, onError: (e) => errors.push(e) });
    try {
      const r = await dead(new Request("http://example.test/app.php"));
      assert.equal(r.status, 502);
      assert.equal(errors.length, 1);
    } finally {
      await dead.close();
    }
  });

  it("refuses an index that is a path", () => {
    ready();
    assert.throws(() => gateway({ upstream: "127.0.0.1:9", documentRoot: root, index: "../x.php" }), TypeError);
  });
});

describe("listenHttp", () => {
  it("closes when its signal aborts, and at once when the signal was aborted before it listened", async () => {
    ready();
    // The runtime's own class: on Bun other test files' serve() may have replaced the global one.
    const hello = (): Response => new NativeResponse("hi");
    const controller = new AbortController();
    const server = await listenHttp(hello, { hostname: "127.0.0.1", port: 0, signal: controller.signal });
    assert.equal(await (await fetch(server.url)).text(), "hi");
    controller.abort();
    await within(server.finished, 5000, "the server to close on abort");
    // A SIGTERM while the server was starting: the signal is already aborted when it listens.
    const early = await listenHttp(hello, { hostname: "127.0.0.1", port: 0, signal: AbortSignal.abort() });
    await within(early.finished, 5000, "a server given an aborted signal to close");
  });
});

describe("gateway path safety: nothing leaves the document root", () => {
  it("'..' and '.' segments, as sent on the request line", async () => {
    ready();
    // Resolved, /secret.txt is no file under the root (the front controller gets it), and /secret.php no script (404).
    await refusedAsSent("/../../secret.txt", ["index.php"]);
    await refusedAsSent("/uploads/../../secret.php", []);
    await refusedAsSent("/./app.php", ["app.php"]);
    await refusedAsSent("/%2e%2e/secret.txt", ["index.php"]);
    // The check itself, which no server resolves first.
    assert.equal(safeSegments("/../../secret.txt"), null);
    assert.equal(safeSegments("/./app.php"), null);
  });

  it("'%2e%2e' and '%2E%2E', alone or with an encoded slash", async () => {
    ready();
    // A Request's URL already treats %2e%2e as '..' and resolves it: /secret.php under the root, missing.
    await refused("/%2e%2e/secret.php", 404);
    await refused("/%2E%2E/secret.php", 404);
    await refused("/.%2e/secret.php", 404);
    // Encoded slashes are refused before anything is decoded.
    await refused("/uploads/..%2f..%2fsecret.php", 400);
    await refused("/uploads/%2e%2e%2f%2e%2e%2fsecret.php", 400);
    // The check itself, for a handler given a path that was never through URL parsing.
    assert.equal(safeSegments("/%2e%2e/secret.php"), null);
    assert.equal(safeSegments("/.%2E/secret.php"), null);
    assert.equal(safeSegments("/a/../../secret.php"), null);
  });

  it("a double-encoded '%252e%252e' stays a literal name and escapes nothing", async () => {
    ready();
    const r = await get(php, "/%252e%252e/secret.php");
    assert.equal(r.status, 404);
    assert.equal(r.reached.length, 0);
  });

  it("'%00' (a NUL cutting the name short in C)", async () => {
    ready();
    await refused("/app.php%00.jpg", 400);
    await refused("/uploads/evil.jpg%00.php", 400);
  });

  it("backslashes, literal or '%5c'", async () => {
    ready();
    await refused("/uploads%5c..%5c..%5csecret.php", 400);
    await refused("/..%5Csecret.php", 400);
    // A literal backslash, which Bun.serve and the WHATWG URL turn into a slash before the gateway.
    await refusedAsSent("/a\\..\\secret.php", []);
    assert.equal(safeSegments("/a\\..\\secret.php"), null);
    assert.equal(safeSegments("/app.php\\x"), null);
  });

  it("malformed percent-encoding", async () => {
    ready();
    await refused("/app.php/%E0%A4%A", 400);
    await refused("/%zz.php", 400);
  });

  it("a symlink to a script outside the root", async () => {
    ready();
    await refused("/out.php", 404);
  });

  it("a symlink to a file outside the root, with static files on", async () => {
    ready();
    const r = await get(phpStatic, "/out.txt");
    assert.ok(!r.text.includes("outside the root"));
  });

  it("a symlinked directory pointing out of the root", async () => {
    ready();
    await refused("/up/secret.php", 404);
    const r = await get(phpStatic, "/up/secret.txt");
    assert.ok(!r.text.includes("outside the root"));
  });

  it("a symlink inside the root to a script inside the root is fine", async () => {
    ready();
    const r = await get(php, "/alias.php");
    assert.equal(r.status, 200);
    assert.equal(r.reached[0]!.SCRIPT_NAME, "/alias.php");
  });

  it("CVE-2019-11043: a newline in the path ('%0a') never reaches the backend", async () => {
    ready();
    await refused("/index.php/PHP_VALUE%0Asession.auto_start=1;;;?a", 400);
    await refused("/app.php/%0a", 400);
    await refused("/app.php%0a/x", 400);
    await refused("/x%0d%0a.php", 400);
  });

  it("CVE-2019-11043: no request reaches the backend with an empty PATH_INFO from a split", async () => {
    ready();
    const r = await get(php, "/app.php/");
    assert.equal(r.reached.length, 1);
    assert.equal(r.reached[0]!.PATH_INFO, "/");
    // The exploit needs an empty PATH_INFO beside a SCRIPT_FILENAME that is no file (the split
    // failed at a newline): PHP-FPM then walks back along the path. PATH_INFO is empty for every
    // script without one, as nginx's Debian snippet sends it, but only beside an existing file.
    for (const p of seen) {
      if (p.PATH_INFO !== "") continue;
      assert.ok(statSync(p.SCRIPT_FILENAME!).isFile(), `${p.SCRIPT_FILENAME} is a file`);
    }
  });

  it("/uploads/evil.jpg/x.php does not run evil.jpg (cgi.fix_pathinfo)", async () => {
    ready();
    await refused("/uploads/evil.jpg/x.php", 404);
    await refused("/uploads/evil.jpg%2fx.php", 400);
    // "/.php" is no script name (nginx's `[^/]\.php` agrees): the front controller answers it.
    const r = await get(php, "/uploads/evil.jpg/.php");
    assert.deepEqual(r.reached.map((p) => p.SCRIPT_FILENAME), [join(root, "index.php")]);
  });

  it("the path is checked after decoding exactly once", () => {
    ready();
    assert.deepEqual(safeSegments("/a%20b/c.php"), ["a b", "c.php"]);
    assert.deepEqual(safeSegments("/%252e%252e/x"), ["%2e%2e", "x"]);
    assert.equal(safeSegments("/%2e%2e/x"), null);
    assert.equal(safeSegments("/a%2fb"), null);
    assert.equal(safeSegments("/a%2Fb"), null);
  });

  it("a lookup is reused for lookupCache ms, then made afresh; 0 looks every request up", async () => {
    ready();
    const cached = gateway({ upstream: php.client, documentRoot: root, lookupCache: 300 });
    const fresh = gateway({ upstream: php.client, documentRoot: root, lookupCache: 0 });
    const file = join(root, "brief.php");
    const script = (handler: Gateway) => get(handler, "/brief.php").then((r) => r.reached.map((p) => p.SCRIPT_FILENAME));
    writeFileSync(file, "<?php");
    const started = Date.now();
    try {
      assert.deepEqual(await script(cached), [file]);
      assert.deepEqual(await script(fresh), [file]);
    } finally {
      rmSync(file);
    }
    // Removed: the uncached gateway sees it at once; the cached one within its 300 ms.
    assert.equal((await get(fresh, "/brief.php")).status, 404);
    if (Date.now() - started < 250) assert.deepEqual(await script(cached), [file]);
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal((await get(cached, "/brief.php")).status, 404);
  });

  it("a root reached through a symlink follows it when a deploy re-points it, within lookupCache", async () => {
    ready();
    // The usual deploy: documentRoot is .../current, a link swapped from one release to the next.
    const site = join(dir, "site");
    for (const release of ["1", "2"]) {
      mkdirSync(join(site, "releases", release), { recursive: true });
      writeFileSync(join(site, "releases", release, `only${release}.php`), "<?php");
    }
    const current = join(site, "current");
    symlinkSync(join(site, "releases", "1"), current);
    const fresh = gateway({ upstream: php.client, documentRoot: current, lookupCache: 0, tryFiles: false });
    const cached = gateway({ upstream: php.client, documentRoot: current, lookupCache: 200, tryFiles: false });
    const script = async (handler: Gateway, path: string) => {
      const r = await get(handler, path);
      return r.status === 404 ? 404 : r.reached.map((p) => p.SCRIPT_FILENAME);
    };
    assert.deepEqual(await script(fresh, "/only1.php"), [join(current, "only1.php")]);
    assert.deepEqual(await script(cached, "/only1.php"), [join(current, "only1.php")]);
    assert.equal(await script(fresh, "/only2.php"), 404);
    rmSync(current);
    symlinkSync(join(site, "releases", "2"), current);
    const swapped = Date.now();
    // The new release's scripts are found, under the new real root, and the old one's are gone.
    assert.deepEqual(await script(fresh, "/only2.php"), [join(current, "only2.php")]);
    assert.equal(await script(fresh, "/only1.php"), 404);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 250 - (Date.now() - swapped))));
    assert.deepEqual(await script(cached, "/only2.php"), [join(current, "only2.php")]);
    assert.equal(await script(cached, "/only1.php"), 404);
  });
});
