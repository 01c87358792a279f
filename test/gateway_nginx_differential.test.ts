// A differential test of the gateway against nginx: the same PHP-FPM pool behind nginx, with the
// stock Debian PHP site (sites-available/default with its PHP location uncommented, which includes
// snippets/fastcgi-php.conf and fastcgi.conf), and behind `fcgi proxy` on this runtime, started as
// the README says. A PHP script dumps $_SERVER, $_GET, $_POST, $_FILES and $_COOKIE; every request
// of the list goes to both fronts byte for byte, and every field of the dump, the status and the
// response headers must be the same, but for the masks below (each says why it cannot agree).
// A second pair, nginx and gateway() in this process in front of a FastCGI app that records what
// it gets, compares the params on the wire, where PHP cannot hide HTTP_PROXY or the order.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { runtimeName, startCli, type RunningCli } from "./_support/env.ts";
import { phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";
import { within } from "./_support/poll.ts";
import { startFakeApp, type FakeApp } from "./_support/fake_fcgi_app.ts";
import { formatAddress } from "../src/address.ts";
import { gateway, type Gateway } from "../src/client/gateway.ts";
import { listenHttp, type HttpServer } from "../src/runtime/http.ts";
import { freePort, makeTempDir, mustHave, removeDir, startNginx, webServerBinary, type WebServer } from "./interop/_servers.ts";

const nginxBinary = webServerBinary("nginx");
const skip = nginxBinary.skip || phpFpmSkip();

/** Debian's PHP snippet and the params file it includes, as the nginx package installs them. */
const DEBIAN_FILES = ["snippets/fastcgi-php.conf", "fastcgi.conf"];

/**
 * Debian's sites-available/default as a PHP site: its server block with the PHP location
 * uncommented, and the edits the file itself, the README's gateway docs and httpoxy.org call for:
 * - `index` gets index.php ("Add index.php to the list if you are using PHP");
 * - `location /` falls back to the front controller (`/index.php?$query_string`, as the README
 *   says the gateway routes) instead of `=404`;
 * - the PHP location matches `[^/]\.php(/|$)` rather than `\.php$`, so that `/index.php/extra`
 *   reaches the snippet, whose fastcgi_split_path_info is there to cut PATH_INFO from it;
 * - httpoxy.org's mitigation line, `fastcgi_param HTTP_PROXY "";`: without it nginx passes a
 *   `Proxy:` header on as HTTP_PROXY (PHP then drops it from $_SERVER and getenv() by itself).
 * listen, root and fastcgi_pass point at the test's port, document root and PHP-FPM socket.
 */
function debianSite(port: number, root: string, upstream: string): string {
  return `
server {
	listen 127.0.0.1:${port} default_server;
	root ${root};
	index index.php index.html index.htm index.nginx-debian.html;
	server_name _;
	location / {
		try_files $uri $uri/ /index.php?$query_string;
	}
	location ~ [^/]\\.php(/|$) {
		include snippets/fastcgi-php.conf;
		fastcgi_param HTTP_PROXY "";
		fastcgi_pass ${upstream};
	}
}`;
}

/** What PHP saw, as JSON: the order of $_SERVER's keys counts too. */
const DUMP = `<?php
header("Content-Type: application/json");
echo json_encode([
  "server" => $_SERVER, "keys" => array_keys($_SERVER), "get" => $_GET, "post" => $_POST,
  "files" => $_FILES, "cookie" => $_COOKIE, "input" => file_get_contents("php://input"),
  "env_http_proxy" => getenv("HTTP_PROXY"),
], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PRETTY_PRINT), "\\n";
`;

const SCRIPTS: Record<string, string> = {
  "index.php": DUMP,
  "sub/index.php": DUMP,
  "redirect.php": `<?php header("Location: /index.php?from=redirect"); echo "moved\\n";`,
  "moved.php": `<?php header("Location: https://example.com/elsewhere", true, 301);`,
  "teapot.php": `<?php http_response_code(418); header("X-Extra: one"); header("X-Extra: two", false); setcookie("a", "1"); setcookie("b", "2"); echo "short and stout\\n";`,
  "gone.php": `<?php header("Status: 410 Gone"); echo "gone\\n";`,
  "style.css": "body { color: blue }\n",
};

/** One request as it goes on the wire: its header lines in order, duplicates included. */
interface Case {
  name: string;
  method: string;
  target: string;
  headers?: Array<[string, string]>;
  body?: string | Uint8Array;
  /** Send the body with Transfer-Encoding: chunked (in two chunks when it has two bytes or more). */
  chunked?: boolean;
}

const BOUNDARY = "----fcgi-differential-7d1f";
const MULTIPART = [
  `--${BOUNDARY}`, `Content-Disposition: form-data; name="title"`, "", "a file", `--${BOUNDARY}`,
  `Content-Disposition: form-data; name="upload"; filename="notes.txt"`, "Content-Type: text/plain", "", "line one\nline two",
  `--${BOUNDARY}--`, "",
].join("\r\n");

const CASES: Case[] = [
  { name: "a query with escapes, an empty value and a repeated key", method: "GET", target: "/index.php?a=1&b=two%20words&c=x+y&d=%2Fslash&e=caf%C3%A9&empty=&r=1&r=2&list[]=x&list[]=y" },
  { name: "no query", method: "GET", target: "/index.php" },
  // Unescaped: characters that URL parsers percent-encode in a query. (Not raw UTF-8: node:http
  // refuses a request line that is not ASCII with 400, as RFC 9112 allows.)
  { name: "a query with characters sent unescaped", method: "GET", target: "/index.php?q='quoted'&t=~!*()$,;:@/?&h=<a>|{b}^`c`\\" },
  { name: "a path with escapes", method: "GET", target: "/ind%65x.php/caf%C3%A9/a%20b?x=%41" },
  { name: "PATH_INFO", method: "GET", target: "/index.php/extra/path?q=1" },
  { name: "doubled slashes", method: "GET", target: "/sub//index.php//x//y?z=1" },
  { name: "the front controller", method: "GET", target: "/some/route?x=1&y=%C3%A9" },
  { name: "the front controller, no query", method: "GET", target: "/some/route" },
  { name: "the directory index", method: "GET", target: "/" },
  { name: "a subdirectory's index", method: "GET", target: "/sub/?s=1" },
  {
    name: "a POST form", method: "POST", target: "/index.php?via=post",
    headers: [["Content-Type", "application/x-www-form-urlencoded"]], body: "name=J%C3%BCrgen&city=New+York&empty=&tags[]=a&tags[]=b",
  },
  { name: "multipart with a file", method: "POST", target: "/index.php", headers: [["Content-Type", `multipart/form-data; boundary=${BOUNDARY}`]], body: MULTIPART },
  {
    name: "a chunked POST", method: "POST", target: "/index.php", chunked: true,
    headers: [["Content-Type", "application/x-www-form-urlencoded"]], body: "sent=in&chunks=yes",
  },
  { name: "an empty chunked POST", method: "POST", target: "/index.php", chunked: true, body: "" },
  { name: "PUT with a body", method: "PUT", target: "/index.php/items/7", headers: [["Content-Type", "text/plain; charset=utf-8"]], body: "replace me\n" },
  { name: "DELETE without a body", method: "DELETE", target: "/index.php/items/7" },
  { name: "HEAD", method: "HEAD", target: "/index.php?h=1" },
  { name: "several cookies, in one header and two", method: "GET", target: "/index.php", headers: [["Cookie", "a=1; b=two%20words; c="], ["Cookie", "d=4"]] },
  { name: "httpoxy: a Proxy header", method: "GET", target: "/index.php", headers: [["Proxy", "http://evil.example:8080"]] },
  {
    name: "headers: a repeated one, one with _, common ones", method: "GET", target: "/index.php",
    headers: [["Accept", "text/html"], ["X-Dup", "1"], ["X-Dup", "2"], ["X_Under", "no"], ["X-Empty", ""], ["X-Name", "J\u00fcrgen"], ["User-Agent", "differential/1"], ["Accept-Language", "de, en;q=0.5"]],
  },
  { name: "basic auth", method: "GET", target: "/index.php", headers: [["Authorization", "Basic " + btoa("alice:s3cret")]] },
  { name: "a redirect", method: "GET", target: "/redirect.php" },
  { name: "a 301 to elsewhere", method: "GET", target: "/moved.php" },
  { name: "418 with headers and cookies", method: "GET", target: "/teapot.php" },
  { name: "a Status header", method: "GET", target: "/gone.php" },
];

/** An HTTP answer as the client got it. */
interface Answer {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/** Writes one request on a fresh connection (Connection: close) and reads the answer to its end. */
function send(port: number, c: Case): Promise<Answer> {
  const body = typeof c.body === "string" ? new TextEncoder().encode(c.body) : c.body;
  const lines = [`${c.method} ${c.target} HTTP/1.1`, `Host: localhost:${port}`, ...(c.headers ?? []).map(([n, v]) => `${n}: ${v}`)];
  let payload = body;
  if (body !== undefined && c.chunked) {
    lines.push("Transfer-Encoding: chunked");
    const half = body.length >> 1;
    const chunk = (part: Uint8Array) => (part.length === 0 ? [] : [Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from("\r\n")]);
    payload = Buffer.concat([...chunk(body.subarray(0, half)), ...chunk(body.subarray(half)), Buffer.from("0\r\n\r\n")]);
  } else if (body !== undefined) {
    lines.push(`Content-Length: ${body.length}`);
  }
  lines.push("Connection: close", "", "");
  let socket: Socket | undefined;
  return within(new Promise<Answer>((resolve, reject) => {
    socket = connect(port, "127.0.0.1");
    const chunks: Uint8Array[] = [];
    socket.on("data", (d: Uint8Array) => chunks.push(d));
    socket.on("error", reject);
    socket.on("close", () => {
      try {
        resolve(parseAnswer(Buffer.concat(chunks), c.method === "HEAD"));
      } catch (error) {
        reject(error);
      }
    });
    socket.write(Buffer.concat([Buffer.from(lines.join("\r\n"), "utf8"), ...(payload ? [payload] : [])]));
  }), 20_000, `${c.method} ${c.target} on port ${port}`).finally(() => socket?.destroy());
}

function parseAnswer(raw: Buffer, head: boolean): Answer {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`no complete header in ${JSON.stringify(raw.toString("latin1"))}`);
  const [statusLine, ...headerLines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers = headerLines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  let body = raw.subarray(end + 4);
  if (head) body = body.subarray(0, 0);
  else if (headers.some(([n, v]) => n === "transfer-encoding" && v === "chunked")) body = dechunk(body);
  return { status, headers, body };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < 100_000; i++) {
    const line = data.indexOf("\r\n", at);
    if (line < 0) throw new Error("chunked body cut short");
    const size = parseInt(data.subarray(at, line).toString("latin1"), 16);
    if (size === 0) return Buffer.concat(out);
    out.push(data.subarray(line + 2, line + 2 + size));
    at = line + 2 + size + 2;
  }
  throw new Error("too many chunks");
}

/** Starts `fcgi proxy` on this runtime, as the README shows, and waits until it listens. */
async function startProxy(port: number, socket: string, root: string, software: string): Promise<RunningCli> {
  const running = startCli([
    "proxy", "--listen", `127.0.0.1:${port}`, "--upstream", `unix:${socket}`, "--root", root, "--static",
    // nginx's SERVER_NAME is its server_name directive, "_" in Debian's site; the proxy's is the
    // request's host unless given, as README says. SERVER_SOFTWARE names the front ("fcgi"): given
    // nginx's, PHP cannot tell the two fronts apart.
    "--param", "SERVER_NAME=_", "--param", `SERVER_SOFTWARE=${software}`,
    // REQUEST_URI as sent: Bun.serve percent-encodes ' < > in a query (see the test of it below).
    "--raw-target",
  ]);
  const deadline = Date.now() + 30_000;
  while (!running.stderr().includes("fcgi: listening on")) {
    if (running.child.exitCode !== null) throw new Error(`fcgi proxy exited early: ${running.stderr()}`);
    if (Date.now() > deadline) throw new Error(`fcgi proxy did not start: ${running.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return running;
}

/** What the PHP script dumps. */
interface Dump {
  server: Record<string, unknown>;
  keys: string[];
  get: unknown;
  post: unknown;
  files: Record<string, { tmp_name?: string }> | unknown[];
  cookie: Record<string, string> | unknown[];
  input: string;
  env_http_proxy: string | false;
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/**
 * The masks: what only the port or the process can make differ. Everything else must agree.
 * - SERVER_PORT, and the port in HTTP_HOST: each front listens on a port of its own.
 * - REMOTE_PORT: the client's ephemeral port, new on every connection.
 * - REQUEST_TIME, REQUEST_TIME_FLOAT: when PHP got the request.
 * - $_FILES[*][tmp_name]: PHP's random name for the uploaded file.
 * And one order: the HTTP_* params come in the order of the request's header lines from nginx,
 * in name order from fcgi (a Fetch Request's Headers iterate sorted: the order is lost before the
 * gateway sees the request). The CGI params must come in nginx's order, and all of them in one block.
 */
function masked(dump: Dump, port: number): Dump {
  const server = { ...dump.server };
  for (const name of ["SERVER_PORT", "REMOTE_PORT", "REQUEST_TIME", "REQUEST_TIME_FLOAT"]) {
    assert.ok(name in server, `$_SERVER has no ${name}`);
    server[name] = "(masked)";
  }
  assert.equal(server.HTTP_HOST, `localhost:${port}`);
  server.HTTP_HOST = "localhost:(port)";
  const files = Array.isArray(dump.files) ? dump.files : Object.fromEntries(Object.entries(dump.files).map(([field, file]) => [field, { ...file, tmp_name: "(masked)" }]));
  // PHP-FPM lists $_SERVER in the reverse of the params' order: HTTP_* first.
  const http = dump.keys.filter((key) => key.startsWith("HTTP_"));
  const keys = [...http.sort(), ...dump.keys.filter((key) => !key.startsWith("HTTP_"))];
  assert.deepEqual(dump.keys.slice(0, http.length).sort(), http, "the HTTP_* params come after the others");
  return { ...dump, server, keys, files };
}

/**
 * The response headers that PHP's answer decides, one entry per name in name order: the ones each
 * HTTP server writes by itself (Date, Server, Connection, Keep-Alive, and the framing:
 * Transfer-Encoding or Content-Length, the body itself being compared) are left out, and the
 * lines of one name are joined with ", " as RFC 9110 §5.3 allows (nginx copies PHP's lines, a
 * Headers object joins them), but for Set-Cookie, whose lines must stay apart.
 */
function responseHeaders(headers: Array<[string, string]>): Array<[string, string]> {
  const own = new Set(["date", "server", "connection", "keep-alive", "transfer-encoding", "content-length"]);
  const joined = new Map<string, string[]>();
  for (const [name, value] of headers) if (!own.has(name)) joined.set(name, [...(joined.get(name) ?? []), value]);
  return [...joined].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .flatMap(([name, values]) => (name === "set-cookie" ? values.map((v): [string, string] => [name, v]) : [[name, values.join(", ")]]));
}

/**
 * nginx before 1.23.0 (Debian 12 has 1.22.1) sends each line of a repeated header as a param of
 * its own, and PHP keeps the last: of two Cookie lines, the first one's cookies are lost. nginx
 * 1.23.0 fixed it ("combines arbitrary header lines with identical names when sending to FastCGI"):
 * one param, the values joined with ", ", "; " for Cookie, as fcgi sends them. Against an older
 * nginx this checks that difference exactly, then expects what a newer nginx sends.
 */
function olderNginx(c: Case, nginxDump: Dump, proxyDump: Dump): void {
  const lines = new Map<string, string[]>();
  for (const [name, value] of c.headers ?? []) lines.set(name.toLowerCase(), [...(lines.get(name.toLowerCase()) ?? []), value]);
  for (const [name, values] of lines) {
    if (values.length < 2) continue;
    const param = "HTTP_" + name.toUpperCase().replaceAll("-", "_");
    assert.equal(nginxDump.server[param], values.at(-1), `nginx < 1.23 sends the last ${name} line last`);
    const combined = values.join(name === "cookie" ? "; " : ", ");
    assert.equal(proxyDump.server[param], combined);
    nginxDump.server[param] = combined;
    if (name === "cookie") {
      nginxDump.cookie = Object.fromEntries(combined.split("; ").map((pair) => {
        const [key, value] = pair.split("=");
        return [key!, decodeURIComponent(value ?? "")];
      }));
    }
  }
}

/** nginx's SERVER_SOFTWARE, "nginx/1.22.1", as `nginx -v` tells it. */
function nginxSoftware(binary: string): string {
  const version = /nginx\/\d+\.\d+\.\d+/.exec(spawnSync(binary, ["-v"], { encoding: "utf8" }).stderr);
  if (!version) throw new Error("nginx -v did not tell a version");
  return version[0];
}

/** Whether this nginx combines repeated header lines into one param (1.23.0 and later). */
function combinesHeaders(software: string): boolean {
  const [major, minor] = software.slice("nginx/".length).split(".").map(Number);
  return major! > 1 || minor! >= 23;
}

let dir: string;
let php: PhpFpm;
let nginx: WebServer;
let proxy: RunningCli;
let nginxPort: number;
let proxyPort: number;
let software: string;
let nginxCombines: boolean;
let recorder: FakeApp;
let recorded: Array<Record<string, string>> = [];
let nginxRecorderPort: number;
let recording: Gateway;
let recordingServer: HttpServer;

describe("gateway vs nginx's stock Debian PHP site, in front of the same PHP-FPM", { skip }, () => {
  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    software = nginxSoftware(binary);
    nginxCombines = combinesHeaders(software);
    dir = makeTempDir("fcgi-gwdiff-");
    const root = join(dir, "www");
    mkdirSync(join(root, "sub"), { recursive: true });
    for (const [name, source] of Object.entries(SCRIPTS)) writeFileSync(join(root, name), source);
    mkdirSync(join(dir, "snippets"));
    for (const file of DEBIAN_FILES) {
      const from = join("/etc/nginx", file);
      if (!existsSync(from)) throw new Error(`${from} is missing: this test renders Debian's nginx PHP site`);
      copyFileSync(from, join(dir, file));
    }
    php = await startPhpFpm({ listen: "unix", root, maxChildren: 2 });
    const socket = php.address.transport === "unix" ? php.address.path : "";
    nginxPort = await freePort();
    proxyPort = await freePort();
    nginxRecorderPort = await freePort();
    recorder = await startFakeApp({
      onStdinEnd(request) {
        recorded.push(request.params);
        request.connection.respond(request.requestId, "Content-Type: text/plain\r\n\r\nrecorded\n");
      },
    });
    const sites = debianSite(nginxPort, root, `unix:${socket}`) + debianSite(nginxRecorderPort, root, formatAddress(recorder.address));
    nginx = await startNginx(binary, dir, sites, [nginxPort, nginxRecorderPort]);
    proxy = await startProxy(proxyPort, socket, root, software);
    recording = gateway({ upstream: recorder.address, documentRoot: root, staticFiles: true, params: { SERVER_NAME: "_", SERVER_SOFTWARE: software } });
    recordingServer = await listenHttp(recording, { hostname: "127.0.0.1", port: 0 });
  });

  after(async () => {
    if (proxy && proxy.child.exitCode === null) {
      proxy.child.kill("SIGTERM");
      await within(proxy.exited, 15_000, "fcgi proxy to exit").catch(() => proxy.child.kill("SIGKILL"));
    }
    await recordingServer?.close();
    await recording?.close();
    await recorder?.close();
    await nginx?.stop();
    await php?.stop();
    if (dir) removeDir(dir);
  });

  it("on the wire: the same params in nginx's order, and HTTP_PROXY from neither", async () => {
    ready();
    const c: Case = { name: "wire", method: "GET", target: "/index.php?a=1", headers: [["Proxy", "http://evil.example:8080"], ["Accept", "*/*"]] };
    recorded = [];
    await send(nginxRecorderPort, c);
    await send(recordingServer.port, c);
    assert.equal(recorded.length, 2);
    const [fromNginx, fromGateway] = recorded.map((params) => ({ ...params })) as [Record<string, string>, Record<string, string>];
    // httpoxy: neither front sends HTTP_PROXY (nginx drops an HTTP_ param set to "", and with it the header).
    assert.ok(!("HTTP_PROXY" in fromNginx));
    assert.ok(!("HTTP_PROXY" in fromGateway));
    const wire = (params: Record<string, string>, port: number) => {
      assert.equal(params.HTTP_HOST, `localhost:${port}`);
      const names = Object.keys(params);
      // The masks of masked() below; HTTP_* in name order, after the others.
      const http = names.filter((name) => name.startsWith("HTTP_"));
      assert.deepEqual(names.slice(-http.length), http);
      const values = { ...params, REMOTE_PORT: "(masked)", SERVER_PORT: "(masked)", HTTP_HOST: "localhost:(port)" };
      return { names: [...names.filter((name) => !name.startsWith("HTTP_")), ...http.sort()], values };
    };
    assert.deepEqual(wire(fromGateway, recordingServer.port), wire(fromNginx, nginxRecorderPort));
  });

  it("the request target as sent: always with rawTarget, by default but on Bun", async () => {
    ready();
    const c: Case = { name: "target", method: "GET", target: "/index.php?q='quoted'&h=<a>&e=%27" };
    const raw = await listenHttp(recording, { hostname: "127.0.0.1", port: 0, rawTarget: true });
    try {
      recorded = [];
      await send(recordingServer.port, c);
      await send(raw.port, c);
    } finally {
      await raw.close();
    }
    const [byDefault, withRaw] = recorded as [Record<string, string>, Record<string, string>];
    assert.equal(withRaw.REQUEST_URI, c.target);
    assert.equal(withRaw.QUERY_STRING, c.target.slice(c.target.indexOf("?") + 1));
    // Bun.serve hands over only a parsed URL: ' < > percent-encoded, an escape sent stays as it was.
    const expected = runtimeName === "bun" ? "/index.php?q=%27quoted%27&h=%3Ca%3E&e=%27" : c.target;
    assert.equal(byDefault.REQUEST_URI, expected);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      ready();
      const fromNginx = await send(nginxPort, c);
      const fromProxy = await send(proxyPort, c);
      const why = () => `nginx:\n${text(fromNginx.body)}\nfcgi proxy:\n${text(fromProxy.body)}`;
      assert.equal(fromProxy.status, fromNginx.status, why());
      assert.deepEqual(responseHeaders(fromProxy.headers), responseHeaders(fromNginx.headers));
      const type = fromNginx.headers.find(([name]) => name === "content-type")?.[1];
      if (type !== "application/json" || c.method === "HEAD") {
        assert.equal(text(fromProxy.body), text(fromNginx.body));
        return;
      }
      const nginxRaw = JSON.parse(text(fromNginx.body)) as Dump;
      const proxyRaw = JSON.parse(text(fromProxy.body)) as Dump;
      assert.equal(nginxRaw.server.SERVER_SOFTWARE, software);
      const nginxDump = masked(nginxRaw, nginxPort);
      const proxyDump = masked(proxyRaw, proxyPort);
      if (c.headers?.some(([name]) => name === "Proxy")) {
        // httpoxy: no HTTP_PROXY for PHP, neither in $_SERVER nor in its environment.
        for (const dump of [nginxDump, proxyDump]) {
          assert.equal(dump.server.HTTP_PROXY, undefined);
          assert.equal(dump.env_http_proxy, false);
        }
      }
      if (!nginxCombines) olderNginx(c, nginxDump, proxyDump);
      assert.deepEqual(proxyDump, nginxDump);
    });
  }
});
