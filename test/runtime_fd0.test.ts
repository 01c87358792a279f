// FCGI_LISTENSOCK_FILENO: a web server or spawn-fcgi starts the application with its listening socket
// on fd 0. A python3 stand-in for spawn-fcgi creates the socket, puts it on fd 0 and execs the runtime;
// the child (runtime_fd0_child.ts) accepts through each adapter this runtime has and echoes. Started
// without such a socket, the child must fail with the clear error, not hang or listen elsewhere.
import { requirePresent, skipUnless, test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getRuntime, detectRuntime } from "../src/runtime/index.ts";
import type { Runtime } from "../src/runtime/types.ts";
import type { Connection, SocketAddress } from "../src/socket.ts";
import { runtimeCommand, runtimeName } from "./_support/env.ts";

const ADAPTERS: ReadonlyArray<Runtime["name"]> = runtimeName === "node" ? ["node"] : [runtimeName, "node"];
const WAIT = 20_000;
const hasPython = spawnSync("python3", ["-c", "pass"]).status === 0;

// Binds a listening socket (TCP on 127.0.0.1:0, or Unix at a path), moves it to fd 0 and execs the rest of argv.
const SPAWN_FCGI = `
import os, socket, sys
kind, target = sys.argv[1], sys.argv[2]
if kind == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(target)
s.listen(16)
os.dup2(s.fileno(), 0)
s.close()
os.execvp(sys.argv[3], sys.argv[3:])
`;

function childArgs(adapter: Runtime["name"]): [string, string[]] {
  return runtimeCommand("test/runtime_fd0_child.ts", ["--fcgi-fd0-child", adapter]);
}

/** Resolves with the child's first stdout line (or rejects when it exits first or time runs out). */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no line from the child within ${WAIT} ms; stderr: ${err}`)), WAIT);
    child.stderr!.on("data", (d: Buffer) => (err += d));
    child.stdout!.on("data", (d: Buffer) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the child exited (${code}) before a line; stdout: ${out}; stderr: ${err}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the child did not exit")), WAIT);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Connects, sends a line, expects it back, closes. */
async function echoOnce(address: SocketAddress): Promise<string> {
  const runtime = await detectRuntime();
  let got = "";
  let done!: () => void;
  const echoed = new Promise<void>((resolve) => (done = resolve));
  let connection: Connection | undefined;
  try {
    connection = await runtime.connect(address, {
      onData(chunk) {
        got += new TextDecoder().decode(chunk);
        if (got.length >= 13) done();
      },
      onDrain() {},
      onClose() {
        done();
      },
    });
    connection.write([new TextEncoder().encode("ping over fd0")]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([echoed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no echo")), WAIT)))]).finally(() => clearTimeout(timer));
    return got;
  } finally {
    connection?.end();
  }
}

const NEEDS_PYTHON = "python3 is needed to start a process with a listening socket on fd 0";
/** Skipped, with its reason, only outside CI; in CI a missing python3 fails the test. */
const needsPython = { skip: skipUnless(hasPython, NEEDS_PYTHON) };

for (const adapter of ADAPTERS) {
  test(`${adapter}: accepts on a listening TCP socket inherited on fd 0, reporting its real address`, needsPython, async () => {
    requirePresent(hasPython, NEEDS_PYTHON);
    const [cmd, args] = childArgs(adapter);
    const child = spawn("python3", ["-c", SPAWN_FCGI, "tcp", "-", cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const line = await firstLine(child);
      const m = /^listening 127\.0\.0\.1:(\d+) (\w+)$/.exec(line);
      assert.ok(m, `the child says where it listens: ${line}`);
      assert.equal(m[2], adapter === "node" ? "node" : runtimeName);
      assert.equal(await echoOnce({ transport: "tcp", hostname: "127.0.0.1", port: Number(m[1]) }), "ping over fd0");
      assert.equal(await exited(child), 0);
    } finally {
      child.kill();
    }
  });

  test(`${adapter}: accepts on a listening Unix socket inherited on fd 0`, needsPython, async () => {
    requirePresent(hasPython, NEEDS_PYTHON);
    const dir = mkdtempSync(join(tmpdir(), "fcgi-fd0-"));
    const path = join(dir, "fd0.sock");
    const [cmd, args] = childArgs(adapter);
    const child = spawn("python3", ["-c", SPAWN_FCGI, "unix", path, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const line = await firstLine(child);
      assert.match(line, /^listening fd:0 \w+$/, "the path of an inherited Unix socket is unknown: the address stays fd:0");
      assert.equal(await echoOnce({ transport: "unix", path }), "ping over fd0");
      assert.equal(await exited(child), 0);
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [what, stdin] of [["/dev/null", "ignore"], ["a pipe", "pipe"]] as const) {
    test(`${adapter}: with ${what} on fd 0 instead of a listening socket, listening fails with the clear error`, async () => {
      const [cmd, args] = childArgs(adapter);
      const child = spawn(cmd, args, { stdio: [stdin, "pipe", "pipe"] });
      try {
        const line = await firstLine(child);
        assert.match(line, /^error \w+ listen \w+ fd:0: file descriptor 0 is not a listening socket/);
        assert.match(line, /use a listen address|Pass a listen address/i);
        assert.equal(await exited(child), 1);
      } finally {
        child.kill();
      }
    });
  }
}

test("connecting to fd:0 is refused at once: it names a listening socket, not a peer", async () => {
  for (const adapter of ADAPTERS) {
    const runtime = await getRuntime(adapter);
    await assert.rejects(runtime.connect({ transport: "fd", fd: 0 }, { onData() {}, onDrain() {}, onClose() {} }), /cannot connect to fd:0/);
  }
});
