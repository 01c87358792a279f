// `fcgi proxy`, spawned as users run it on this runtime, in front of a real PHP-FPM and of our own
// `fcgi serve`: requests through it, --static, path safety through the CLI, --help, bad arguments,
// a graceful stop on SIGTERM, and --workers (several processes on one port).
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatAddress } from "../src/address.ts";
import { nodeHasReusePort } from "../src/runtime/node.ts";
import { runtimeName, sourcePath, startCli, type RunningCli } from "./_support/env.ts";
import { phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";

import { canConnect, fetchWithin, freePort, startApp, startCountingRelay, type Service } from "./interop/_servers.ts";
import { waitFor, within } from "./_support/poll.ts";

type Running = RunningCli;
const start = (args: string[]): Running => startCli(args);

/** Runs the CLI to its end (within 30 s). */
async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = start(args);
  const code = await within(running.exited, 30_000, `fcgi ${args.join(" ")}`).catch((error) => {
    running.child.kill("SIGKILL");
    throw error;
  });
  return { code, stdout: running.stdout(), stderr: running.stderr() };
}

/** Starts `fcgi proxy` on a free port and resolves with its base URL once it says it listens. */
async function startProxy(args: string[]): Promise<Running & { url: string }> {
  const running = start(["proxy", "--listen", "127.0.0.1:0", ...args]);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /fcgi: listening on (http:\/\/[^\s/]+)/.exec(running.stderr());
    if (m) return { ...running, url: m[1]! };
    if (running.child.exitCode !== null) throw new Error(`fcgi proxy exited early (${running.child.exitCode}): ${running.stderr()}`);
    if (Date.now() > deadline) {
      running.child.kill("SIGKILL");
      throw new Error(`fcgi proxy did not start: ${running.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

// process.kill rather than child.kill: Deno's child_process reports a child it signalled as
// killed by that signal (code null) even when the child handled it and exited 0.
function signal(running: Running, name: NodeJS.Signals): void {
  if (running.child.exitCode === null && running.child.pid !== undefined) process.kill(running.child.pid, name);
}

async function stop(running: Running): Promise<number | null> {
  signal(running, "SIGTERM");
  return await within(running.exited, 15_000, "fcgi proxy to exit").catch((error) => {
    running.child.kill("SIGKILL");
    throw error;
  });
}

/**
 * One HTTP/1.1 request written byte for byte (fetch() would normalize `..` and `%2e%2e` away
 * before they reach the server); resolves with the status and the body.
 */
function rawGet(base: string, target: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to GET ${target} within 10 s: ${JSON.stringify(data)}`));
    }, 10_000);
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (data += d));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (!m) return reject(new Error(`not an HTTP answer to GET ${target}: ${JSON.stringify(data.slice(0, 200))}`));
      const split = data.indexOf("\r\n\r\n");
      resolve({ status: Number(m[1]), text: split < 0 ? "" : data.slice(split + 4) });
    });
    socket.write(`GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
  });
}

const SECRET = "top secret: outside the document root";

const SCRIPTS: Record<string, string> = {
  "index.php": `<?php echo "front controller|", $_SERVER["SCRIPT_NAME"], "|", $_SERVER["REQUEST_URI"], "|", $_SERVER["QUERY_STRING"];`,
  "info.php": `<?php echo $_SERVER["REQUEST_METHOD"], "|", $_SERVER["SCRIPT_FILENAME"], "|", $_SERVER["SCRIPT_NAME"], "|", $_SERVER["PATH_INFO"] ?? "-", "|",
    $_SERVER["QUERY_STRING"], "|", $_SERVER["DOCUMENT_ROOT"], "|", $_SERVER["REMOTE_ADDR"], "|", $_SERVER["HTTP_X_TEST"] ?? "-", "|", $_SERVER["HTTPS"] ?? "-";`,
  "form.php": `<?php header("X-Form: yes"); setcookie("a", "1"); setcookie("b", "2"); echo $_SERVER["REQUEST_METHOD"], " ", $_POST["name"] ?? "-", " ", $_POST["city"] ?? "-";`,
  "slow.php": `<?php touch(__DIR__ . "/slow.started"); usleep(800000); echo "slow done";`,
  "style.css": "body { color: teal }\n",
};

describe("fcgi proxy in front of PHP-FPM", { skip: phpFpmSkip() }, () => {
  let base = "";
  let root = "";
  let fpm: PhpFpm | undefined;
  let upstream = "";

  const ready = setup(async () => {
    base = mkdtempSync(join(tmpdir(), "fcgi-proxy-"));
    root = join(base, "www");
    mkdirSync(root);
    for (const [name, source] of Object.entries(SCRIPTS)) writeFileSync(join(root, name), source);
    writeFileSync(join(base, "secret.txt"), SECRET);
    writeFileSync(join(base, "secret.php"), `<?php echo ${JSON.stringify(SECRET)};`);
    symlinkSync(base, join(root, "up")); // a link out of the root
    fpm = await startPhpFpm({ listen: "unix", root, maxChildren: 4 });
    upstream = formatAddress(fpm.address);
  });

  after(async () => {
    await fpm?.stop();
    rmSync(base, { recursive: true, force: true });
  });

  it("passes a GET with a query, a header and --param to the script, with the script's real path", async () => {
    ready();
    const proxy = await startProxy(["--upstream", upstream, "--root", root, "--param", "HTTPS=on"]);
    try {
      const info = await fetchWithin(`${proxy.url}/info.php/extra/path?a=1&b=%20two`, { headers: { "X-Test": "t" } });
      assert.equal(info.status, 200, info.text);
      assert.equal(info.text, `GET|${join(root, "info.php")}|/info.php|/extra/path|a=1&b=%20two|${root}|127.0.0.1|t|on`);
      // Any other path goes to the front controller, the query kept.
      const route = await fetchWithin(`${proxy.url}/blog/2026/hello?page=2`);
      assert.equal(route.text, "front controller|/index.php|/blog/2026/hello?page=2|page=2");
      // Without --static, a file that is not a script goes to the front controller too.
      assert.match((await fetchWithin(`${proxy.url}/style.css`)).text, /^front controller\|/);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
    }
  });

  it("passes a POSTed form and PHP's status, headers and several cookies", async () => {
    ready();
    const proxy = await startProxy(["--upstream", upstream, "--root", root]);
    try {
      const form = await fetchWithin(`${proxy.url}/form.php`, {
        method: "POST",
        body: new URLSearchParams({ name: "Zoë & co", city: "Zürich" }),
      });
      assert.equal(form.status, 200);
      assert.equal(form.text, "POST Zoë & co Zürich");
      assert.equal(form.headers.get("x-form"), "yes");
      assert.deepEqual(form.headers.getSetCookie(), ["a=1", "b=2"]);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
    }
  });

  it("--static serves files from the root directly, never a script's source", async () => {
    ready();
    const proxy = await startProxy(["--upstream", upstream, "--root", root, "--static"]);
    try {
      const css = await fetchWithin(`${proxy.url}/style.css`);
      assert.equal(css.status, 200);
      assert.equal(css.text, SCRIPTS["style.css"]);
      const script = await fetchWithin(`${proxy.url}/info.php`);
      assert.doesNotMatch(script.text, /<\?php/);
      assert.match(script.text, /^GET\|/);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
    }
  });

  it("refuses paths that leave the root: .., %2e%2e, %00, backslashes and a symlink out", async () => {
    ready();
    const proxy = await startProxy(["--upstream", upstream, "--root", root, "--static", "--no-try-files"]);
    try {
      for (const target of [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.php",
        "/..%2fsecret.php",
        "/..%5csecret.php",
        "/up/secret.txt",
        "/up/secret.php",
        "/info.php%00.css",
      ]) {
        const answer = await rawGet(proxy.url, target);
        assert.ok(answer.status >= 400, `${target} answered ${answer.status}: ${answer.text}`);
        assert.ok(!answer.text.includes(SECRET), `${target} leaked the secret`);
      }
      // The CVE-2019-11043 shape: no script name that is not a file reaches PHP-FPM.
      // A newline in the path is refused outright (400).
      const pathInfo = await rawGet(proxy.url, "/nope.php/%0Ainfo.php?");
      assert.equal(pathInfo.status, 400, pathInfo.text);
      // The proxy is still healthy after all of that.
      assert.equal((await fetchWithin(`${proxy.url}/info.php`)).status, 200);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
    }
  });

  it("SIGTERM lets a request in flight finish, then exits 0; SIGINT does too", async () => {
    ready();
    const proxy = await startProxy(["--upstream", upstream, "--root", root]);
    let code: number | null = null;
    try {
      const started = join(root, "slow.started");
      rmSync(started, { force: true });
      const slow = fetchWithin(`${proxy.url}/slow.php`);
      // The signal comes once PHP runs the script, so the request is surely in flight.
      await waitFor(() => existsSync(started), 15_000, "slow.php to start");
      signal(proxy, "SIGTERM");
      const answer = await slow;
      assert.equal(answer.status, 200);
      assert.equal(answer.text, "slow done");
      code = await within(proxy.exited, 15_000, "fcgi proxy to exit after SIGTERM");
      assert.equal(code, 0, proxy.stderr());
      assert.equal(await canConnect(new URL(proxy.url).host), false, "nothing listens after the exit");
    } finally {
      if (code === null) await stop(proxy).catch(() => {});
    }
    const again = await startProxy(["--upstream", upstream, "--root", root]);
    signal(again, "SIGINT");
    assert.equal(await within(again.exited, 15_000, "fcgi proxy to exit after SIGINT").catch(async (e) => {
      await stop(again).catch(() => {});
      throw e;
    }), 0, again.stderr());
  });

  it("answers 502 when the backend is not there, and keeps serving", async () => {
    ready();
    const proxy = await startProxy(["--upstream", `unix:${join(base, "nobody.sock")}`, "--root", root, "--timeout", "2000"]);
    try {
      const answer = await fetchWithin(`${proxy.url}/info.php`);
      assert.equal(answer.status, 502);
      assert.equal((await fetchWithin(`${proxy.url}/info.php`)).status, 502);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
    }
  });
});

/** The inodes of the sockets `pid` holds open (from /proc/PID/fd). */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The inodes of the TCP sockets connected to local port `port` (from /proc/net/tcp). */
function inodesConnectedTo(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 9 && Number.parseInt(fields[2]!.split(":")[1]!, 16) === port) inodes.add(fields[9]!);
  }
  return inodes;
}

/** GET `url` on a connection of its own (no keep-alive), so that each request is a new connection for the kernel to place. */
function getOnce(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    }).on("error", reject);
  });
}

// SO_REUSEPORT: Linux; Node's listen() takes it from 22.12 (Node 20 refuses --workers, tested below).
const workersSkip = process.platform !== "linux" ? "SO_REUSEPORT spreading is Linux's" : runtimeName === "node" && !nodeHasReusePort(process.versions.node) ? `Node ${process.versions.node} has no reusePort` : false;

describe("fcgi proxy in front of fcgi serve", () => {
  let dir = "";
  let app: Service | undefined;
  let socket = "";

  const ready = setup(async () => {
    dir = mkdtempSync(join(tmpdir(), "fcgi-proxy-serve-"));
    // The gateway routes to a front controller file; the fcgi app behind it ignores SCRIPT_FILENAME.
    writeFileSync(join(dir, "index.php"), "");
    socket = join(dir, "app.sock");
    app = await startApp(sourcePath("examples/hello.ts"), socket);
  });

  after(async () => {
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("carries GET and POST both ways, many at once, over no more than --max-connections", async () => {
    ready();
    // A relay before the app counts the FastCGI connections the proxy holds open at once.
    const relay = await startCountingRelay(socket);
    const proxy = await startProxy(["--upstream", `127.0.0.1:${relay.port}`, "--root", dir, "--max-connections", "2"]);
    try {
      const hello = await fetchWithin(`${proxy.url}/`, { headers: { "User-Agent": "proxy-test" } });
      assert.equal(hello.status, 200);
      assert.equal(hello.text, "hello from fcgi, proxy-test\n");
      const body = "x".repeat(200_000);
      const echo = await fetchWithin(`${proxy.url}/echo`, { method: "POST", body, headers: { "Content-Type": "text/x-test" } });
      assert.equal(echo.status, 200);
      assert.equal(echo.text, body);
      assert.equal(echo.headers.get("content-type"), "text/x-test");
      assert.equal((await fetchWithin(`${proxy.url}/missing`)).status, 404);
      const many = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        fetchWithin(`${proxy.url}/echo`, { method: "POST", body: `n${i}` })));
      assert.deepEqual(many.map((r) => r.text), Array.from({ length: 40 }, (_, i) => `n${i}`));
      assert.ok(relay.connections >= 1 && relay.peak <= 2, `${relay.peak} FastCGI connections open at once, over --max-connections 2`);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
      await relay.close();
    }
  });

  it("--workers 2: two processes share the port, connections reach both, each with FastCGI connections of its own; SIGTERM stops all", { skip: workersSkip }, async () => {
    ready();
    // A relay before the app, on TCP, so /proc/net/tcp shows whose FastCGI connections reach it.
    const relay = await startCountingRelay(socket);
    const port = await freePort();
    const proxy = start(["proxy", "--workers", "2", "--listen", `127.0.0.1:${port}`, "--upstream", `127.0.0.1:${relay.port}`, "--root", dir]);
    try {
      await waitFor(() => /2 workers listening/.test(proxy.stderr()) || proxy.child.exitCode !== null, 30_000, "fcgi proxy --workers 2 to listen");
      const pids = [...proxy.stderr().matchAll(/\[(\d+)\] fcgi: listening on /g)].map((m) => Number(m[1]));
      assert.equal(new Set(pids).size, 2, proxy.stderr());
      assert.ok(!pids.includes(proxy.child.pid!), "the workers are processes of their own");
      // 40 connections, one request each: the kernel hashes each to one worker's socket.
      for (let i = 0; i < 40; i++) {
        const answer = await getOnce(`http://127.0.0.1:${port}/?n=${i}`);
        assert.equal(answer.status, 200);
        assert.equal(answer.text, "hello from fcgi, stranger\n");
      }
      // Each worker that served a request keeps its FastCGI connection to the relay (FCGI_KEEP_CONN).
      const toRelay = inodesConnectedTo(relay.port);
      const serving = pids.filter((pid) => [...socketInodes(pid)].some((inode) => toRelay.has(inode)));
      assert.deepEqual(serving, pids, `workers with a FastCGI connection: ${serving.join(", ")} of ${pids.join(", ")}`);
    } finally {
      assert.equal(await stop(proxy), 0, proxy.stderr());
      await relay.close();
    }
    for (const pid of [...proxy.stderr().matchAll(/\[(\d+)\] fcgi: stopped/g)].map((m) => m[1])) assert.ok(!existsSync(`/proc/${pid}`), `worker ${pid} is gone`);
    assert.equal([...proxy.stderr().matchAll(/\] fcgi: stopped/g)].length, 2, proxy.stderr());
  });
});

describe("fcgi proxy arguments", () => {
  it("--help describes every option", async () => {
    const run = await runCli(["proxy", "--help"]);
    assert.equal(run.code, 0);
    for (const flag of ["--listen", "--upstream", "--root", "--index", "--script-extension", "--static", "--no-try-files", "--backend-root", "--param", "--max-connections", "--timeout", "--no-keep-conn", "--raw-target", "--balance", "--backoff", "--max-backoff", "--health-check", "weight=", "--workers", "--reuse-port", "--lookup-cache"]) {
      assert.ok(run.stdout.includes(flag), `--help mentions ${flag}`);
    }
  });

  it("bad arguments exit 2 with a message naming the problem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fcgi-proxy-args-"));
    try {
      const cases: Array<[string[], RegExp]> = [
        [["--root", dir], /--upstream is missing/],
        [["--upstream", "127.0.0.1:9000"], /--root is missing/],
        [["--upstream", "127.0.0.1:9000", "--root", join(dir, "nope")], /--root: .* is not a directory/],
        [["--upstream", "127.0.0.1", "--root", dir], /invalid address/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--listen", "unix:/tmp/x.sock"], /--listen: .* is not HOST:PORT/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--listen", "127.0.0.1:99999"], /--listen: .*out of range/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--max-connections", "0"], /--max-connections: '0' is not a positive whole number/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--timeout", "soon"], /--timeout: 'soon'/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--index", "../x.php"], /--index: .* must be a file name/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--param", "NOVALUE"], /--param: 'NOVALUE' is not NAME=value/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--backend-root", "relative"], /--backend-root: .* must be an absolute path/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--bogus"], /unknown option --bogus/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "extra"], /unexpected argument 'extra'/],
        [["--upstream"], /--upstream needs a value/],
        [["--upstream", "127.0.0.1:9000", "--upstream", "127.0.0.1:9001,weight=0", "--root", dir], /--upstream: weight: '0' is not a positive whole number/],
        [["--upstream", "127.0.0.1:9000", "--upstream", "nowhere,weight=2", "--root", dir], /invalid address/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--balance", "random"], /--balance: 'random' is not least or round-robin/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--backoff", "0"], /--backoff: '0' is not a positive whole number/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--health-check", "often"], /--health-check: 'often'/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--workers", "0"], /--workers: '0' is not a positive whole number/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--workers", "2", "--listen", "127.0.0.1:0"], /--workers needs a --listen port other than 0/],
        [["--upstream", "127.0.0.1:9000", "--root", dir, "--lookup-cache", "soon"], /--lookup-cache: 'soon'/],
      ];
      for (const [args, message] of cases) {
        const run = await runCli(["proxy", ...args]);
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        assert.match(run.stderr, message, args.join(" "));
        assert.match(run.stderr, /fcgi proxy --help/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--workers on a runtime without SO_REUSEPORT (Node before 22.12) is a clear error and exit status 1", { skip: runtimeName === "node" && !nodeHasReusePort(process.versions.node) ? false : "this runtime has reusePort" }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "fcgi-proxy-args-"));
    try {
      const run = await runCli(["proxy", "--workers", "2", "--listen", `127.0.0.1:${await freePort()}`, "--upstream", "127.0.0.1:9", "--root", dir]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /SO_REUSEPORT needs Node 22\.12 or later/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a port in use is a clear error and exit status 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fcgi-proxy-args-"));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const port = (taken.address() as { port: number }).port;
      const run = await runCli(["proxy", "--listen", `127.0.0.1:${port}`, "--upstream", "127.0.0.1:9", "--root", dir]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
