// Waiting on state instead of on the clock: a condition polled until it holds, a value polled
// until it stops changing, and a socket adapter that counts what passes through it (for tests
// that measure backpressure where the code under test reads and writes, not where the kernel does).
import { readFileSync } from "node:fs";
import type { Runtime } from "../../src/runtime/types.ts";
import type { Connection, ConnectionHandlers } from "../../src/socket.ts";

/**
 * The most one onData delivers: Node's and Deno's adapters read 64 KiB at a time (src/runtime/deno.ts
 * READ_SIZE), Bun's receive buffer is 512 KiB.
 */
export const MAX_READ: number = 512 * 1024;

/** A record's largest size (header, 65535 content bytes, 255 padding): a piece of one may wait in a decoder. */
export const MAX_RECORD: number = 8 + 65535 + 255;

/**
 * What loopback TCP may hold between two sockets when neither side reads: the sender's and the
 * receiver's kernel buffers at their largest (Linux: the tcp_wmem and tcp_rmem maximums; elsewhere
 * a generous guess).
 */
export const KERNEL_BUFFERS: number = kernelBuffers();

function kernelBuffers(): number {
  try {
    const max = (name: string) => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[2]);
    const sum = max("tcp_rmem") + max("tcp_wmem");
    if (Number.isFinite(sum) && sum > 0) return sum;
  } catch {
    // not Linux
  }
  return 16 * 1024 * 1024;
}

export interface PollOptions {
  /** Give up after this many ms (default 10 000). */
  timeout?: number;
  /** Poll every this many ms (default 10). */
  interval?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves once `check()` is true, polling every 5 ms; rejects naming `what` after `timeout` ms. */
export async function waitFor(check: () => boolean, timeout: number = 10_000, what: string = "a condition"): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Rejects naming `what` after `ms` unless `promise` settles first. */
export function within<T>(promise: Promise<T>, ms: number, what: string = "a promise"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface SettleOptions extends PollOptions {
  /** The value must stay the same this long (default 200 ms). */
  stableMs?: number;
}

/**
 * Polls `read()` until its value has not changed for `stableMs`, and returns that value; rejects
 * (with the last values seen) if it is still changing after `timeout` ms. For a quantity that
 * backpressure should stop, such as bytes read or written: a fixed sleep followed by a threshold
 * passes on a slow machine even when nothing pushes back, a value that stands still does not.
 * Values are compared with JSON.stringify, so a tuple of several counters may be read at once.
 */
export async function settle<T>(read: () => T, what: string, { stableMs = 200, timeout = 15_000, interval = 10 }: SettleOptions = {}): Promise<T> {
  const deadline = Date.now() + timeout;
  let value = read();
  let key = JSON.stringify(value);
  let since = Date.now();
  for (;;) {
    await sleep(interval);
    const now = read();
    const nowKey = JSON.stringify(now);
    if (nowKey !== key) {
      value = now;
      key = nowKey;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) {
      return value;
    }
    if (Date.now() > deadline) throw new Error(`${what} was still changing after ${timeout} ms: last ${key}`);
  }
}

/** What one connection's adapter delivered and was asked to do, counted as it happens. */
export interface ConnectionTally {
  /** Bytes the adapter handed to the code under test (onData). */
  delivered: number;
  /** Bytes the code under test handed to the adapter (write). */
  written: number;
  /** write() calls that returned false (the adapter's buffer was full). */
  refusedWrites: number;
  /** pause() and resume() calls. */
  pauses: number;
  resumes: number;
  /** True between pause() and resume(). */
  paused: boolean;
  /** Bytes delivered while paused (an adapter should deliver none). */
  deliveredWhilePaused: number;
  /** The adapter reported the socket closed (onClose). */
  closed: boolean;
  /** Bytes the code under test tried to write after onClose. */
  writtenAfterClose: number;
}

function tally(): ConnectionTally {
  return { delivered: 0, written: 0, refusedWrites: 0, pauses: 0, resumes: 0, paused: false, deliveredWhilePaused: 0, closed: false, writtenAfterClose: 0 };
}

function countConnection(inner: Connection, t: ConnectionTally): Connection {
  return {
    write(chunks) {
      const n = chunks.reduce((sum, c) => sum + c.byteLength, 0);
      t.written += n;
      if (t.closed) t.writtenAfterClose += n;
      const ok = inner.write(chunks);
      if (!ok) t.refusedWrites++;
      return ok;
    },
    get bufferedAmount() {
      return inner.bufferedAmount;
    },
    pause() {
      t.pauses++;
      t.paused = true;
      inner.pause();
    },
    resume() {
      t.resumes++;
      t.paused = false;
      inner.resume();
    },
    end: () => inner.end(),
    destroy: (error) => inner.destroy(error),
    get remoteAddress() {
      return inner.remoteAddress;
    },
    get remotePort() {
      return inner.remotePort;
    },
    get localAddress() {
      return inner.localAddress;
    },
    get localPort() {
      return inner.localPort;
    },
  };
}

function countHandlers(inner: ConnectionHandlers, t: ConnectionTally): ConnectionHandlers {
  return {
    onData(chunk) {
      t.delivered += chunk.byteLength;
      if (t.paused) t.deliveredWhilePaused += chunk.byteLength;
      inner.onData(chunk);
    },
    onDrain: () => inner.onDrain(),
    onClose(error) {
      t.closed = true;
      inner.onClose(error);
    },
  };
}

/**
 * `runtime` with every connection counted (accepted by listen() or opened by connect()): the
 * real adapter does the work, the tallies (one per connection, in order) say what crossed it.
 */
export function countingRuntime(runtime: Runtime): { runtime: Runtime; connections: ConnectionTally[] } {
  const connections: ConnectionTally[] = [];
  return {
    connections,
    runtime: {
      name: runtime.name,
      listen: (address, accept, options) =>
        runtime.listen(address, (connection) => {
          const t = tally();
          connections.push(t);
          return countHandlers(accept(countConnection(connection, t)), t);
        }, options),
      connect: async (address, handlers) => {
        const t = tally();
        connections.push(t);
        return countConnection(await runtime.connect(address, countHandlers(handlers, t)), t);
      },
    },
  };
}
