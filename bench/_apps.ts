// What bench/nginx.ts, bench/soak.ts and bench/express.ts start: the fcgi app they serve, fcgi built
// into a temp folder, the command that runs `fcgi serve` (or another entry point) under each
// runtime, and /proc readings.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";
import { type Service, type WebServer, canConnect, findBinary, freePort, renderExample, startNginx, startProcess } from "../test/interop/_servers.ts";

const MiB = 1024 * 1024;

/**
 * The fcgi app, as a user would write it: one fetch handler, three routes (/hello, a 1 MiB
 * /download whose byte i is i & 255, /upload answering the body's length). Plain JavaScript, so
 * every runtime loads the same file.
 */
export const FCGI_APP: string = `
const download = new Uint8Array(${MiB});
for (let i = 0; i < download.length; i++) download[i] = i & 255;
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/hello") return new Response("Hello, World!", { headers: { "content-type": "text/plain" } });
    if (path === "/download") return new Response(download, { headers: { "content-type": "application/octet-stream" } });
    if (path === "/upload") {
      let n = 0;
      for await (const chunk of request.body) n += chunk.byteLength;
      return new Response(String(n), { headers: { "content-type": "text/plain" } });
    }
    return new Response("not found", { status: 404 });
  },
};
`;

/**
 * Compiles the checkout at `root` into `outDir`, so that a concurrent `npm test` rebuilding dist/
 * cannot pull files from under a running app. tsc emits even with type errors (other work in
 * progress); only a missing CLI is an error.
 */
export function compileTo(outDir: string, root: string = repoRoot): void {
  spawnSync(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json"), "--outDir", outDir], { stdio: "ignore" });
  if (!existsSync(join(outDir, "src", "cli.js"))) throw new Error(`tsc did not emit src/cli.js into ${outDir} (is ${root} a checkout?)`);
}

/** The runtimes' binaries: Node (the machine's, even when the script runs elsewhere), Deno and Bun from node_modules. */
export const runtimeBinaries: { node: string; deno: string; bun: string } = {
  node: findBinary("node") ?? process.execPath,
  deno: join(repoRoot, "node_modules", ".bin", "deno"),
  bun: join(repoRoot, "node_modules", ".bin", "bun"),
};

/**
 * The command that runs the entry point `entry` (a path under the checkout, such as "src/cli.ts")
 * under `runtime`: Node from the build in `dist` (see compileTo), Deno and Bun from the TypeScript
 * sources under `root`.
 */
export function scriptCommand(runtime: "node" | "deno" | "bun", dist: string, entry: string, args: readonly string[], root: string = repoRoot): [string, string[]] {
  if (runtime === "node") return [runtimeBinaries.node, [join(dist, entry.replace(/\.ts$/, ".js")), ...args]];
  if (runtime === "deno") return [runtimeBinaries.deno, ["run", "-A", join(root, entry), ...args]];
  return [runtimeBinaries.bun, [join(root, entry), ...args]];
}

/** The command that runs `fcgi serve <app> --listen <socket> [...extra]` under `runtime` (see scriptCommand). */
export function serveCommand(runtime: "node" | "deno" | "bun", dist: string, app: string, socket: string, extra: readonly string[] = [], root: string = repoRoot): [string, string[]] {
  return scriptCommand(runtime, dist, "src/cli.ts", ["serve", app, "--listen", socket, ...extra], root);
}

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A field of /proc/<pid>/status, in KiB. */
export function procStatus(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]);
}

/**
 * Starts the app (`command`, listening on the Unix socket `socket`), then nginx in `dir` with the
 * README snippet (examples/nginx.conf) pointed at it, keeping `keepalive` idle FastCGI connections.
 * Each service is pushed onto `services` as soon as it runs, for the caller's cleanup. `appEnv` is
 * added to the app's environment only (not nginx's).
 */
export async function startAppAndNginx(
  name: string,
  [command, args]: [string, string[]],
  socket: string,
  dir: string,
  nginxBinary: string,
  keepalive: number,
  services: Service[],
  workerConnections?: number,
  appEnv?: Record<string, string>,
): Promise<{ app: Service; nginx: WebServer }> {
  const app = await startProcess(name, command, args, () => canConnect(socket), appEnv ? { env: appEnv } : {});
  services.push(app);
  const port = await freePort();
  const http = renderExample("nginx.conf", [
    ["server 127.0.0.1:9000;", `server unix:${socket};`],
    ["keepalive 8;", `keepalive ${keepalive};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
  ]);
  const nginx = await startNginx(nginxBinary, dir, http, [port], workerConnections);
  services.push(nginx);
  return { app, nginx };
}
