// Harness for the interop tests: starts real web servers (nginx, Apache httpd, lighttpd) and
// `fcgi serve` on loopback, from temporary configs built around the README snippets in examples/.
// Not a test file itself: importing it has no side effects.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { canConnect, cliCommand, connectTo, inCI, repoRoot } from "../_support/env.ts";
import assert from "node:assert/strict";
import { sourcePath } from "../_support/env.ts";
import { after, describe, it, setup } from "../_support/test.ts";
import { Role } from "../../src/protocol/constants.ts";
import { patternBytes, sha256 } from "./app.ts";

export { canConnect };

/** How long a server or app may take to accept connections; generous, the machine is shared. */
export const START_TIMEOUT_MS = 30_000;

/** A process the harness started; stop() ends it (SIGTERM, then SIGKILL) and waits for its exit. */
export interface Service {
  readonly name: string;
  readonly pid: number;
  /** stdout + stderr captured so far (and the server's own error log, for web servers). */
  logs(): string;
  stop(): Promise<void>;
}

/** A web server listening on 127.0.0.1. */
export interface WebServer extends Service {
  /** `http://127.0.0.1:PORT` for each listening port, in the order asked for. */
  readonly urls: string[];
}

/** A fresh temporary directory; remove it with removeDir() at the end. */
export function makeTempDir(prefix: string = "fcgi-interop-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Removes a directory made by makeTempDir(), ignoring errors (a server may still hold a file). */
export function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

// Ports already handed out by this process: two listeners given the same port would silently
// share it (nginx serves two server blocks on one port), so a repeat is never handed out.
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1, found by binding port 0 and closing again; never one given before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        const port = typeof address === "object" && address ? address.port : 0;
        server.close(() => (port ? resolve(port) : reject(new Error("no port"))));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("no new free port after 20 tries");
}

/** The path of an executable found on PATH or in the sbin folders, or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Whether a test file can run its web server: the binary's path, and a `skip` reason for
 * describe() when it is missing locally. In CI a missing binary is not skipped: `path` stays
 * undefined and the suite's setup() fails through mustHave(), and with it each of its tests.
 */
export function webServerBinary(name: string, path: string | undefined = findBinary(name)): { path: string | undefined; skip: string | false } {
  return { path, skip: path || inCI ? false : `${name} is not installed (skipped outside CI)` };
}

/** The binary's path, or an error saying it is required (used in CI, where nothing may be skipped). */
export function mustHave(path: string | undefined, name: string): string {
  if (!path) throw new Error(`${name} is not installed, and CI requires every interop server`);
  return path;
}

/** Polls `check` until it resolves true, or throws after `timeoutMs` naming `what`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** `promise`, or a rejection naming `what` if it has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


/**
 * Spawns a long-running process and resolves once `ready()` is true. Fails early, with the
 * captured output, if the process exits first. `extraLog` names files (e.g. error logs) to add
 * to logs().
 */
export async function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  /** Whether it is up; given its output so far. */
  ready: (output: string) => Promise<boolean>,
  options: { cwd?: string; env?: Record<string, string>; extraLog?: string[]; timeoutMs?: number } = {},
): Promise<Service> {
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let exited: string | undefined;
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `exited with ${signal ?? code}`;
      resolve();
    });
    child.once("error", (error) => {
      exited = `failed to start: ${error.message}`;
      resolve();
    });
  });
  const logs = () => {
    let text = output;
    for (const file of options.extraLog ?? []) {
      try {
        text += `\n--- ${file}\n${readFileSync(file, "latin1")}`;
      } catch {
        // not written yet
      }
    }
    return text;
  };
  const service: Service = {
    name,
    get pid() {
      return child.pid ?? -1;
    },
    logs,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = { id: undefined as ReturnType<typeof setTimeout> | undefined };
      const killed = new Promise<void>((resolve) => {
        timer.id = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, 5000);
      });
      await Promise.race([exit, killed]);
      await Promise.race([exit, sleep(2000)]);
      clearTimeout(timer.id);
    },
  };
  try {
    await waitFor(`${name} to accept connections`, async () => {
      if (exited) throw new Error(`${name} ${exited}:\n${logs()}`);
      return await ready(output);
    }, options.timeoutMs);
  } catch (error) {
    await service.stop();
    if (error instanceof Error && !error.message.includes(name + " exited")) {
      error.message += `\n${name} output:\n${logs()}`;
    }
    throw error;
  }
  return service;
}

/**
 * Starts `fcgi serve <module> --listen <listen>` under the runtime running the tests.
 * `listen` is "HOST:PORT", "[v6]:PORT" or an absolute Unix socket path. `env` adds to its
 * environment; `from` is the local address its readiness probe connects from (one its allow-list
 * admits, so the probe is not logged as a refused web server); `name` names it in logs.
 */
export function startApp(
  module: string,
  listen: string,
  extraArgs: readonly string[] = [],
  options: { env?: Record<string, string>; from?: string; name?: string } = {},
): Promise<Service> {
  const address = listen.startsWith("/") ? `unix:${listen}` : listen;
  const [command, args] = cliCommand(["serve", module, "--listen", address, ...extraArgs]);
  const name = options.name ?? `fcgi serve ${module.split("/").pop()}`;
  return startProcess(name, command, args, () => canConnect(listen, options.from), { env: options.env });
}

/**
 * The text of a README snippet from examples/ with each `[from, to]` replaced. A `from` that is
 * no longer in the snippet throws, so the docs and the tests cannot drift apart silently.
 */
export function renderExample(file: string, replacements: ReadonlyArray<readonly [string, string]>): string {
  let text = readFileSync(join(repoRoot, "examples", file), "utf8");
  for (const [from, to] of replacements) {
    if (!text.includes(from)) {
      throw new Error(`examples/${file} no longer contains ${JSON.stringify(from)}: update test/interop with the snippet`);
    }
    text = text.split(from).join(to);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// nginx

/**
 * Starts nginx in the foreground with `http` as the body of its `http {}` block. Every path
 * nginx writes (pid, logs, temp files) stays inside `dir`; the stock fastcgi_params is copied
 * there so snippets can `include fastcgi_params;` as users do. `workerConnections` counts client and
 * upstream connections together (a load of N clients needs about 2N).
 */
export async function startNginx(binary: string, dir: string, http: string, ports: readonly number[], workerConnections: number = 512, workerProcesses: number = 1): Promise<WebServer> {
  const params = ["/etc/nginx/fastcgi_params", "/usr/local/nginx/conf/fastcgi_params", "/usr/local/etc/nginx/fastcgi_params"]
    .find((p) => existsSync(p));
  if (!params) throw new Error("nginx's fastcgi_params file was not found");
  copyFileSync(params, join(dir, "fastcgi_params"));
  const conf = join(dir, "nginx.conf");
  const errorLog = join(dir, "nginx-error.log");
  writeFileSync(conf, `# generated by test/interop/_servers.ts
daemon off;
master_process on;
user root;
worker_processes ${workerProcesses};
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections ${workerConnections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  proxy_temp_path ${dir}/proxy_temp;
  scgi_temp_path ${dir}/scgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
${http}
}
`);
  const service = await startProcess("nginx", binary, ["-p", dir + "/", "-c", conf, "-e", errorLog], async () => {
    for (const port of ports) if (!(await canConnect(`127.0.0.1:${port}`))) return false;
    return true;
  }, { cwd: dir, extraLog: [errorLog] });
  return { ...bind(service), urls: ports.map((p) => `http://127.0.0.1:${p}`) };
}

// ---------------------------------------------------------------------------------------------
// Apache httpd

/** Where Debian keeps Apache's modules; the harness loads them with LoadModule lines. */
const APACHE_MODULE_DIRS = ["/usr/lib/apache2/modules", "/usr/lib/httpd/modules", "/usr/local/apache2/modules"];

/** Finds the Apache binary (Debian: apache2, elsewhere httpd). */
export function findApache(): string | undefined {
  return findBinary("apache2") ?? findBinary("httpd");
}

/**
 * Starts Apache httpd in the foreground (mpm_event) with `config` appended to a minimal server
 * config; `modules` are loaded from the system module folder (e.g. "proxy", "proxy_fcgi").
 * Workers run as www-data (or nobody): httpd refuses to run them as root.
 */
export async function startApache(binary: string, dir: string, config: string, port: number, modules: readonly string[]): Promise<WebServer> {
  const moduleDir = APACHE_MODULE_DIRS.find((d) => existsSync(join(d, "mod_proxy.so")));
  if (!moduleDir) throw new Error("Apache's module folder (mod_proxy.so) was not found");
  const loads = ["mpm_event", "authz_core", ...modules]
    .map((m) => `LoadModule ${m}_module ${moduleDir}/mod_${m}.so`).join("\n");
  const user = existsSync("/etc/passwd") && readFileSync("/etc/passwd", "utf8").includes("\nwww-data:") ? "www-data" : "nobody";
  const group = user === "www-data" ? "www-data" : "nogroup";
  const conf = join(dir, "httpd.conf");
  const errorLog = join(dir, "apache-error.log");
  writeFileSync(conf, `# generated by test/interop/_servers.ts
ServerRoot "${dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile "${dir}/httpd.pid"
ErrorLog "${errorLog}"
LogLevel warn
DefaultRuntimeDir "${dir}"
Mutex file:${dir} default
User ${user}
Group ${group}
${loads}
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 26
${config}
`);
  const service = await startProcess("apache", binary, ["-f", conf, "-DFOREGROUND"], () => canConnect(`127.0.0.1:${port}`), {
    cwd: dir,
    extraLog: [errorLog],
  });
  return { ...bind(service), urls: [`http://127.0.0.1:${port}`] };
}

// ---------------------------------------------------------------------------------------------
// lighttpd

/**
 * Starts lighttpd in the foreground (-D) with `config` appended to a minimal server config
 * bound to 127.0.0.1:port. lighttpd runs as root here (no server.username), which it allows.
 */
export async function startLighttpd(binary: string, dir: string, config: string, port: number): Promise<WebServer> {
  const conf = join(dir, "lighttpd.conf");
  const errorLog = join(dir, "lighttpd-error.log");
  const docroot = join(dir, "docroot");
  mkdirSync(docroot, { recursive: true });
  writeFileSync(conf, `# generated by test/interop/_servers.ts
server.document-root = "${docroot}"
server.bind = "127.0.0.1"
server.port = ${port}
server.pid-file = "${dir}/lighttpd.pid"
server.errorlog = "${errorLog}"
server.upload-dirs = ( "${dir}" )
${config}
`);
  const service = await startProcess("lighttpd", binary, ["-D", "-f", conf], () => canConnect(`127.0.0.1:${port}`), {
    cwd: dir,
    extraLog: [errorLog],
  });
  return { ...bind(service), urls: [`http://127.0.0.1:${port}`] };
}

// ---------------------------------------------------------------------------------------------
// Caddy

/**
 * Starts Caddy 2 in the foreground (`caddy run`) on a Caddyfile made of `sites` after a global
 * options block that keeps it on loopback and inside `dir`: no admin endpoint, no automatic HTTPS,
 * every listener bound to 127.0.0.1, its storage in `dir`, and HOME and the XDG folders (where
 * Caddy autosaves its config and keeps its data otherwise) pointed at `dir`.
 */
export async function startCaddy(binary: string, dir: string, sites: string, port: number): Promise<WebServer> {
  const conf = join(dir, "Caddyfile");
  writeFileSync(conf, `# generated by test/interop/_servers.ts
{
    admin off
    auto_https off
    default_bind 127.0.0.1
    storage file_system ${dir}/caddy-storage
}

${sites}
`);
  const env = { HOME: dir, XDG_DATA_HOME: join(dir, "xdg-data"), XDG_CONFIG_HOME: join(dir, "xdg-config") };
  const service = await startProcess("caddy", binary, ["run", "--config", conf, "--adapter", "caddyfile"], () => canConnect(`127.0.0.1:${port}`), {
    cwd: dir,
    env,
  });
  return { ...bind(service), urls: [`http://127.0.0.1:${port}`] };
}

// ---------------------------------------------------------------------------------------------
// h2o

/**
 * Starts h2o in the foreground with `config` (a whole h2o YAML config without pid-file, error-log
 * and temp-buffer-path, which this adds inside `dir`). `config` must listen on 127.0.0.1:port.
 * Run as root, h2o switches to the user `nobody` unless told otherwise; it stays root here so that
 * it can write in `dir` (mkdtemp's 0700).
 */
export async function startH2o(binary: string, dir: string, config: string, port: number): Promise<WebServer> {
  const conf = join(dir, "h2o.conf");
  const errorLog = join(dir, "h2o-error.log");
  const asRoot = process.getuid?.() === 0 ? "user: root\n" : "";
  writeFileSync(conf, `# generated by test/interop/_servers.ts
${asRoot}pid-file: ${dir}/h2o.pid
error-log: ${errorLog}
temp-buffer-path: ${dir}
${config}
`);
  const service = await startProcess("h2o", binary, ["-c", conf], () => canConnect(`127.0.0.1:${port}`), {
    cwd: dir,
    extraLog: [errorLog],
  });
  // On SIGTERM h2o 2.2 waits until every idle keep-alive client connection is closed (a test's
  // fetch() keeps some for seconds): it is killed instead, having nothing to save.
  const stop = async (): Promise<void> => {
    try {
      process.kill(service.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await service.stop();
  };
  return { ...bind(service), stop, urls: [`http://127.0.0.1:${port}`] };
}

// ---------------------------------------------------------------------------------------------
// HAProxy

/**
 * Starts HAProxy in the foreground (-db) with `config` (frontends, backends, fcgi-apps) after a
 * global section logging to stderr and defaults with timeouts. It writes no file (no pid file,
 * no stats socket); `config` must bind 127.0.0.1:port.
 */
export async function startHaproxy(binary: string, dir: string, config: string, port: number): Promise<WebServer> {
  const conf = join(dir, "haproxy.cfg");
  writeFileSync(conf, `# generated by test/interop/_servers.ts
global
    log stderr format raw local0 warning

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s

${config}
`);
  const service = await startProcess("haproxy", binary, ["-db", "-f", conf], () => canConnect(`127.0.0.1:${port}`), { cwd: dir });
  return { ...bind(service), urls: [`http://127.0.0.1:${port}`] };
}

// Spreading a Service would copy the pid getter's value once; keep the methods and the live pid.
function bind(service: Service): Service {
  return { name: service.name, pid: service.pid, logs: () => service.logs(), stop: () => service.stop() };
}

// ---------------------------------------------------------------------------------------------
// A counting TCP relay, to see how many FastCGI connections a web server opens.

/** A TCP relay on 127.0.0.1 in front of `target`. */
export interface CountingRelay {
  readonly port: number;
  /** Connections accepted from the web server. */
  readonly connections: number;
  /** Connections the app (target) ended before the web server did. */
  readonly closedByTarget: number;
  /** The most connections open at the same time. */
  readonly peak: number;
  close(): Promise<void>;
}

/** Starts a relay that forwards every connection to `target` ("host:port" or a socket path). */
export function startCountingRelay(target: string): Promise<CountingRelay> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let closedByTarget = 0;
  let open = 0;
  let peak = 0;
  const server: Server = createServer((front) => {
    connections++;
    peak = Math.max(peak, ++open);
    front.once("close", () => open--);
    const back = connectTo(target);
    sockets.add(front);
    sockets.add(back);
    let frontEnded = false;
    front.once("end", () => (frontEnded = true));
    back.once("end", () => {
      if (!frontEnded) closedByTarget++;
    });
    front.pipe(back);
    back.pipe(front);
    const end = () => {
      front.destroy();
      back.destroy();
      sockets.delete(front);
      sockets.delete(back);
    };
    front.on("error", end).on("close", end);
    back.on("error", end).on("close", end);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        port,
        get connections() {
          return connections;
        },
        get closedByTarget() {
          return closedByTarget;
        },
        get peak() {
          return peak;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/** An HTTP answer read to its end. */
export interface HttpResult {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** The body decoded as UTF-8. */
  text: string;
}

/** fetch() with a deadline covering the body too, so a hung server fails the test instead of hanging it. */
export async function fetchWithin(url: string, init: RequestInit = {}, timeoutMs = 30_000): Promise<HttpResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer from ${url} within ${timeoutMs} ms`)), timeoutMs);
  try {
    const response = await fetch(url, { redirect: "manual", ...init, signal: controller.signal });
    const body = new Uint8Array(await response.arrayBuffer());
    return { status: response.status, headers: response.headers, body, text: new TextDecoder().decode(body) };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Spawners: programs that start `fcgi serve` themselves (spawn-fcgi, mod_fcgid, systemd-socket-activate).

/** systemd-socket-activate: on PATH, or in systemd's own folder on older layouts. */
export function findSystemdSocketActivate(): string | undefined {
  return findBinary("systemd-socket-activate") ?? ["/lib/systemd/systemd-socket-activate", "/usr/lib/systemd/systemd-socket-activate"].find((p) => existsSync(p));
}

/**
 * Whether process `pid` still runs. A zombie counts as gone: spawn-fcgi's and mod_fcgid's children
 * are not this process's to reap, and an exited one may linger until its parent (or init) reaps it.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // The state is the field after the parenthesised command name: "Z" for a zombie.
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A command line as /bin/sh reads it: every word single-quoted. */
export function shellWords(words: readonly string[]): string {
  return words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(" ");
}

/** A spawned process, its output so far and how it ended (once its pipes are drained). */
export interface Watched {
  readonly pid: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running (for cleanup after a failed test). */
  kill(): void;
}

/** Spawns `command` with stdout and stderr captured together, from the repository root. */
export function spawnWatched(command: string, args: readonly string[], env: Record<string, string> = {}): Watched {
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    child.once("error", (error) => {
      output += `failed to start: ${error.message}\n`;
      resolve({ code: null, signal: null });
    });
  });
  return {
    pid: child.pid ?? -1,
    output: () => output,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Every service's output so far, for an assertion's message. */
export function logsOf(services: readonly Service[]): string {
  return services.map((s) => `--- ${s.name}\n${s.logs()}`).join("\n");
}

/** Stops the services, the last started first, then removes `dir` (a suite's after()). */
export async function stopAll(services: readonly Service[], dir?: string): Promise<void> {
  for (const service of [...services].reverse()) await service.stop();
  if (dir) removeDir(dir);
}

/** `fcgi serve` behind the README's nginx snippet (examples/nginx.conf), through a counting relay. */
export interface AppBehindNginx {
  app: Service;
  relay: CountingRelay;
  /** nginx's base URL. */
  base: string;
  /** The app's and nginx's logs, for an assertion's message. */
  why(): string;
  /** Stops nginx, the relay and the app, and removes the folder. */
  stop(): Promise<void>;
}

/**
 * Makes a temp folder, writes `source` there as app.mjs, starts `fcgi serve` on it with `appArgs`
 * on a free port, a counting relay in front of it, and nginx with examples/nginx.conf pointing at
 * the relay.
 */
export async function startAppBehindNginx(nginxBinary: string, source: string, appArgs: readonly string[]): Promise<AppBehindNginx> {
  const dir = makeTempDir();
  const services: Service[] = [];
  let relay: CountingRelay | undefined;
  try {
    const module = join(dir, "app.mjs");
    writeFileSync(module, source);
    const appAddress = `127.0.0.1:${await freePort()}`;
    const app = await startApp(module, appAddress, appArgs);
    services.push(app);
    relay = await startCountingRelay(appAddress);
    const port = await freePort();
    const site = renderExample("nginx.conf", [
      ["server 127.0.0.1:9000;", `server 127.0.0.1:${relay.port};`],
      ["listen 8080;", `listen 127.0.0.1:${port};`],
    ]);
    const nginx = await startNginx(nginxBinary, dir, site, [port]);
    services.push(nginx);
    const stop = async (): Promise<void> => {
      await relay?.close();
      await stopAll(services, dir);
    };
    return { app, relay, base: nginx.urls[0]!, why: () => logsOf(services), stop };
  } catch (error) {
    await relay?.close();
    await stopAll(services, dir);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// One fcgi app behind one web server, and the tests every web server's config gets.

/** test/interop/app.ts served by `fcgi serve` behind one web server, in a temp folder of its own. */
export interface AppBehind {
  /** The web server's base URL. */
  base: string;
  /** The app's and the web server's logs, for an assertion's message. */
  why(): string;
  /** Stops the web server and the app, and removes the folder. */
  stop(): Promise<void>;
}

/**
 * Makes a temp folder, starts `fcgi serve test/interop/app.ts` on a free loopback port under this
 * runtime, then the web server that `startServer(dir, appAddress)` starts in front of it.
 */
export async function startAppBehind(startServer: (dir: string, appAddress: string) => Promise<WebServer>): Promise<AppBehind> {
  const dir = makeTempDir();
  const services: Service[] = [];
  try {
    const appAddress = `127.0.0.1:${await freePort()}`;
    services.push(await startApp(sourcePath("test/interop/app.ts"), appAddress));
    const server = await startServer(dir, appAddress);
    services.push(server);
    return { base: server.urls[0]!, why: () => logsOf(services), stop: () => stopAll(services, dir) };
  } catch (error) {
    await stopAll(services, dir);
    throw error;
  }
}

/**
 * A suite for test/interop/app.ts behind the web server `binaryName`, which `start(binary, dir,
 * appAddress)` starts (from its examples/ config) in front of the app. Skipped with a reason when
 * the binary is missing, except in CI, where each test fails instead. `tests(site, ready)` declares
 * the suite's tests: `ready()` first (it throws the setup's error), then `site()`.
 */
export function describeAppBehind(
  title: string,
  binaryName: string,
  start: (binary: string, dir: string, appAddress: string) => Promise<WebServer>,
  tests: (site: () => AppBehind, ready: () => void) => void,
): void {
  const binary = webServerBinary(binaryName);
  describe(title, { skip: binary.skip }, () => {
    let site: AppBehind | undefined;
    const ready = setup(async () => {
      const path = mustHave(binary.path, binaryName);
      site = await startAppBehind((dir, appAddress) => start(path, dir, appAddress));
    });
    after(async () => {
      await site?.stop();
    });
    tests(() => site!, ready);
  });
}

const MiB = 1024 * 1024;

/**
 * GETs app.ts's /echo with a query string and a header and checks what the app saw, with
 * FCGI_KEEP_CONN as `keepConn`. Returns the web server's end of the FastCGI connection (fcgiPeer).
 */
export async function expectHello(base: string, why: () => string, keepConn: boolean): Promise<string> {
  const r = await fetchWithin(`${base}/echo?name=Ada%20Lovelace&lang=en&empty=`, { headers: { "x-test": "yes" } });
  assert.equal(r.status, 200, why());
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  const { fcgiPeer, ...echo } = JSON.parse(r.text);
  assert.deepEqual(echo, {
    method: "GET",
    path: "/echo",
    query: { name: "Ada Lovelace", lang: "en", empty: "" },
    test: "yes",
    contentType: null,
    body: "",
    keepConn,
    role: Role.RESPONDER,
    envProxy: process.env.HTTP_PROXY ?? null,
  });
  return fcgiPeer;
}

/** POSTs `size` bytes (not only the app's own pattern) to app.ts's /upload and checks its length and SHA-256 there. */
export async function expectUpload(base: string, why: () => string, size: number = 10 * MiB): Promise<void> {
  const body = patternBytes(size);
  body[12345 % size] = 7; // not just the pattern the app would produce itself
  const r = await fetchWithin(`${base}/upload`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } }, 60_000);
  assert.equal(r.status, 200, why());
  assert.deepEqual(JSON.parse(r.text), { bytes: body.length, sha256: sha256(body) });
}

/** GETs `size` bytes from app.ts's /download and checks their length and SHA-256. */
export async function expectDownload(base: string, why: () => string, size: number = 10 * MiB + 3): Promise<void> {
  const r = await fetchWithin(`${base}/download?bytes=${size}`, {}, 60_000);
  assert.equal(r.status, 200, why());
  assert.equal(r.body.length, size);
  assert.equal(sha256(r.body), sha256(patternBytes(size)));
}

/** What a web server tells the app, checked by itServesTheTestApp(). */
export interface Passes {
  /** Whether it asks the app to keep the FastCGI connection open (FCGI_KEEP_CONN). */
  keepConn: boolean;
  /** The SCRIPT_NAME and PATH_INFO params it sends for /params (undefined: not sent). */
  SCRIPT_NAME: string | undefined;
  PATH_INFO: string | undefined;
}

/**
 * Declares, inside a suite, the tests every web server config gets: a hello (a GET with a query and
 * a header, as the app saw it), a 10 MiB upload and a 10 MiB download (10 MiB + 3 bytes, not a
 * multiple of anything the layers below use), both checked by length and SHA-256, three Set-Cookie
 * headers kept apart, and the params that name the request target.
 */
export function itServesTheTestApp(site: () => AppBehind, ready: () => void, passes: Passes): void {
  it("answers a GET with a query string and a header", async () => {
    ready();
    await expectHello(site().base, site().why, passes.keepConn);
  });

  it("streams a 10 MiB upload to the handler intact", async () => {
    ready();
    await expectUpload(site().base, site().why);
  });

  it("streams a 10 MiB download to the client intact", async () => {
    ready();
    await expectDownload(site().base, site().why);
  });

  it("passes several Set-Cookie headers on as separate headers", async () => {
    ready();
    const r = await fetchWithin(`${site().base}/cookies`);
    assert.equal(r.status, 200, site().why());
    assert.deepEqual(r.headers.getSetCookie(), ["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Max-Age=60"]);
  });

  it(`sends the raw request target as REQUEST_URI, SCRIPT_NAME ${JSON.stringify(passes.SCRIPT_NAME)}, PATH_INFO ${JSON.stringify(passes.PATH_INFO)}`, async () => {
    ready();
    const target = "/params?q=a%20b&x=%C3%A9";
    const r = await fetchWithin(`${site().base}${target}`);
    assert.equal(r.status, 200, site().why());
    const params = JSON.parse(r.text);
    assert.deepEqual(
      { REQUEST_METHOD: params.REQUEST_METHOD, REQUEST_URI: params.REQUEST_URI, QUERY_STRING: params.QUERY_STRING, SCRIPT_NAME: params.SCRIPT_NAME, PATH_INFO: params.PATH_INFO },
      { REQUEST_METHOD: "GET", REQUEST_URI: target, QUERY_STRING: "q=a%20b&x=%C3%A9", SCRIPT_NAME: passes.SCRIPT_NAME, PATH_INFO: passes.PATH_INFO },
    );
  });
}
