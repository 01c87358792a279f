// Starts a real PHP-FPM for tests: a temporary pool config (no php.ini: -n), listening on a temp
// Unix socket or on 127.0.0.1 at a free port, in its own process group so that kill() can take
// down the master and every worker at once. Importing this file has no side effects.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SocketAddress } from "../../src/socket.ts";
import { canConnect, inCI } from "./env.ts";

/** Options of {@link startPhpFpm}. */
export interface PhpFpmOptions {
  /** Listen on a temporary Unix socket or on 127.0.0.1 at a free port. */
  listen: "unix" | "tcp";
  /** With "tcp": this port instead of a free one (to start a pool again where it was). */
  port?: number;
  /** The document root the tests write their scripts into (PHP-FPM itself does not need it). */
  root: string;
  /** Worker processes (pm = static). Default 4. */
  maxChildren?: number;
  /** Extra `php_admin_value[name] = value` settings. */
  ini?: Record<string, string>;
  /** Extra pool directives, `name = value` (e.g. `security.limit_extensions`). */
  pool?: Record<string, string>;
}

/** A running PHP-FPM. */
export interface PhpFpm {
  /** Where it listens. */
  readonly address: SocketAddress;
  /** The document root given. */
  readonly root: string;
  /** The master's pid (also its process group id). */
  readonly pid: number;
  /** PHP-FPM's own log (the master's error_log) and what the master printed, so far. */
  log(): string;
  /** SIGKILL to the whole process group, master and workers; resolves once the master is gone. */
  kill(): Promise<void>;
  /** SIGTERM (then SIGKILL after 5 s) to the process group; removes the temp files. Idempotent. */
  stop(): Promise<void>;
}

/** How long PHP-FPM may take to accept connections (the machine is shared; be generous). */
const START_TIMEOUT_MS = 20_000;

/** The php-fpm binary (php-fpm8.2, php-fpm, …), or undefined when PHP-FPM is not installed. */
export function phpFpmBinary(): string | undefined {
  for (const dir of ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const found = names.filter((n) => /^php-fpm[\d.]*$/.test(n)).sort().reverse();
    if (found.length > 0) return join(dir, found[0]!);
  }
  return undefined;
}

/**
 * The `skip` value for a describe() that needs PHP-FPM: a reason when it is missing here, false
 * when it is installed — and false in CI too, where a missing PHP-FPM must fail (startPhpFpm throws).
 */
export function phpFpmSkip(): string | false {
  if (phpFpmBinary() !== undefined || inCI) return false;
  return "php-fpm is not installed (apt-get install php-fpm); skipped outside CI";
}

/** A free TCP port on 127.0.0.1 (bind port 0, close, reuse the number). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

/**
 * Starts PHP-FPM in the foreground (-F), allowed to run as root (-R, harmless otherwise), without
 * php.ini (-n): error_log() then goes to FCGI_STDERR, as the client tests want.
 *
 * @example
 * ```ts
 * const fpm = await startPhpFpm({ listen: "unix", root: docroot });
 * try { ... new Client({ address: fpm.address }) ... } finally { await fpm.stop(); }
 * ```
 */
export async function startPhpFpm(options: PhpFpmOptions): Promise<PhpFpm> {
  const binary = phpFpmBinary();
  if (binary === undefined) throw new Error("php-fpm is not installed (apt-get install php-fpm), and this test needs it");
  const dir = mkdtempSync(join(tmpdir(), "fcgi-phpfpm-"));
  // Unix socket paths are limited to ~107 bytes: the temp dir is short enough.
  const address: SocketAddress = options.listen === "unix"
    ? { transport: "unix", path: join(dir, "fpm.sock") }
    : { transport: "tcp", hostname: "127.0.0.1", port: options.port ?? await freePort() };
  const errorLog = join(dir, "fpm.log");
  const config = join(dir, "fpm.conf");
  const ini = Object.entries(options.ini ?? {}).map(([name, value]) => `php_admin_value[${name}] = ${value}`);
  writeFileSync(config, [
    "[global]",
    `error_log = ${errorLog}`,
    "daemonize = no",
    "log_level = notice",
    "[fcgi-test]",
    `listen = ${address.transport === "unix" ? address.path : `127.0.0.1:${address.port}`}`,
    "listen.backlog = 511",
    "pm = static",
    `pm.max_children = ${options.maxChildren ?? 4}`,
    "catch_workers_output = yes",
    "decorate_workers_output = no",
    "clear_env = yes",
    ...Object.entries(options.pool ?? {}).map(([name, value]) => `${name} = ${value}`),
    ...ini,
    "",
  ].join("\n"));

  let output = "";
  const child: ChildProcess = spawn(binary, ["-n", "-F", "-R", "-y", config], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  let gone = false;
  void exited.then(() => (gone = true));

  const log = () => {
    let text = output;
    try {
      text += readFileSync(errorLog, "latin1");
    } catch {
      // not written yet
    }
    return text;
  };
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  // A test process that ends without stop() (an uncaught error, process.exit) takes PHP-FPM along.
  const onExit = () => {
    signalGroup("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  let stopped: Promise<void> | null = null;
  const fpm: PhpFpm = {
    address,
    root: options.root,
    pid: child.pid!,
    log,
    async kill() {
      signalGroup("SIGKILL");
      await exited;
    },
    stop() {
      stopped ??= (async () => {
        if (!gone) {
          signalGroup("SIGTERM");
          const timer = setTimeout(() => signalGroup("SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        }
        // Workers of a killed master may linger a moment; make sure none is left.
        signalGroup("SIGKILL");
        process.off("exit", onExit);
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // best effort
        }
      })();
      return stopped;
    },
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (gone) {
      await fpm.stop();
      throw new Error(`php-fpm exited during startup:\n${log()}`);
    }
    if (await canConnect(address.transport === "unix" ? address.path : `${address.hostname}:${address.port}`)) return fpm;
    if (Date.now() > deadline) {
      await fpm.stop();
      throw new Error(`php-fpm did not accept connections within ${START_TIMEOUT_MS} ms:\n${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
