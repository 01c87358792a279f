/**
 * The `socket` of a node:http request served over FastCGI: one per request, since the FastCGI
 * connection belongs to the web server, not to the HTTP client. It carries what apps read from
 * `req.socket` (the client's address, `encrypted`) and the `close` event that on-finished,
 * Express and Koa wait for.
 * @module
 */
import { EventEmitter } from "node:events";
import { isHttps } from "../app/url.ts";
import type { RequestContext } from "../app/types.ts";

/**
 * Stands in for the `net.Socket` of a node:http request: `remoteAddress` and `remotePort` are
 * the HTTP client's (REMOTE_ADDR, REMOTE_PORT), `encrypted` is true when the client spoke HTTPS
 * (HTTPS=on), and `close` fires once the request is over (answered, or given up by the client).
 */
export class FastCGIRequestSocket extends EventEmitter {
  /** The HTTP client's address (REMOTE_ADDR), else the web server's. */
  readonly remoteAddress: string;
  /** The HTTP client's port (REMOTE_PORT), else the web server's. */
  readonly remotePort: number;
  /** "IPv6" when remoteAddress is an IPv6 address, else "IPv4". */
  readonly remoteFamily: string;
  /** The address the HTTP client connected to (SERVER_ADDR). */
  readonly localAddress: string;
  /** The port the HTTP client connected to (SERVER_PORT). */
  readonly localPort: number;
  /** True when the HTTP client spoke HTTPS to the web server (HTTPS=on, or REQUEST_SCHEME=https). */
  readonly encrypted: boolean;
  #open = true;
  readonly #onDestroy: (error?: Error) => void;

  /** `onDestroy` ends the request when the app destroys the socket (the only way to cut it short). */
  constructor(context: RequestContext, onDestroy: (error?: Error) => void) {
    super();
    this.remoteAddress = context.remoteAddress;
    this.remotePort = context.remotePort;
    this.remoteFamily = this.remoteAddress.includes(":") ? "IPv6" : "IPv4";
    this.localAddress = context.serverAddress;
    this.localPort = context.serverPort;
    this.encrypted = isHttps(context.params);
    this.#onDestroy = onDestroy;
  }

  /** True until the request is over (on-finished reads this). */
  get readable(): boolean {
    return this.#open;
  }

  /** True until the request is over (Koa reads this before it writes). */
  get writable(): boolean {
    return this.#open;
  }

  /** True once the request is over. */
  get destroyed(): boolean {
    return !this.#open;
  }

  /** "open" until the request is over, then "closed". */
  get readyState(): string {
    return this.#open ? "open" : "closed";
  }

  /** The address the HTTP client connected to, as `net.Socket.address()` gives it. */
  address(): { address: string; family: string; port: number } {
    return { address: this.localAddress, family: this.localAddress.includes(":") ? "IPv6" : "IPv4", port: this.localPort };
  }

  /** Ends the request where it is (its response is cut short); `close` follows. */
  destroy(error?: Error): this {
    if (this.#open) this.#onDestroy(error);
    return this;
  }

  /** As destroy(): the web server owns the connection, so this request is all there is to end. */
  end(): this {
    return this.destroy();
  }

  /** Accepted and ignored: the web server times its client out (nginx's send_timeout). */
  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once("timeout", callback);
    return this;
  }

  /** Accepted and ignored: the web server owns the client's TCP connection. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** Accepted and ignored: the web server owns the client's TCP connection. */
  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }

  /** Accepted and ignored. */
  ref(): this {
    return this;
  }

  /** Accepted and ignored. */
  unref(): this {
    return this;
  }

  /** Marks the request over and emits `close` (once). */
  closed(hadError: boolean): void {
    if (!this.#open) return;
    this.#open = false;
    this.emit("close", hadError);
  }
}
