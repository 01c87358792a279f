// `npm run server`, the README's first command, started as a user starts it on each runtime:
// it must print its URL, serve the demo page over FastCGI from a second process, and on SIGINT
// leave neither process nor the socket file behind.
//
// What is started, per runtime:
// - Node: `node scripts/run-ts.mjs examples/server.ts`, the body of package.json's "server" script
//   (npm itself only adds a shell in front of it).
// - Deno: `deno task server`, exactly the documented command (deno task passes SIGINT on).
// - Bun: `bun --bun run server`: package.json's script with `node` meaning Bun, so run-ts.mjs,
//   examples/server.ts and the `fcgi serve` child all run on Bun. (Plain `bun run server` runs
//   the script with the machine's Node, which the Node run already covers.)
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { repoRoot, runtimeName } from "./_support/env.ts";
import { freePort } from "./_support/phpfpm.ts";

import { fetchWithin, isRunning } from "./interop/_servers.ts";
import { within } from "./_support/poll.ts";

declare const Deno: { execPath(): string } | undefined;

/** The first start may compile dist/ (Node 20) or warm Deno's cache: be generous. */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

interface Running {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function startServer(port: number): Running {
  const [command, args] = runtimeName === "deno"
    ? [Deno!.execPath(), ["task", "server"]]
    : runtimeName === "bun"
    ? [process.execPath, ["--bun", "run", "server"]]
    : [process.execPath, [join(repoRoot, "scripts", "run-ts.mjs"), "examples/server.ts"]];
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PORT: String(port), NO_COLOR: "1" },
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits until `pattern` appears in the output; fails early when the process exits first. */
async function waitForLine(running: Running, pattern: RegExp, timeout = START_TIMEOUT_MS): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const m = pattern.exec(running.output());
    if (m) return m;
    if (running.child.exitCode !== null) throw new Error(`the server exited (${running.child.exitCode}) before printing ${pattern}:\n${running.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeout} ms:\n${running.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits (bounded) for processes to be gone: a reparented child may take a moment to be reaped. */
async function gone(pids: number[], what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (pids.some(isRunning)) {
    if (Date.now() > deadline) throw new Error(`${what}: still running: ${pids.filter(isRunning).join(", ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGINT as from a terminal; SIGKILL for everything left if the test fails on the way. */
async function interrupt(running: Running, pids: number[]): Promise<number | null> {
  if (running.child.exitCode === null) process.kill(running.child.pid!, "SIGINT");
  return await within(running.exited, STOP_TIMEOUT_MS, "the server to exit after SIGINT").catch((error) => {
    for (const pid of [running.child.pid!, ...pids]) if (isRunning(pid)) process.kill(pid, "SIGKILL");
    throw error;
  });
}

test("npm run server serves the demo page over FastCGI from a second process, and SIGINT stops both", { timeout: START_TIMEOUT_MS + 60_000 }, async () => {
  const port = await freePort();
  const running = startServer(port);
  const pids: number[] = [];
  let code: number | null | undefined;
  try {
    const app = await waitForLine(running, /runs under 'fcgi serve' on (\w+) \(pid (\d+)\) at unix:(\S+)/);
    const appPid = Number(app[2]);
    const socket = app[3]!;
    pids.push(appPid);
    const url = (await waitForLine(running, /open (http:\/\/localhost:\d+\/)/))[1]!;
    const frontPid = Number((await waitForLine(running, /HTTP front \(pid (\d+)\)/))[1]);
    pids.push(frontPid);
    assert.equal(url, `http://localhost:${port}/`);
    assert.equal(app[1], runtimeName, "the app runs on the runtime that started the demo");
    assert.notEqual(appPid, frontPid);
    assert.ok(existsSync(socket), "the FastCGI socket exists while the demo runs");

    // The page, made by the app process and carried over FastCGI.
    const page = await fetchWithin(url.replace("localhost", "127.0.0.1"), { headers: { "User-Agent": "demo-test" } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.text, /Served over FastCGI/);
    assert.match(page.text, new RegExp(`id="pid">${appPid}<`));
    assert.match(page.text, /<th>GATEWAY_INTERFACE<\/th><td>CGI\/1\.1<\/td>/);
    assert.match(page.text, /<th>HTTP_USER_AGENT<\/th><td>demo-test<\/td>/);

    // What the app got, as JSON: the gateway's params, the app's own process, a live counter.
    const info = JSON.parse((await fetchWithin(`http://127.0.0.1:${port}/info.json?x=1`)).text) as {
      pid: number; served: number; requestId: number; socket: string; params: Record<string, string>;
    };
    assert.equal(info.pid, appPid);
    assert.equal(info.socket, `unix:${socket}`);
    assert.ok(info.served >= 2, `the counter goes on between requests (${info.served})`);
    assert.equal(info.params.REMOTE_ADDR, "127.0.0.1");
    assert.equal(info.params.REQUEST_URI, "/info.json?x=1");
    assert.equal(info.params.QUERY_STRING, "x=1");
    assert.equal(info.params.SERVER_PORT, String(port));
    assert.match(info.params.SCRIPT_FILENAME ?? "", /[/\\]app\.(ts|js)$/);

    // The form: STDIN there, a 303 with a Location back.
    const posted = await fetchWithin(`http://127.0.0.1:${port}/`, { method: "POST", body: new URLSearchParams({ message: "hi <there>" }) });
    assert.equal(posted.status, 303);
    assert.equal(posted.headers.get("location"), "/");
    assert.match((await fetchWithin(`http://127.0.0.1:${port}/`)).text, /<li>hi &lt;there&gt; /);

    code = await interrupt(running, pids);
    assert.equal(code, 0, running.output());
    await gone(pids, "after SIGINT");
    assert.equal(existsSync(socket), false, "the socket file is removed");
  } finally {
    if (code === undefined) await interrupt(running, pids).catch(() => {});
  }
});

test("npm run server says clearly when its port is taken, and leaves no app behind", { timeout: START_TIMEOUT_MS + 60_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  const port = (taken.address() as { port: number }).port;
  const running = startServer(port);
  try {
    const code = await within(running.exited, START_TIMEOUT_MS, "the server to give up");
    assert.equal(code, 1, running.output());
    assert.match(running.output(), new RegExp(`port ${port} is in use`));
    const app = /\(pid (\d+)\) at unix:(\S+)/.exec(running.output());
    assert.ok(app, running.output());
    await gone([Number(app[1])], "the app after the failed start");
    assert.equal(existsSync(app[2]!), false, "the socket file is removed");
  } finally {
    if (running.child.exitCode === null) running.child.kill("SIGKILL");
    await new Promise((resolve) => taken.close(resolve));
  }
});
