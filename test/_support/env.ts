// Test-only facts about where the suite runs: which runtime, where the repo is, how to start the CLI
// under the same runtime. Tests run from test/ on Deno and Bun and from dist/test/ on Node.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

declare const Deno: { execPath(): string } | undefined;
declare const Bun: unknown;

/** The runtime running this test. */
export const runtimeName: "node" | "deno" | "bun" =
  typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : "node";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || existsSync(join(dir, "tsconfig.json")) === false) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repo root not found");
    dir = up;
  }
  return dir;
}

/** The repository root (the folder holding package.json). */
export const repoRoot: string = findRoot();

/** True when the suite runs from compiled JavaScript (Node), false when from TypeScript source. */
export const compiled: boolean = import.meta.url.endsWith(".js");

/** The path of a source module as this runtime should load it (the dist/ .js copy on Node). */
export function sourcePath(relative: string): string {
  return compiled ? join(repoRoot, "dist", relative.replace(/\.ts$/, ".js")) : join(repoRoot, relative);
}

/** The command and arguments that run a TypeScript entry point (e.g. "src/cli.ts") on this runtime. */
export function runtimeCommand(entry: string, args: readonly string[] = []): [string, string[]] {
  const file = sourcePath(entry);
  if (runtimeName === "deno") return [Deno!.execPath(), ["run", "-A", file, ...args]];
  return [process.execPath, [file, ...args]];
}

/** The command that runs the fcgi CLI on this runtime. */
export function cliCommand(args: readonly string[]): [string, string[]] {
  return runtimeCommand("src/cli.ts", args);
}

/** A spawned CLI, its output so far, and its exit status once its pipes are drained. */
export interface RunningCli {
  child: ChildProcess;
  stderr(): string;
  stdout(): string;
  exited: Promise<number | null>;
}

/** Starts `fcgi ...args` on this runtime with piped output (no colour). */
export function startCli(args: readonly string[], cwd: string = repoRoot): RunningCli {
  const [command, argv] = cliCommand(args);
  const child = spawn(command, argv, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let err = "";
  let out = "";
  child.stderr!.on("data", (d) => (err += d));
  child.stdout!.on("data", (d) => (out += d));
  // "close" waits for the pipes too, so the output is complete.
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, stderr: () => err, stdout: () => out, exited };
}

/** True when running in CI, where every interop dependency must be present (missing ones fail, not skip). */
export const inCI: boolean = !!process.env.CI;

/**
 * True if something accepts a connection at `address` ("host:port", "[v6]:port" or a Unix socket
 * path), connecting from the local address `from` if given (an app's allow-list may name it).
 */
export function canConnect(address: string, from?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTo(address, from);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** A node:net connection to `address` ("host:port", "[v6]:port" or a Unix socket path), from `localAddress` if given. */
export function connectTo(address: string, localAddress?: string): Socket {
  if (address.startsWith("/")) return connect(address);
  return connect({ port: portOf(address), host: hostOf(address), ...(localAddress ? { localAddress } : {}) });
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
}
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}
