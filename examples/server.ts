/**
 * `npm run server` (or `deno task server`, `bun run server`): the one-command demo of fcgi's two
 * sides, in two processes.
 *
 * 1. The application side: examples/app.ts runs under `fcgi serve` (this checkout's CLI, on the
 *    runtime running this script) as a child process, on a Unix socket in a temporary folder.
 * 2. The web-server side: this process serves HTTP on http://localhost:8080 (set PORT for
 *    another port) through `gateway()`, which routes each request as an nginx PHP site would
 *    (the app is the front controller) and sends it over FastCGI with the pooled Client.
 *
 * Open the URL: the page is made by the app and names the process and the FastCGI request that
 * carried it. Ctrl-C (SIGINT) or SIGTERM stops both processes and removes the socket.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../mod.ts";
import { gateway, type Gateway } from "../src/client/gateway.ts";
import { listenHttp } from "../src/runtime/http.ts";

const HOSTNAME = "127.0.0.1";
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

function say(line: string): void {
  console.log(`fcgi demo: ${line}`);
}

function warn(line: string): void {
  console.error(`fcgi demo: ${line}`);
}

function fail(line: string, code: number): never {
  warn(line);
  process.exit(code);
}

function portFromEnv(): number {
  const text = process.env.PORT;
  if (text === undefined || text === "") return 8080;
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) fail(`PORT=${text} is not a port number (0-65535)`, 2);
  return Number(text);
}

/** True once something accepts connections on the Unix socket. */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const port = portFromEnv();
// This script runs from source (examples/server.ts) or compiled (dist/examples/server.js, Node 20):
// the CLI and the app are taken from the same tree, so they are the same code as this script.
const extension = extname(fileURLToPath(import.meta.url));
const cli = fileURLToPath(new URL(`../src/cli${extension}`, import.meta.url));
const app = fileURLToPath(new URL(`./app${extension}`, import.meta.url));
const runtime = (await detectRuntime()).name;
const dir = mkdtempSync(join(tmpdir(), "fcgi-server-"));
const socket = join(dir, "app.sock");

// Its own process group: a Ctrl-C in the terminal reaches this process only, which then stops
// the app once (a second signal would tell `fcgi serve` to exit without finishing requests).
const child: ChildProcess = spawn(
  process.execPath,
  [...(runtime === "deno" ? ["run", "-A"] : []), cli, "serve", app, "--listen", `unix:${socket}`, "--close-timeout", "5s"],
  { stdio: ["ignore", "inherit", "inherit"], detached: true },
);
let childGone = false;
const childExit = new Promise<number | null>((resolve) => {
  child.once("exit", (code, signal) => {
    childGone = true;
    resolve(code ?? (signal ? 1 : 0));
  });
  child.once("error", (error) => {
    childGone = true;
    warn(`cannot start ${process.execPath}: ${error.message}`);
    resolve(1);
  });
});

let handler: Gateway | undefined;
let server: Awaited<ReturnType<typeof listenHttp>> | undefined;
let stopping: Promise<never> | undefined;

/** Stops the HTTP side, then the app, removes the socket's folder, and exits. */
function shutdown(code: number, why: string): Promise<never> {
  stopping ??= (async () => {
    (code === 0 ? say : warn)(why);
    await Promise.race([server?.close(), sleep(STOP_TIMEOUT_MS)]);
    await Promise.race([handler?.close(), sleep(STOP_TIMEOUT_MS)]);
    if (!childGone) {
      process.kill(child.pid!, "SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await childExit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    say("stopped");
    process.exit(code);
  })();
  return stopping;
}

let signals = 0;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (++signals > 1) {
      // Asked twice: no more waiting, but no orphan and no stale socket either.
      if (!childGone) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      process.exit(1);
    }
    void shutdown(0, `${signal}: stopping the HTTP front, then the app`);
  });
}
void childExit.then((code) => {
  if (!stopping) void shutdown(1, `the app exited unexpectedly (status ${code})`);
});

const deadline = Date.now() + START_TIMEOUT_MS;
while (!(await accepts(socket))) {
  if (stopping) await stopping;
  if (Date.now() > deadline) await shutdown(1, `the app did not accept connections on ${socket} within ${START_TIMEOUT_MS / 1000} s`);
  await sleep(50);
}
say(`examples/app.ts runs under 'fcgi serve' on ${runtime} (pid ${child.pid}) at unix:${socket}`);

// The app is the front controller of a document root holding it: every request goes to it, with
// SCRIPT_FILENAME set to its path, as nginx's try_files ... /index.php does for a PHP app.
handler = gateway({
  upstream: { transport: "unix", path: socket },
  documentRoot: dirname(app),
  index: basename(app),
  scriptExtension: extension,
});
try {
  server = await listenHttp(handler, { hostname: HOSTNAME, port });
} catch (error) {
  const code = (error as { code?: unknown }).code;
  await shutdown(1, code === "EADDRINUSE"
    ? `port ${port} is in use on ${HOSTNAME}: stop what runs there, or pick another port, e.g. PORT=8081 npm run server`
    : `cannot listen on ${HOSTNAME}:${port}: ${error instanceof Error ? error.message : String(error)}`);
}
say(`HTTP front (pid ${process.pid}): gateway → FastCGI → the app`);
say(`open http://localhost:${server!.port}/   (Ctrl-C stops both)`);
