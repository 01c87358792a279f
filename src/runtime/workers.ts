/**
 * What the three adapters share for the process manager: the inherited fd 0, worker output split
 * into lines, spawning through `node:child_process` (Node, Bun), and opening a socket through
 * `node:net` and keeping a duplicate of its descriptor (Bun, Deno), so that the manager's own
 * event loop stops watching it and never accepts a connection meant for a worker.
 * @module
 */
import { spawn } from "node:child_process";
import { renameSync, unlinkSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { lookup } from "node:dns/promises";
import type { SocketAddress } from "../socket.ts";
import { adoptUnixPath, claimUnixPath, socketError } from "./common.ts";
import type { WorkerExit, WorkerProcess, WorkerSocket, WorkerSpawnOptions } from "./types.ts";

/** A socket this process inherited (fd 0 from spawn-fcgi, a web server or a parent manager; systemd's from fd 3): not ours to close. */
export function inheritedSocket(address: SocketAddress & { transport: "fd" }): WorkerSocket {
  return { fd: address.fd, address, close: () => {} };
}

/** Longest worker output line kept whole; the rest of a longer line is cut, so a line without end cannot grow memory. */
const MAX_LINE = 16 * 1024;

/** A function taking output chunks that calls `onLine` once per complete line (flush with `end`). */
export function lineSplitter(onLine: (line: string) => void): { push(text: string): void; end(): void } {
  let pending = "";
  return {
    push(text: string): void {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf("\n")) !== -1) {
        onLine(pending.slice(0, Math.min(newline, MAX_LINE)));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > MAX_LINE) pending = pending.slice(0, MAX_LINE);
    },
    end(): void {
      if (pending !== "") onLine(pending);
      pending = "";
    },
  };
}

/** Spawns a worker with `node:child_process`, which hands an integer stdio descriptor to the child (Node, Bun). */
export function spawnWithChildProcess(options: WorkerSpawnOptions): WorkerProcess {
  const [program, ...args] = options.command;
  // fd 3, not 0: see WorkerHost.workerListenFd.
  const child = spawn(program!, args, { stdio: ["ignore", "pipe", "pipe", options.listenFd], env: { ...process.env, ...options.env } });
  const out = lineSplitter(options.onStdout);
  const err = lineSplitter(options.onStderr);
  child.stdout!.setEncoding("utf8").on("data", (text: string) => out.push(text));
  child.stderr!.setEncoding("utf8").on("data", (text: string) => err.push(text));
  const exited = new Promise<WorkerExit>((resolve) => {
    child.once("error", (error) => {
      options.onStderr(`cannot start: ${error.message}`);
      resolve({ code: 127, signal: null });
    });
    // "close" waits for the pipes too, so the last stderr lines are in before the exit is reported.
    child.once("close", (code, signal) => {
      out.end();
      err.end();
      resolve({ code, signal });
    });
  });
  return {
    pid: child.pid ?? -1,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    exited,
  };
}

/** A numeric IP for `hostname` (the manager binds before any worker runs). */
export async function numericHost(hostname: string): Promise<{ address: string; family: 4 | 6 }> {
  const { address, family } = await lookup(hostname);
  return { address, family: family === 6 ? 6 : 4 };
}

/**
 * Opens `address` with `node:net`, keeps a duplicate of its descriptor (`dup`), then closes the
 * server, so this process's event loop no longer accepts on it while the duplicate stays a
 * listening socket. A Unix socket is bound at a temporary name and renamed into place before the
 * close, since closing removes the file at the name it was bound to.
 */
export async function listenAndKeepDuplicate(
  address: SocketAddress,
  socketMode: number | undefined,
  probe: (path: string) => Promise<boolean>,
  descriptorOf: (server: Server, address: SocketAddress) => number | Promise<number>,
  libc: { dup(fd: number): number; close(fd: number): number },
): Promise<WorkerSocket> {
  if (address.transport === "fd") throw new TypeError("unreachable: an inherited fd is taken as it is, not opened");
  const server = createServer();
  const temporary = address.transport === "unix" ? `${address.path}.${process.pid}.tmp` : undefined;
  if (address.transport === "unix") await claimUnixPath(address.path, probe);
  const host = address.transport === "tcp" ? await numericHost(address.hostname) : undefined;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(socketError("listen", address, error)));
    server.listen(temporary !== undefined ? { path: temporary } : { host: host!.address, port: (address as { port: number }).port }, resolve);
  });
  let bound: SocketAddress = address;
  const info = server.address();
  if (address.transport === "tcp" && info !== null && typeof info === "object") bound = { transport: "tcp", hostname: info.address, port: info.port };
  const fd = libc.dup(await descriptorOf(server, bound));
  if (fd < 0) {
    server.close();
    throw socketError("listen", address, new Error("dup() of the listening socket failed"));
  }
  if (temporary !== undefined) {
    renameSync(temporary, (address as { path: string }).path);
    adoptUnixPath((address as { path: string }).path, socketMode);
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    fd,
    address: bound,
    close: () => {
      libc.close(fd);
      if (address.transport === "unix") {
        try {
          unlinkSync(address.path);
        } catch {
          // Already gone.
        }
      }
    },
  };
}
