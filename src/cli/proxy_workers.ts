/**
 * `fcgi proxy --workers N`: N `fcgi proxy --reuse-port` processes on one port, the kernel
 * spreading connections among them (SO_REUSEPORT), as nginx's worker processes share theirs.
 * This process only starts, restarts and stops them; it never accepts a connection. (The process
 * manager of `fcgi serve --workers` hands its workers one socket as a descriptor, which neither
 * Deno.serve nor Bun.serve can serve HTTP on.)
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { detectAdapter } from "../runtime/index.ts";
import { lineSplitter } from "../runtime/workers.ts";
import { stopOnSignals } from "./signals.ts";

/** A worker that exits after it said it listens is started again after this long. */
const RESTART_DELAY_MS = 1000;

/** The CLI script the workers run: this package's own `fcgi` (the .js copy when running compiled). */
function cliPath(): string {
  const extension = import.meta.url.endsWith(".js") ? ".js" : ".ts";
  return fileURLToPath(new URL(`../cli${extension}`, import.meta.url));
}

/** `args` without --workers and its value: what each worker runs with, plus --reuse-port. */
export function proxyWorkerArgs(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--workers") i++;
    else if (!args[i]!.startsWith("--workers=")) kept.push(args[i]!);
  }
  return [...kept, "--reuse-port"];
}

/**
 * Runs `workers` proxies with `args` (the command line without `proxy`) and resolves with the exit
 * status: 0 after a graceful stop (SIGINT/SIGTERM, passed on to every worker), 1 when a worker
 * could not start (its own message says why; the others are stopped).
 */
export async function runProxyWorkers(workers: number, args: readonly string[]): Promise<number> {
  const [program, ...prefix] = (await detectAdapter()).commandFor(cliPath());
  const argv = [...prefix, "proxy", ...proxyWorkerArgs(args)];
  const stopping = stopOnSignals();
  const running = new Set<ChildProcess>();
  let failed = false;
  let settle!: () => void;
  const allDone = new Promise<void>((resolve) => (settle = resolve));
  const stopAll = (): void => {
    // process.kill, not child.kill: Deno's child_process reports a child it signalled itself as
    // killed by the signal (no exit status) even when the child handled it and exited 0.
    for (const child of running) if (child.pid !== undefined) process.kill(child.pid, "SIGTERM");
    if (running.size === 0) settle();
  };
  stopping.signal.addEventListener("abort", stopAll, { once: true });

  const start = (): Promise<void> =>
    new Promise<void>((ready) => {
      const child = spawn(program!, argv, { stdio: ["ignore", "inherit", "pipe"] });
      running.add(child);
      let listening = false;
      // Each worker's lines pass through, marked with its pid; "listening" tells it is up.
      const lines = lineSplitter((line) => {
        console.error(`[${child.pid}] ${line}`);
        if (!listening && line.startsWith("fcgi: listening on ")) {
          listening = true;
          ready();
        }
      });
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (text: string) => lines.push(text));
      child.once("close", (code, signal) => {
        lines.end();
        running.delete(child);
        if (code !== 0) failed = true;
        if (stopping.signal.aborted || !listening) {
          // A worker that never listened cannot serve: stop the others (its message said why).
          if (!listening && !stopping.signal.aborted) {
            console.error(`fcgi proxy: a worker ${signal ? `was killed by ${signal}` : `exited with status ${code}`} before listening; stopping`);
            stopAll();
          }
          if (running.size === 0) settle();
          ready();
          return;
        }
        failed = false; // a crash after start-up is survived: the replacement decides the status
        console.error(`fcgi proxy: worker ${child.pid} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; starting another in ${RESTART_DELAY_MS} ms`);
        setTimeout(() => void (stopping.signal.aborted ? running.size === 0 && settle() : start()), RESTART_DELAY_MS);
      });
    });

  try {
    // One at a time: a worker that cannot listen stops the start before the others pile up.
    for (let i = 0; i < workers && !stopping.signal.aborted && !failed; i++) await start();
    if (!stopping.signal.aborted && !failed) console.error(`fcgi proxy: ${workers} workers listening`);
    await allDone;
    return failed ? 1 : 0;
  } finally {
    stopping.release();
  }
}
