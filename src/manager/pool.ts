/**
 * The process manager: one listening socket, N `fcgi serve` workers accepting on it (each gets it
 * as fd 0), and the supervision around them: restart after a crash (with backoff in a crash loop),
 * kill on a missing heartbeat (a blocked event loop), rolling reload, recycling, scaling and a
 * graceful stop. The manager never loads the app module and never accepts a request.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatAddress, parseAddress } from "../address.ts";
import { detectAdapter, inheritedSockets } from "../runtime/index.ts";
import type { RuntimeAdapter, WorkerExit, WorkerProcess, WorkerSocket } from "../runtime/types.ts";
import type { Connection, ConnectionHandlers, Listener } from "../socket.ts";
import { listenQueue } from "../status/listen_queue.ts";
import { noRetired, poolStatus, type ProcessReport, retire as retireCounts } from "../status/report.ts";
import type { PoolStatus, RestartCause } from "../status/types.ts";
import { encodeMessage, HEARTBEAT_MS, type InFlight, MessageDecoder, parseNowRecord, type WorkerMessage } from "./messages.ts";
import { CrashWindow, isCrashLoop, recycleLimit, recycleReason, restartDelay } from "./policy.ts";
import { MANAGER_ENV, NOW_ENV, TOKEN_ENV } from "./worker.ts";

/** Options of {@link runPool}. */
export interface PoolOptions {
  /** The app module (path or file URL), as for `fcgi serve`. */
  module: string;
  /** How many workers (at least 1). */
  workers: number;
  /** Where to listen (`HOST:PORT`, `unix:/PATH`, …); without it, the socket inherited on fd 0. */
  listen?: string;
  /** File mode of a Unix socket the pool creates (e.g. 0o660). */
  socketMode?: number;
  /** More `fcgi serve` options for each worker (limits, `--allow`, …); not `--listen`. */
  serveArgs?: readonly string[];
  /** A worker that has served about this many requests (±10 %) is replaced. */
  recycleAfter?: number;
  /** A worker whose resident memory passes this many bytes is replaced. */
  maxRss?: number;
  /** A worker whose event loop sends no heartbeat for this long (ms) is killed and replaced (default 30 s). */
  heartbeatTimeout?: number;
  /** How long a draining worker may take before it is killed (ms, default 10 s; give workers the same --close-timeout). */
  closeTimeout?: number;
  /** Stop on SIGTERM/SIGINT, reload on SIGHUP, add and remove a worker on SIGTTIN/SIGTTOU (default true). */
  signals?: boolean;
  /** Where log lines go (default: stderr). */
  log?: (line: string) => void;
  /** The pool's name on the status page (default "fcgi"). */
  poolName?: string;
  /** Warn when a worker's event loop has been blocked this long (ms) with a request in it (default: never). */
  slowRequest?: number;
}

/** A running pool. */
export interface Pool {
  /** Where the workers accept. */
  readonly address: string;
  /** The pids of the workers now counted in the pool (not those draining). */
  pids(): number[];
  /** Rolling reload: new workers load the module afresh; once all are ready, the old ones drain. Resolves to whether it succeeded. */
  reload(): Promise<boolean>;
  /** Adds a worker (`delta` 1) or drains one (`delta` -1). */
  scale(delta: 1 | -1): void;
  /** Graceful stop: every worker drains; `now` kills them at once. */
  stop(now?: boolean): Promise<void>;
  /** The pool's status page as data, from a fresh report of every worker. */
  status(): Promise<PoolStatus>;
  /** Resolves with the exit status once the pool has stopped: 0 after a graceful stop, 1 after a forced one. */
  readonly finished: Promise<number>;
}

const DEFAULT_HEARTBEAT_TIMEOUT = 30_000;
const DEFAULT_CLOSE_TIMEOUT = 10_000;
/** Between SIGTERM and SIGKILL for a hung worker (its event loop cannot run the graceful close). */
const KILL_GRACE_MS = 250;
/** Worker stderr lines kept to explain its crash. */
const TAIL_LINES = 8;
/** How long the status page waits for the workers' fresh reports (a blocked worker's last one is shown). */
const REPORT_WAIT_MS = 200;

interface Worker {
  readonly slot: number;
  readonly token: string;
  readonly process: WorkerProcess;
  readonly startedAt: number;
  /** Counted in the pool (its slot's owner); false for a reload or recycle candidate until it takes over. */
  owner: boolean;
  ready: boolean;
  /** Draining after SIGTERM from the manager: not replaced when it exits. */
  retiring: boolean;
  killing: boolean;
  /** A replacement is starting (recycle). */
  replacing: boolean;
  exited: boolean;
  lastBeat: number;
  /** Beats received: a status page waits for one more from each worker. */
  beats: number;
  /** Its last status report. */
  report: ProcessReport | undefined;
  /** Its end of the control socket, once it said hello. */
  control: Connection | undefined;
  /** Why the manager ended it, for the restart counts. */
  endCause: RestartCause | undefined;
  /** The blocked-loop warning was logged for its current silence. */
  blockedWarned: boolean;
  served: number;
  rss: number;
  oldest: (InFlight & { at: number }) | undefined;
  /** The last request the worker began, and when the manager heard of it. */
  /** The worker's "now" file: the request it began last. */
  nowPath: string;
  recycleAt: number | undefined;
  readonly tail: string[];
  onReady: (() => void) | undefined;
  onEarlyExit: ((why: string) => void) | undefined;
}

/** The CLI script workers run: this package's own `fcgi` (the .js copy when running compiled). */
function cliPath(): string {
  const extension = import.meta.url.endsWith(".js") ? ".js" : ".ts";
  return fileURLToPath(new URL(`../cli${extension}`, import.meta.url));
}

function describeExit(exit: WorkerExit): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Starts a pool of `workers` processes running `fcgi serve module` on one socket, and supervises it.
 * Resolves once the socket is open and the workers are starting.
 *
 * @example
 * ```ts
 * import { runPool } from "fcgi";
 * const pool = await runPool({ module: "./app.ts", workers: 4, listen: "unix:/run/app.sock", recycleAfter: 10_000 });
 * console.log(`serving on ${pool.address} with workers ${pool.pids().join(", ")}`);
 * process.exitCode = await pool.finished;
 * ```
 */
export async function runPool(options: PoolOptions): Promise<Pool> {
  if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError(`workers must be a whole number of at least 1, not ${options.workers}`);
  const runtime: RuntimeAdapter = await detectAdapter();
  const log = options.log ?? ((line: string) => console.error(line));
  const heartbeatTimeout = options.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT;
  const closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
  // Without an address: what spawn-fcgi, a web server or systemd handed this process.
  const inherited = options.listen === undefined ? inheritedSockets(runtime) : [];
  if (inherited.length > 1) throw new RangeError(`a pool takes one socket; systemd passed ${inherited.length} (LISTEN_FDS)`);
  const address = options.listen === undefined ? inherited[0]! : parseAddress(options.listen);
  const socket: WorkerSocket = await runtime.listenForWorkers(address, { socketMode: options.socketMode });
  const controlDir = mkdtempSync(join(tmpdir(), "fcgi-manager-"));
  const controlPath = join(controlDir, "control.sock");
  const module = options.module.startsWith("file:") ? fileURLToPath(options.module) : options.module;
  const command = [...runtime.commandFor(cliPath()), "serve", `--listen=fd:${runtime.workerListenFd}`, "--", module];
  // Options go before "--" (which ends them); the module is the one positional argument after it.
  command.splice(command.length - 2, 0, ...(options.serveArgs ?? []));

  const workers = new Map<string, Worker>();
  const encoder = new TextEncoder();
  const pendingStarts = new Map<number, ReturnType<typeof setTimeout>>();
  const failures = new Map<number, number>();
  const crashes = new CrashWindow();
  let desired = options.workers;
  let tokens = 0;
  let stopping = false;
  let forced = false;
  let reloading: Promise<boolean> | undefined;
  let resolveFinished!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (resolveFinished = resolve));
  const startTime = Date.now();
  const restarts: Record<RestartCause, number> = { crash: 0, hang: 0, recycle: 0, reload: 0 };
  const retired = noRetired();
  let maxActive = 0;
  let maxChildrenReached = 0;
  let allBusy = false;
  let maxListenQueue = 0;
  const beatWaiters = new Set<() => void>();

  const name = (worker: Worker): string => `worker ${worker.slot} (pid ${worker.process.pid})`;
  const owners = (): Worker[] => [...workers.values()].filter((w) => w.owner && !w.exited);

  function onMessage(worker: Worker, message: WorkerMessage): void {
    const now = Date.now();
    if (message.type === "ready") {
      worker.ready = true;
      worker.lastBeat = now;
      const ready = worker.onReady;
      worker.onReady = undefined;
      ready?.();
      return;
    }
    if (message.type === "status") {
      worker.report = message.report;
      void statusFor(worker).then((status) => worker.control?.write([encoder.encode(encodeMessage({ type: "status", id: message.id, status }))]));
      return;
    }
    if (message.type !== "beat") return;
    worker.lastBeat = now;
    worker.beats++;
    worker.blockedWarned = false;
    if (message.report) {
      worker.report = message.report;
      sampleActivity();
    }
    for (const wake of beatWaiters) wake();
    worker.served = message.served;
    worker.rss = message.rss;
    worker.oldest = message.oldest ? { ...message.oldest, at: now } : undefined;
    if (!worker.owner || worker.retiring || worker.replacing || !worker.ready || stopping) return;
    const reason = recycleReason(worker.served, worker.recycleAt, worker.rss, options.maxRss);
    if (reason !== undefined) void recycle(worker, reason);
  }

  const acceptControl = (connection: Connection): ConnectionHandlers => {
    const decoder = new MessageDecoder();
    const text = new TextDecoder();
    let worker: Worker | undefined;
    return {
      onData: (chunk) => {
        for (const message of decoder.push(text.decode(chunk, { stream: true }))) {
          if (message.type === "hello") {
            worker ??= workers.get(message.token);
            if (worker) worker.control = connection;
          } else if (worker) onMessage(worker, message);
        }
        if (!worker) return;
      },
      onDrain: () => {},
      onClose: () => {
        void connection;
      },
    };
  };
  const control: Listener = await runtime.listen({ transport: "unix", path: controlPath }, acceptControl, { mode: 0o600 });

  function start(slot: number, owner: boolean): Worker {
    const token = String(++tokens);
    const tail: string[] = [];
    const nowPath = join(controlDir, `now-${token}`);
    writeFileSync(nowPath, "", { mode: 0o600 });
    let worker: Worker;
    const child = runtime.spawnWorker({
      command,
      listenFd: socket.fd,
      env: { [MANAGER_ENV]: controlPath, [TOKEN_ENV]: token, [NOW_ENV]: nowPath },
      // Unprefixed: a worker's stdout is the app's (or the access log's, with --access-log -), line for line.
      onStdout: (line) => console.log(line),
      onStderr: (line) => {
        log(`fcgi worker ${slot} [${worker?.process.pid ?? "?"}]: ${line}`);
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      },
    });
    const now = Date.now();
    worker = {
      slot, token, process: child, startedAt: now, owner, ready: false, retiring: false, killing: false, replacing: false, exited: false,
      lastBeat: now, beats: 0, report: undefined, control: undefined, endCause: undefined, blockedWarned: false,
      served: 0, rss: 0, oldest: undefined, nowPath, tail, onReady: undefined, onEarlyExit: undefined,
      recycleAt: options.recycleAfter === undefined ? undefined : recycleLimit(options.recycleAfter, Math.random()),
    };
    workers.set(token, worker);
    log(`fcgi manager: started worker ${slot} (pid ${child.pid})${owner ? "" : " as a replacement"}`);
    void child.exited.then((exit) => onExit(worker, exit));
    return worker;
  }

  function scheduleStart(slot: number, delay: number): void {
    clearTimeout(pendingStarts.get(slot));
    pendingStarts.set(slot, setTimeout(() => {
      pendingStarts.delete(slot);
      if (!stopping && slot <= desired && !owners().some((w) => w.slot === slot)) start(slot, true);
    }, delay));
  }

  function retire(worker: Worker, why: string): void {
    if (worker.exited || worker.retiring) return;
    if (!worker.ready) {
      worker.retiring = true;
      worker.owner = false;
      kill(worker, `${why} (it was not ready yet)`);
      return;
    }
    worker.retiring = true;
    worker.owner = false;
    log(`fcgi manager: draining ${name(worker)}: ${why}`);
    worker.process.kill("SIGTERM");
    // Its own --close-timeout ends the drain; this is for a worker that does not manage to.
    setTimeout(() => kill(worker, `it was still draining ${seconds(closeTimeout + 2000)} after SIGTERM`), closeTimeout + 2000);
  }

  function kill(worker: Worker, why: string): void {
    if (worker.exited || worker.killing) return;
    worker.killing = true;
    log(`fcgi manager: killing ${name(worker)}: ${why}`);
    // Before it is ready, a worker has no SIGTERM handler yet and has nothing to drain; a runtime
    // dying of SIGTERM may also reset its stdio descriptors on the way out, which SIGKILL leaves
    // alone (the shared socket is no longer one of them on Node and Bun; see workerListenFd).
    if (!worker.ready) {
      worker.process.kill("SIGKILL");
      return;
    }
    worker.process.kill("SIGTERM");
    setTimeout(() => worker.process.kill("SIGKILL"), KILL_GRACE_MS);
  }

  function onExit(worker: Worker, exit: WorkerExit): void {
    worker.exited = true;
    workers.delete(worker.token);
    // Its counts stay in the pool's: those of its last beat (a drained worker sends one as it stops).
    if (worker.report) retireCounts(retired, worker.report);
    for (const wake of beatWaiters) wake();
    try {
      unlinkSync(worker.nowPath);
    } catch {
      // Already gone with the control folder.
    }
    const lived = Date.now() - worker.startedAt;
    const tail = worker.tail.length > 0 ? `; its last output:\n  ${worker.tail.join("\n  ")}` : "";
    if (worker.onEarlyExit) {
      worker.onEarlyExit(`${name(worker)} ${describeExit(exit)} before it was ready${tail}`);
      worker.onEarlyExit = undefined;
    }
    if (stopping || worker.retiring) {
      log(`fcgi manager: ${name(worker)} ${describeExit(exit)}${worker.retiring && !stopping ? " after draining" : ""}`);
    } else if (!worker.owner) {
      log(`fcgi manager: replacement ${name(worker)} ${describeExit(exit)} before taking over${tail}`);
    } else {
      restarts[worker.endCause ?? "crash"]++;
      const drained = worker.ready && exit.code === 0;
      const loop = isCrashLoop(lived, worker.ready, drained);
      const count = loop ? (failures.get(worker.slot) ?? 0) + 1 : 0;
      failures.set(worker.slot, count);
      const delay = restartDelay(count);
      const emergency = drained ? 0 : crashes.record(Date.now());
      const cause = worker.killing ? "" : loop ? ` ${seconds(lived)} after its start${worker.ready ? "" : ", before it was ready"}` : ` after ${seconds(lived)}`;
      const replaced = worker.slot > desired ? "not replaced (the pool shrank)" : delay === 0 ? "replacing it" : `crash loop (${count} in a row): restarting in ${delay} ms`;
      log(`fcgi manager: ${name(worker)} ${describeExit(exit)}${cause}; ${replaced}${loop ? tail : ""}`);
      if (emergency > 0) log(`fcgi manager: EMERGENCY: ${emergency} worker crashes within ${seconds(60_000)}; the pool keeps serving with the workers that live`);
      if (worker.slot <= desired) scheduleStart(worker.slot, delay);
    }
    if (stopping && workers.size === 0) void finish();
  }

  /** Starts a candidate for `slot`; resolves once it is ready, or rejects with why it exited first. */
  function startCandidate(slot: number): { worker: Worker; ready: Promise<void> } {
    const worker = start(slot, false);
    const ready = new Promise<void>((resolve, reject) => {
      worker.onReady = resolve;
      worker.onEarlyExit = (why) => reject(new Error(why));
    });
    return { worker, ready };
  }

  function takeOver(candidate: Worker, why: string): void {
    for (const old of owners()) if (old.slot === candidate.slot && old !== candidate) retire(old, why);
    clearTimeout(pendingStarts.get(candidate.slot));
    pendingStarts.delete(candidate.slot);
    candidate.owner = true;
    candidate.onEarlyExit = undefined;
    failures.set(candidate.slot, 0);
  }

  async function recycle(worker: Worker, reason: string): Promise<void> {
    worker.replacing = true;
    log(`fcgi manager: recycling ${name(worker)}: ${reason}`);
    const candidate = startCandidate(worker.slot);
    try {
      await candidate.ready;
    } catch (error) {
      log(`fcgi manager: cannot recycle ${name(worker)}, it keeps serving: ${(error as Error).message}`);
      // Try again later, not at the next heartbeat.
      setTimeout(() => (worker.replacing = false), restartDelay(5));
      return;
    }
    if (stopping || worker.exited) {
      if (stopping) retire(candidate.worker, "the pool is stopping");
      else takeOver(candidate.worker, "recycled");
      return;
    }
    restarts.recycle++;
    takeOver(candidate.worker, `recycled (${reason})`);
  }

  async function reloadAll(): Promise<boolean> {
    log(`fcgi manager: reloading: starting ${desired} new workers`);
    const candidates = Array.from({ length: desired }, (_, i) => startCandidate(i + 1));
    try {
      await Promise.all(candidates.map((c) => c.ready));
    } catch (error) {
      log(`fcgi manager: reload failed, the old workers keep serving: ${(error as Error).message}`);
      for (const c of candidates) {
        c.worker.onEarlyExit = undefined;
        retire(c.worker, "the reload failed");
      }
      return false;
    }
    if (stopping) {
      for (const c of candidates) retire(c.worker, "the pool is stopping");
      return false;
    }
    restarts.reload += candidates.length;
    for (const c of candidates) takeOver(c.worker, "reloaded");
    log(`fcgi manager: reload done: workers ${candidates.map((c) => c.worker.process.pid).join(", ")} serve; the old ones drain`);
    return true;
  }

  function lastBegun(worker: Worker): ReturnType<typeof parseNowRecord> {
    try {
      return parseNowRecord(readFileSync(worker.nowPath, "utf8").slice(0, 512));
    } catch {
      return undefined;
    }
  }

  /** The request a silent worker's loop is in, as "; request … has run …". */
  function blockedRequest(worker: Worker, now: number): string {
    // A request begun after the last heartbeat went out is the one the loop stopped in; else the oldest one then in flight.
    const latest = lastBegun(worker);
    return latest !== undefined && latest.startedAt >= worker.lastBeat - HEARTBEAT_MS
      ? `; request ${latest.method} ${latest.uri} has run ${seconds(now - latest.startedAt)}`
      : worker.oldest
      ? `; request ${worker.oldest.method} ${worker.oldest.uri} has run ${seconds(worker.oldest.ageMs + now - worker.oldest.at)}`
      : "; no request was in flight";
  }

  function watchHeartbeats(): void {
    const now = Date.now();
    for (const worker of workers.values()) {
      if (worker.exited || worker.killing || !worker.ready) continue;
      const silent = now - worker.lastBeat;
      if (silent > heartbeatTimeout) {
        worker.endCause = "hang";
        kill(worker, `no heartbeat for ${seconds(silent)} (its event loop is blocked)${blockedRequest(worker, now)}`);
      } else if (options.slowRequest !== undefined && silent > Math.max(options.slowRequest, 4 * HEARTBEAT_MS) && !worker.blockedWarned) {
        // The worker cannot log its own slow request while its loop is blocked: say it here, once per silence.
        worker.blockedWarned = true;
        log(`fcgi manager: ${name(worker)} is blocked: no heartbeat for ${seconds(silent)}${blockedRequest(worker, now)}`);
      }
    }
    if (now - listenSampledAt >= 1000) sampleListenQueue();
  }

  /** Samples how many workers are busy (at each beat): the page's max active processes and max children reached. */
  function sampleActivity(): void {
    let active = 0;
    for (const worker of owners()) if (worker.report?.process.state === "Running") active++;
    maxActive = Math.max(maxActive, active);
    const busy = active >= desired;
    if (busy && !allBusy) maxChildrenReached++;
    allBusy = busy;
  }

  let listenSampledAt = 0;
  function sampleListenQueue(): ReturnType<typeof listenQueue> {
    listenSampledAt = Date.now();
    const queue = listenQueue(socket.address);
    if (queue.queue !== null) maxListenQueue = Math.max(maxListenQueue, queue.queue);
    return queue;
  }

  /** Waits (up to REPORT_WAIT_MS) until each worker but `asker` has beaten once more, after asking them to. */
  async function freshReports(asker: Worker | undefined): Promise<void> {
    const targets = new Map<Worker, number>();
    for (const worker of workers.values()) {
      if (worker === asker || !worker.ready || worker.exited || !worker.control) continue;
      targets.set(worker, worker.beats + 1);
      worker.control.write([encoder.encode(encodeMessage({ type: "report" }))]);
    }
    const fresh = (): boolean => [...targets].every(([w, beats]) => w.exited || w.beats >= beats);
    if (fresh()) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        beatWaiters.delete(check);
        resolve();
      };
      const check = (): void => {
        if (fresh()) done();
      };
      const timer = setTimeout(done, REPORT_WAIT_MS);
      beatWaiters.add(check);
    });
  }

  /** The pool's page from every live worker's report (fresh where the worker answers), the asker's included. */
  async function statusFor(asker: Worker | undefined): Promise<PoolStatus> {
    await freshReports(asker);
    const listen = sampleListenQueue();
    const reports = [...workers.values()].filter((w) => !w.exited && w.report).sort((a, b) => a.slot - b.slot).map((w) => w.report!);
    return poolStatus({
      pool: options.poolName ?? "fcgi",
      processManager: "static",
      startTime,
      now: Date.now(),
      listen,
      maxListenQueue: listen.queue === null ? null : maxListenQueue,
      maxActiveProcesses: maxActive,
      maxChildrenReached,
      restarts,
      retired,
    }, reports);
  }

  // Often, so that a hang is ended soon after the timeout: the acceptance is timeout + 1 s at nginx.
  const watcher = setInterval(watchHeartbeats, 100);

  let finishing: Promise<void> | undefined;
  function finish(): Promise<void> {
    finishing ??= (async () => {
      clearInterval(watcher);
      for (const timer of pendingStarts.values()) clearTimeout(timer);
      removeSignals();
      await control.close();
      socket.close();
      rmSync(controlDir, { recursive: true, force: true });
      log(`fcgi manager: stopped`);
      resolveFinished(forced ? 1 : 0);
    })();
    return finishing;
  }

  async function stop(now = false): Promise<void> {
    if (now) {
      forced = true;
      stopping = true;
      log(`fcgi manager: stopping at once: SIGKILL to every worker`);
      for (const worker of workers.values()) worker.process.kill("SIGKILL");
    } else if (!stopping) {
      stopping = true;
      log(`fcgi manager: stopping: every worker drains`);
      for (const worker of workers.values()) retire(worker, "the pool is stopping");
    }
    if (workers.size === 0) await finish();
    await finished;
  }

  const handlers: Array<[string, () => void]> = [];
  function onSignal(signal: string, handle: () => void): void {
    handlers.push([signal, handle]);
    process.on(signal, handle);
  }
  function removeSignals(): void {
    for (const [signal, handle] of handlers) process.off(signal, handle);
  }
  const reload = (): Promise<boolean> => {
    if (stopping) return Promise.resolve(false);
    if (reloading) {
      log("fcgi manager: a reload is already running");
      return reloading;
    }
    reloading = reloadAll().finally(() => (reloading = undefined));
    return reloading;
  };
  const scale = (delta: 1 | -1): void => {
    if (stopping) return;
    if (delta > 0) {
      desired++;
      log(`fcgi manager: adding worker ${desired}`);
      start(desired, true);
    } else if (desired > 1) {
      const slot = desired--;
      clearTimeout(pendingStarts.get(slot));
      for (const worker of owners()) if (worker.slot === slot) retire(worker, `the pool shrinks to ${desired}`);
    } else {
      log("fcgi manager: the pool keeps its last worker");
    }
  };
  if (options.signals ?? true) {
    const terminate = (signal: string) => () => {
      log(`fcgi manager: ${signal}${stopping ? " again" : ""}`);
      void stop(stopping);
    };
    onSignal("SIGTERM", terminate("SIGTERM"));
    onSignal("SIGINT", terminate("SIGINT"));
    onSignal("SIGHUP", () => void reload());
    onSignal("SIGTTIN", () => scale(1));
    onSignal("SIGTTOU", () => scale(-1));
    // logrotate's signal for the access log: each worker reopens its own.
    onSignal("SIGUSR1", () => {
      log("fcgi manager: SIGUSR1: the workers reopen their logs");
      for (const worker of workers.values()) if (!worker.exited) worker.process.kill("SIGUSR1");
    });
  }

  const shown = socket.address.transport === "fd" ? `the inherited socket ${formatAddress(socket.address)}` : formatAddress(socket.address);
  log(`fcgi manager: pid ${process.pid}, ${desired} workers on ${shown}`);
  for (let slot = 1; slot <= desired; slot++) start(slot, true);
  return {
    address: shown,
    pids: () => owners().map((w) => w.process.pid),
    reload,
    scale,
    stop,
    status: () => statusFor(undefined),
    finished,
  };
}
