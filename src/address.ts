/**
 * Listen and connect addresses as text (`127.0.0.1:9000`, `[::1]:9000`, `:9000`, `unix:/run/app.sock`),
 * and the allow-list of web server addresses (FCGI_WEB_SERVER_ADDRS, PHP-FPM's `listen.allowed_clients`).
 * @module
 */
import type { SocketAddress } from "./socket.ts";

/** The hostname `:port` and a bare port listen on: every IPv4 interface, as nginx's `listen 9000` does. */
export const ALL_INTERFACES = "0.0.0.0";

/**
 * Parses a socket address as web server configurations write it.
 *
 * - `host:port` and `1.2.3.4:port`: TCP on that host.
 * - `[::1]:port`: TCP on an IPv6 address (the brackets are required; a zone as in `[fe80::1%eth0]` is kept).
 * - `:port` or `port`: TCP on every IPv4 interface ({@link ALL_INTERFACES}); write `[::]:port` for IPv6 too.
 * - `unix:/path` or `/path`: a Unix socket.
 * - `fd:0`: the listening socket inherited on file descriptor 0 (FCGI_LISTENSOCK_FILENO); `fd:3` and
 *   up: one inherited on that descriptor (from systemd, or a process manager).
 *
 * Port 0 is accepted (listen on any free port). Throws a `TypeError` naming the input when it is malformed.
 *
 * @example
 * ```ts
 * parseAddress("127.0.0.1:9000"); // { transport: "tcp", hostname: "127.0.0.1", port: 9000 }
 * parseAddress("[::1]:9000");     // { transport: "tcp", hostname: "::1", port: 9000 }
 * parseAddress("unix:/run/app.sock"); // { transport: "unix", path: "/run/app.sock" }
 * ```
 */
export function parseAddress(text: string): SocketAddress {
  const input = text.trim();
  const bad = (why: string) => new TypeError(`invalid address ${JSON.stringify(text)}: ${why}`);
  if (input === "") throw bad("empty");
  if (input.startsWith("unix:")) {
    const path = input.slice(5);
    if (path === "") throw bad("the Unix socket path is empty");
    return { transport: "unix", path };
  }
  if (input.startsWith("/")) return { transport: "unix", path: input };
  if (input.startsWith("fd:")) {
    // fd 1 and 2 are stdout and stderr, never a listening socket.
    const fd = /^fd:(0|[3-9]|[1-9][0-9]{1,6})$/.exec(input);
    if (!fd) throw bad("an inherited listening socket is fd:0 (FCGI_LISTENSOCK_FILENO), or fd:3 and up");
    return { transport: "fd", fd: Number(fd[1]) };
  }
  if (/^\d+$/.test(input)) return { transport: "tcp", hostname: ALL_INTERFACES, port: parsePort(input, bad) };

  let hostname: string;
  let portText: string;
  if (input.startsWith("[")) {
    const close = input.indexOf("]");
    if (close < 0) throw bad("missing ] after the IPv6 address");
    hostname = input.slice(1, close);
    if (input[close + 1] !== ":") throw bad("missing :port after the IPv6 address");
    portText = input.slice(close + 2);
    // A zone (fe80::1%eth0) picks the interface of a link-local address; the address part must be valid.
    const zone = hostname.indexOf("%");
    if (parseIPv6(zone < 0 ? hostname : hostname.slice(0, zone)) === null || zone === hostname.length - 1) {
      throw bad(`${JSON.stringify(hostname)} is not an IPv6 address`);
    }
  } else {
    const colon = input.lastIndexOf(":");
    if (colon < 0) throw bad("missing :port");
    hostname = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (hostname.includes(":")) throw bad("an IPv6 address needs brackets, as in [::1]:9000");
    if (hostname === "") hostname = ALL_INTERFACES;
    else checkHostname(hostname, bad);
  }
  return { transport: "tcp", hostname, port: parsePort(portText, bad) };
}

function parsePort(text: string, bad: (why: string) => TypeError): number {
  if (text === "") throw bad("missing port");
  if (!/^\d+$/.test(text)) throw bad(`port ${JSON.stringify(text)} is not a number`);
  const port = Number(text);
  if (port > 65535) throw bad(`port ${port} is out of range (0-65535)`);
  return port;
}

function checkHostname(hostname: string, bad: (why: string) => TypeError): void {
  // Something that looks like a dotted quad must be one: "256.0.0.1" would otherwise go to DNS.
  if (/^[\d.]+$/.test(hostname)) {
    if (parseIPv4(hostname) === null) throw bad(`${JSON.stringify(hostname)} is not an IPv4 address`);
    return;
  }
  if (!/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(hostname) || hostname.includes("..")) {
    throw bad(`${JSON.stringify(hostname)} is not a hostname`);
  }
}

/**
 * Writes an address the way {@link parseAddress} reads it, for log lines such as "listening on …".
 *
 * @example
 * ```ts
 * formatAddress({ transport: "tcp", hostname: "::1", port: 9000 }); // "[::1]:9000"
 * formatAddress({ transport: "unix", path: "/run/app.sock" });      // "unix:/run/app.sock"
 * ```
 */
export function formatAddress(address: SocketAddress): string {
  switch (address.transport) {
    case "tcp":
      return address.hostname.includes(":") ? `[${address.hostname}]:${address.port}` : `${address.hostname}:${address.port}`;
    case "unix":
      return `unix:${address.path}`;
    case "fd":
      return `fd:${address.fd}`;
  }
}

/** One allow-list entry: an address family, its bytes, and how many leading bits must match. */
interface Range {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/**
 * The web servers allowed to connect, by IP address or CIDR range. The list applies to TCP peers
 * only: a Unix socket peer (remote address "") is always allowed, as in libfcgi and PHP-FPM, because
 * the socket file's mode is what guards a Unix socket. An empty list allows no TCP peer.
 *
 * Build one with {@link parseAllowList} (or `new AllowList(text)`, the same thing).
 */
export class AllowList {
  /** The entries as given (trimmed), for log lines. */
  readonly entries: readonly string[];
  readonly #v4: Range[] = [];
  readonly #v6: Range[] = [];

  /** Parses `text` as {@link parseAllowList} does. */
  constructor(text: string | readonly string[]) {
    const entries: string[] = [];
    for (const item of typeof text === "string" ? [text] : text) {
      for (const part of item.split(",")) {
        const entry = part.trim();
        if (entry === "") continue;
        const range = parseRange(entry);
        (range.bytes.length === 4 ? this.#v4 : this.#v6).push(range);
        entries.push(entry);
      }
    }
    this.entries = entries;
  }

  /**
   * True when `remoteAddress` (as a socket reports it) is in the list. IPv4-mapped IPv6 addresses
   * (`::ffff:127.0.0.1`, what a dual-stack listener reports for IPv4 peers) match IPv4 entries.
   * An IPv6 zone (`fe80::1%eth0`) is ignored. Unparsable addresses are not allowed.
   */
  allows(remoteAddress: string): boolean {
    if (remoteAddress === "") return true;
    const v4 = parseIPv4(remoteAddress);
    if (v4) return this.#v4.some((r) => matches(r, v4));
    const zone = remoteAddress.indexOf("%");
    const v6 = parseIPv6(zone < 0 ? remoteAddress : remoteAddress.slice(0, zone));
    if (!v6) return false;
    const mapped = mappedIPv4(v6);
    if (mapped) return this.#v4.some((r) => matches(r, mapped));
    return this.#v6.some((r) => matches(r, v6));
  }

  /** The entries, comma-separated (the FCGI_WEB_SERVER_ADDRS format). */
  toString(): string {
    return this.entries.join(",");
  }
}

/**
 * Parses an allow-list: IPv4 and IPv6 addresses and CIDR ranges (`10.0.0.0/8`, `fd00::/8`),
 * comma-separated as in FCGI_WEB_SERVER_ADDRS, or as an array (whose items may hold commas too).
 * Whitespace around entries and empty entries are ignored; host bits after a prefix are ignored
 * (`10.1.2.3/8` is `10.0.0.0/8`). Throws a `TypeError` naming the first bad entry.
 *
 * @example
 * ```ts
 * const allow = parseAllowList("127.0.0.1, 10.0.0.0/8, ::1");
 * allow.allows("10.1.2.3");          // true
 * allow.allows("::ffff:127.0.0.1");  // true (IPv4-mapped)
 * allow.allows("192.168.1.1");       // false
 * allow.allows("");                  // true: Unix socket peers are not subject to the list
 * ```
 */
export function parseAllowList(text: string | readonly string[]): AllowList {
  return new AllowList(text);
}

function parseRange(entry: string): Range {
  const bad = (why: string) => new TypeError(`invalid allow-list entry ${JSON.stringify(entry)}: ${why}`);
  const slash = entry.indexOf("/");
  const host = slash < 0 ? entry : entry.slice(0, slash);
  let bytes: Uint8Array | null = parseIPv4(host);
  if (!bytes) {
    if (host.includes("%")) throw bad("IPv6 zones are not supported");
    bytes = parseIPv6(host);
  }
  if (!bytes) throw bad("not an IPv4 or IPv6 address or CIDR range");
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text) || Number(text) > bits) throw bad(`the prefix length must be 0-${bits}`);
    prefix = Number(text);
  }
  // An IPv4-mapped entry means the IPv4 peer; peers are compared in their IPv4 form.
  const mapped = bytes.length === 16 && prefix >= 96 ? mappedIPv4(bytes) : null;
  if (mapped) return { bytes: mapped, prefix: prefix - 96 };
  return { bytes, prefix };
}

function matches(range: Range, address: Uint8Array): boolean {
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((range.bytes[i]! & mask) !== (address[i]! & mask)) return false;
  }
  return true;
}

/** `::ffff:a.b.c.d` → the four IPv4 bytes; anything else → null. */
function mappedIPv4(bytes: Uint8Array): Uint8Array | null {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return null;
  return bytes.slice(12);
}

/** Strict dotted quad (no leading zeros, which some parsers read as octal) → 4 bytes, or null. */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null;
    bytes[i] = Number(p);
  }
  return bytes;
}

/** An IPv6 address (with `::` and an optional trailing dotted quad; no zone) → 16 bytes, or null. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}
