// What the tests of `fcgi serve --workers` share: starting a manager and waiting for its workers,
// the pids of its workers, and bounded load through a web server.
import { spawn, spawnSync } from "node:child_process";
import { cliCommand } from "../_support/env.ts";
import { waitFor } from "../_support/poll.ts";
import { type Service, fetchWithin, sleep } from "./_servers.ts";

/** The pids of the manager's children now (its workers). */
export function childPids(manager: number): number[] {
  const out = spawnSync("pgrep", ["-P", String(manager)], { encoding: "utf8" }).stdout ?? "";
  return out.split("\n").filter(Boolean).map(Number).sort();
}

export interface LoadResult {
  ok: number;
  failed: string[];
  bodies: Set<string>;
}

/** `clients` loops of GET requests until `stop()` or `maxMs`, each bounded; every non-200 or error counts as failed. */
export function load(url: string, clients = 4, maxMs = 15_000): { served(): number; stop(): Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failed: [], bodies: new Set() };
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const loops = Array.from({ length: clients }, async () => {
    for (let i = 0; i < 20_000 && !stopped && Date.now() < deadline; i++) {
      try {
        const response = await fetchWithin(`${url}/slow`, {}, 10_000);
        if (response.status === 200) {
          result.ok++;
          result.bodies.add(response.text.split(" ")[0]!);
        } else result.failed.push(`status ${response.status}`);
      } catch (error) {
        result.failed.push(String(error));
      }
    }
  });
  return {
    served: () => result.ok,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return result;
    },
  };
}

/**
 * Lets `traffic` serve `count` more requests (bounded in time), so that a test's "0 failed" covers
 * the requests around the event and not only those before it, however slow the machine is.
 */
export async function servedAfter(traffic: { served(): number }, count = 20): Promise<void> {
  const target = traffic.served() + count;
  await waitFor(() => traffic.served() >= target, 15_000, `${count} more requests served`);
}

/** Starts `fcgi …args` (a manager) and resolves once its output satisfies `ready`. */
export async function startManager(args: readonly string[], ready: (logs: string) => boolean): Promise<Service> {
  const [command, argv] = cliCommand(args);
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let done = false;
  void exited.then(() => (done = true));
  const service: Service = {
    name: "fcgi manager",
    pid: child.pid!,
    logs: () => output,
    async stop() {
      if (done) return;
      child.kill("SIGTERM");
      if (await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
  try {
    await waitFor(() => {
      if (done) throw new Error(`the manager exited:\n${output}`);
      return ready(output);
    }, 30_000, `the manager to be ready; output:\n${output}`);
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}

