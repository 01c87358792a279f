/**
 * The accept queue of a TCP listening socket, as Linux shows it in /proc/net/tcp and tcp6: for a
 * socket in LISTEN state, rx_queue is the number of connections waiting to be accepted. The queue's
 * size (the backlog) is not in /proc (PHP-FPM reads it through TCP_INFO, which JavaScript cannot
 * ask for), and none of the three runtimes tells it; Unix sockets and systems without /proc expose
 * neither. What is not exposed is null, and the page shows "-".
 * @module
 */
import { readFileSync } from "node:fs";
import type { SocketAddress } from "../socket.ts";
import type { ListenQueue } from "./report.ts";

/** The answer where the queue is not exposed. */
export const UNKNOWN_QUEUE: ListenQueue = Object.freeze({ queue: null, len: null });

/** LISTEN in /proc/net/tcp's `st` column. */
const LISTEN = "0A";

/** An IPv4 or IPv6 address as /proc/net/tcp{,6} writes it: each 32-bit word in host (little-endian) order. */
export function procAddress(host: string): string | undefined {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  if (v4) return [4, 3, 2, 1].map((i) => Number(v4[i]).toString(16).padStart(2, "0")).join("").toUpperCase();
  const bytes = ipv6Bytes(host);
  if (!bytes) return undefined;
  let out = "";
  for (let word = 0; word < 16; word += 4) {
    for (let i = 3; i >= 0; i--) out += bytes[word + i]!.toString(16).padStart(2, "0");
  }
  return out.toUpperCase();
}

function ipv6Bytes(host: string): number[] | undefined {
  const text = host.replace(/^\[|\]$/g, "");
  if (!text.includes(":")) return undefined;
  const [head, tail] = text.includes("::") ? text.split("::") as [string, string] : [text, undefined];
  const groups = (part: string | undefined) => (part ? part.split(":") : []);
  const left = groups(head);
  const right = groups(tail);
  // An IPv4 tail (::ffff:127.0.0.1) is two groups.
  const last = (tail === undefined ? left : right).at(-1);
  const v4 = last && /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(last);
  if (v4) {
    const list = tail === undefined ? left : right;
    list.splice(-1, 1, ((Number(v4[1]) << 8) | Number(v4[2])).toString(16), ((Number(v4[3]) << 8) | Number(v4[4])).toString(16));
  }
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  const all = [...left, ...Array<string>(missing).fill("0"), ...right];
  const bytes: number[] = [];
  for (const group of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
    const n = parseInt(group, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  return bytes;
}

/** The queue of the LISTEN socket at `address` (as {@link procAddress} writes it) in the text of /proc/net/tcp (or tcp6), or null. */
export function findListenQueue(procText: string, address: string, port: number): ListenQueue | null {
  const local = `${address}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of procText.split("\n")) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue …
    if (fields[1] !== local || fields[3] !== LISTEN) continue;
    const rx = fields[4]!.split(":")[1]!;
    return { queue: parseInt(rx, 16), len: null };
  }
  return null;
}

/** The accept queue of a listening socket, or {@link UNKNOWN_QUEUE}. */
export function listenQueue(address: SocketAddress | undefined): ListenQueue {
  if (address === undefined || address.transport !== "tcp") return UNKNOWN_QUEUE;
  const proc = procAddress(address.hostname);
  if (proc === undefined) return UNKNOWN_QUEUE;
  try {
    const file = proc.length === 8 ? "/proc/net/tcp" : "/proc/net/tcp6";
    return findListenQueue(readFileSync(file, "latin1"), proc, address.port) ?? UNKNOWN_QUEUE;
  } catch {
    return UNKNOWN_QUEUE;
  }
}
