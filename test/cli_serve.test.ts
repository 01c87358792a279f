// `fcgi serve`, spawned as users run it on this runtime, spoken to over loopback sockets.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, sourcePath, startCli, type RunningCli } from "./_support/env.ts";
import { fcgiRequest, httpParams, parseCgi, parseValues, RecordClient } from "./_support/records.ts";
import { within } from "./_support/poll.ts";

type Running = RunningCli;

function start(args: string[], cwd = repoRoot): Running {
  return startCli(["serve", ...args], cwd);
}

async function listening(running: Running, timeout = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = [...running.stderr().matchAll(/fcgi: listening on (\S+)/g)].map((m) => m[1]!);
    if (found.length > 0) {
      await new Promise((r) => setTimeout(r, 50));
      return [...running.stderr().matchAll(/fcgi: listening on (\S+)/g)].map((m) => m[1]!);
    }
    if (running.child.exitCode !== null) throw new Error(`fcgi serve exited early (${running.child.exitCode}): ${running.stderr()}`);
    if (Date.now() > deadline) throw new Error(`fcgi serve did not start: ${running.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// process.kill rather than child.kill: Deno's child_process reports a child it signalled as
// killed by that signal (code null) even when the child handled it and exited 0.
function signal(running: Running, name: NodeJS.Signals): void {
  if (running.child.exitCode === null && running.child.pid !== undefined) process.kill(running.child.pid, name);
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

async function stop(running: Running): Promise<number | null> {
  signal(running, "SIGTERM");
  const code = await within(running.exited, 15_000, "fcgi serve to exit").catch((error) => {
    running.child.kill("SIGKILL");
    throw error;
  });
  return code;
}

const hello = sourcePath("examples/hello.ts");

test("fcgi serve runs a module's default export, says where it listens, and exits 0 on SIGTERM", async () => {
  const running = start([hello, "--listen", "127.0.0.1:0"]);
  try {
    const [address] = await listening(running);
    assert.match(address!, /^127\.0\.0\.1:\d+$/);
    const port = portOf(address!);
    const get = parseCgi((await fcgiRequest(port, { params: httpParams("/", { HTTP_USER_AGENT: "test" }) })).stdout);
    assert.equal(get.text, "hello from fcgi, test\n");
    const post = parseCgi((await fcgiRequest(port, { params: httpParams("/echo", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4", CONTENT_TYPE: "text/x" }), stdin: "ping" })).stdout);
    assert.equal(post.text, "ping");
    assert.equal(post.header("content-type"), "text/x");
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/nope") })).stdout).status, 404);
  } finally {
    assert.equal(await stop(running), 0, running.stderr());
  }
});

test("SIGTERM lets the in-flight request finish before exiting 0; SIGINT works too", async () => {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-cli-"));
  try {
    const module = join(dir, "slow.mjs");
    writeFileSync(module, `export default async function (request) {
  await new Promise((r) => setTimeout(r, 500));
  return new Response("slow " + new URL(request.url).pathname);
}
`);
    const running = start([module, "--listen", "127.0.0.1:0", "--close-timeout", "5s"]);
    try {
      const port = portOf((await listening(running))[0]!);
      const client = await RecordClient.connect(port);
      try {
        client.send(1, { params: httpParams("/x") });
        await new Promise((r) => setTimeout(r, 150));
        signal(running, "SIGTERM");
        assert.equal(parseCgi((await client.response(1, 5000)).stdout).text, "slow /x");
      } finally {
        client.destroy();
      }
      assert.equal(await within(running.exited, 10_000, "exit"), 0, running.stderr());
    } finally {
      await stop(running).catch(() => {});
    }
    const again = start([module, "--listen", "127.0.0.1:0"]);
    try {
      await listening(again);
      signal(again, "SIGINT");
      assert.equal(await within(again.exited, 10_000, "exit"), 0, again.stderr());
    } finally {
      await stop(again).catch(() => {});
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fcgi serve listens on several addresses, Unix sockets with --socket-mode, and takes limit flags", async () => {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-cli-"));
  const path = join(dir, "app.sock");
  const running = start([hello, "--listen", "127.0.0.1:0", "--listen", `unix:${path}`, "--socket-mode", "600", "--no-multiplex", "--max-connections", "5", "--max-requests=7", "--params-timeout", "2s", "--idle-timeout", "1m", "--max-params-bytes", "64k", "--max-body-bytes", "1M", "--max-buffered-bytes", "256k", "--close-timeout", "500ms", "--allow", "127.0.0.1"]);
  try {
    const addresses = await listening(running);
    assert.equal(addresses.length, 2);
    assert.ok(addresses.includes(`unix:${path}`), addresses.join(" "));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const viaUnix = await fcgiRequest({ path }, { params: httpParams("/") });
    assert.match(parseCgi(viaUnix.stdout).text, /^hello/);
    const client = await RecordClient.connect(portOf(addresses.find((a) => a.startsWith("127."))!));
    try {
      client.getValues(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]);
      assert.deepEqual([...parseValues((await client.next()).content)], [["FCGI_MAX_CONNS", "5"], ["FCGI_MAX_REQS", "7"], ["FCGI_MPXS_CONNS", "0"]]);
    } finally {
      client.destroy();
    }
  } finally {
    assert.equal(await stop(running), 0, running.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fcgi serve --help describes every option", async () => {
  const running = start(["--help"]);
  assert.equal(await within(running.exited, 20_000, "--help"), 0);
  const text = running.stdout();
  for (const flag of ["--listen", "--allow", "--socket-mode", "--no-multiplex", "--runtime", "--max-connections", "--max-requests", "--max-params-bytes", "--max-body-bytes", "--max-buffered-bytes", "--params-timeout", "--idle-timeout", "--close-timeout", "--no-override-globals"]) {
    assert.ok(text.includes(flag), `--help mentions ${flag}`);
  }
  assert.match(text, /file\s+descriptor 0/);
  assert.match(text, /stderr/);
});

test("fcgi serve refuses bad arguments with exit code 2 and a bad module with exit code 1", async () => {
  for (const args of [[], [hello, "--max-connections", "zero"], [hello, "--bogus"], [hello, "--runtime", "java"], [hello, "--listen"]]) {
    const running = start(args);
    assert.equal(await within(running.exited, 20_000, "exit"), 2, `${args.join(" ")}: ${running.stderr()}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "fcgi-cli-"));
  try {
    writeFileSync(join(dir, "none.mjs"), "export const x = 1;\n");
    const running = start([join(dir, "none.mjs"), "--listen", "127.0.0.1:0"]);
    assert.equal(await within(running.exited, 20_000, "exit"), 1);
    assert.match(running.stderr(), /default export/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fcgi serve: '--' ends the options, so a module path may start with '-'; '-' (standard input) is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-cli-"));
  try {
    writeFileSync(join(dir, "-app.mjs"), "export default { fetch() { return new Response('dashed'); } };\n");
    const running = start(["--listen", "127.0.0.1:0", "--", "-app.mjs"], dir);
    try {
      const port = portOf((await listening(running))[0]!);
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "dashed");
    } finally {
      assert.equal(await stop(running), 0, running.stderr());
    }
    for (const args of [["-"], ["--", "-"], ["-app.mjs"], ["--", "-app.mjs", "--help"]]) {
      const refused = start(args, dir);
      assert.equal(await within(refused.exited, 20_000, "exit"), 2, `${args.join(" ")}: ${refused.stderr()}`);
    }
    const help = start(["--help"]);
    assert.equal(await within(help.exited, 20_000, "--help"), 0);
    assert.match(help.stdout(), /'--' ends the options/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a relative module path is resolved against the current directory", async () => {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-cli-"));
  try {
    writeFileSync(join(dir, "app.mjs"), "export default { fetch() { return new Response('relative'); } };\n");
    const running = start(["./app.mjs", "--listen", "127.0.0.1:0"], dir);
    try {
      const port = portOf((await listening(running))[0]!);
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "relative");
    } finally {
      assert.equal(await stop(running), 0, running.stderr());
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
