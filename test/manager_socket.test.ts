// The socket a pool's workers share keeps O_NONBLOCK through worker starts and exits. The flag
// belongs to the socket, not to one process's descriptor: when it turned blocking (node:child_process
// makes a child's fd 0 blocking; Node restores its fd 0 as it found it on exit), every worker's
// accept() could stall its event loop, and requests on its other connections hung during reloads.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startCli } from "./_support/env.ts";
import { waitFor } from "./_support/poll.ts";
import { makeTempDir, removeDir } from "./interop/_servers.ts";

const O_NONBLOCK = 0o4000;

function workerPids(manager: number): number[] {
  const out = spawnSync("pgrep", ["-P", String(manager)], { encoding: "utf8" }).stdout ?? "";
  return out.split("\n").filter(Boolean).map(Number).sort();
}

/**
 * O_NONBLOCK of each listening Unix socket `pid` holds, read from /proc (its inode is in
 * /proc/net/unix with state LISTEN; by inode, not path: Bun's and Deno's manager bind a temporary
 * name and rename it into place). A worker holds one: the pool's, on one descriptor.
 */
function listeningSocketFlags(pid: number): boolean[] {
  const inodes = new Set(
    readFileSync("/proc/net/unix", "utf8").split("\n").slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[5] === "01") // st 01: listening
      .map((f) => f[6]!),
  );
  const flags: boolean[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode === undefined || !inodes.has(inode)) continue;
    const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    flags.push((parseInt(/^flags:\s+(\d+)/m.exec(info)![1]!, 8) & O_NONBLOCK) !== 0);
  }
  return flags;
}

test("the pool's shared socket stays non-blocking as workers start, drain and exit", { timeout: 60_000, skip: process.platform !== "linux" && "reads /proc" }, async () => {
  const dir = makeTempDir("fcgi-manager-socket-");
  const path = join(dir, "app.sock");
  const module = join(dir, "app.mjs");
  writeFileSync(module, `export default { fetch: () => new Response("ok") };\n`);
  const manager = startCli(["serve", module, "--workers", "2", "--listen", `unix:${path}`, "--close-timeout", "2s"]);
  try {
    const listening = () => (manager.stderr().match(/listening on/g) ?? []).length;
    await waitFor(() => listening() >= 2, 30_000, `two workers listening:\n${manager.stderr()}`);
    const first = workerPids(manager.child.pid!);
    assert.equal(first.length, 2, manager.stderr());
    for (const pid of first) assert.deepEqual(listeningSocketFlags(pid), [true], `worker ${pid} holds the socket, non-blocking`);

    // A drained worker's exit and its replacement's start: the two moments that flipped the flag.
    process.kill(first[0]!, "SIGTERM");
    await waitFor(() => listening() >= 3, 30_000, `a replacement listening:\n${manager.stderr()}`);
    await waitFor(() => !workerPids(manager.child.pid!).includes(first[0]!), 10_000, "the drained worker to exit");
    const now = workerPids(manager.child.pid!);
    assert.equal(now.length, 2, manager.stderr());
    for (const pid of now) assert.deepEqual(listeningSocketFlags(pid), [true], `worker ${pid} after a worker exited and one started\n${manager.stderr()}`);
  } finally {
    manager.child.kill("SIGTERM");
    await manager.exited;
    removeDir(dir);
  }
});
