/**
 * serve() options with every default filled in, and the log wrapper that keeps a limit hit
 * under attack from flooding the log.
 * @module
 */
import { ROLE_BY_NAME, type RoleName } from "../protocol/constants.ts";
import { numberOption } from "../validate.ts";
import type { Handler, Limits, Logger, ServeOptions } from "./types.ts";

/** Default limits: safe for a server behind nginx, Apache or lighttpd. */
export const DEFAULT_LIMITS: Readonly<Required<Limits>> = {
  maxParamsBytes: 1024 * 1024,
  maxConnections: 1024,
  maxRequests: 1024,
  paramsTimeout: 10_000,
  idleTimeout: 60_000,
  maxBodyBytes: Infinity,
  maxBufferedBytes: 1024 * 1024,
  maxUnsentBytes: 1024 * 1024,
  sendTimeout: 60_000,
  closeTimeout: 10_000,
  requestTimeout: Infinity,
};

/** serve() options after defaults. */
export interface ResolvedOptions {
  /** Handlers indexed by role number. */
  readonly handlers: readonly (Handler | undefined)[];
  readonly maxParamsBytes: number;
  readonly maxConnections: number;
  readonly maxRequests: number;
  readonly paramsTimeout: number;
  readonly idleTimeout: number;
  readonly maxBodyBytes: number;
  readonly maxBufferedBytes: number;
  readonly maxUnsentBytes: number;
  readonly sendTimeout: number;
  readonly closeTimeout: number;
  readonly requestTimeout: number;
  readonly multiplex: boolean;
  readonly light: boolean;
  readonly statusPath: string | undefined;
  readonly pingPath: string | undefined;
  readonly pingResponse: string;
  readonly poolName: string;
  /** Milliseconds; Infinity: off. */
  readonly slowRequest: number;
}

function pagePath(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !value.startsWith("/")) throw new TypeError(`serve: ${name} must be a path starting with "/", not ${JSON.stringify(value)}`);
  return value;
}

/** The serve() option that holds each role's handler (accept() hands its requests out by the same names). */
export const HANDLER_OPTION: Readonly<Record<RoleName, "fetch" | "authorize" | "filter">> = {
  responder: "fetch",
  authorizer: "authorize",
  filter: "filter",
};

function limit(options: ServeOptions, name: keyof typeof DEFAULT_LIMITS, min: number): number {
  return numberOption(`serve: ${name}`, options[name], DEFAULT_LIMITS[name], min);
}

/** Fills in defaults and checks the values. */
export function resolveOptions(options: ServeOptions): ResolvedOptions {
  const handlers: (Handler | undefined)[] = [];
  for (const [name, option] of Object.entries(HANDLER_OPTION) as [RoleName, (typeof HANDLER_OPTION)[RoleName]][]) {
    const role = ROLE_BY_NAME[name];
    const handler = options[option];
    if (handler !== undefined && typeof handler !== "function") throw new TypeError(`serve: the handler for role ${role} is not a function`);
    handlers[role] = handler;
  }
  const statusPath = pagePath("statusPath", options.statusPath);
  const pingPath = pagePath("pingPath", options.pingPath);
  if (!handlers.some((h) => h !== undefined) && statusPath === undefined && pingPath === undefined) {
    throw new TypeError("serve: give at least one of fetch, authorize, filter");
  }
  return {
    handlers,
    maxParamsBytes: limit(options, "maxParamsBytes", 64),
    maxConnections: Math.floor(limit(options, "maxConnections", 1)),
    maxRequests: Math.floor(limit(options, "maxRequests", 1)),
    paramsTimeout: limit(options, "paramsTimeout", 1),
    idleTimeout: limit(options, "idleTimeout", 1),
    maxBodyBytes: limit(options, "maxBodyBytes", 0),
    maxBufferedBytes: limit(options, "maxBufferedBytes", 1024),
    maxUnsentBytes: limit(options, "maxUnsentBytes", 1024),
    sendTimeout: limit(options, "sendTimeout", 1),
    closeTimeout: limit(options, "closeTimeout", 0),
    requestTimeout: limit(options, "requestTimeout", 1),
    multiplex: options.multiplex ?? true,
    light: options.overrideGlobalObjects ?? true,
    statusPath,
    pingPath,
    pingResponse: options.pingResponse ?? "pong",
    poolName: options.poolName ?? "fcgi",
    slowRequest: numberOption("serve: slowRequest", options.slowRequest, Infinity, 1),
  };
}

/** The default logger: warnings and errors to stderr, prefixed "fcgi: ". */
export const consoleLogger: Logger = {
  info: (message) => console.error(`fcgi: ${message}`),
  warn: (message) => console.error(`fcgi: ${message}`),
  error: (message) => console.error(`fcgi: ${message}`),
};

const silent: Logger = { info() {}, warn() {}, error() {} };

/**
 * A logger that lets through the first line of each kind per second and then one summary
 * line, so hundreds of refused connections cost a couple of lines, not hundreds.
 */
export class ServerLog {
  readonly #logger: Logger;
  readonly #windows = new Map<string, { until: number; suppressed: number }>();

  constructor(logger: Logger | null | undefined) {
    this.#logger = logger === null ? silent : logger ?? consoleLogger;
  }

  /** A line that always goes out. */
  info(message: string): void {
    this.#logger.info(message);
  }

  /**
   * An error, rate-limited per `kind`. (A failing handler's full message also goes to the web
   * server on FCGI_STDERR, for every request.)
   */
  error(kind: string, message: string): void {
    if (this.#admit(kind)) this.#logger.error(this.#suffix(kind, message));
  }

  /** A warning that always goes out (one per event the operator asked to hear of, such as a slow request). */
  warnEach(message: string): void {
    this.#logger.warn(message);
  }

  /** A warning, rate-limited per `kind`. */
  warn(kind: string, message: string): void {
    if (this.#admit(kind)) this.#logger.warn(this.#suffix(kind, message));
  }

  #admit(kind: string): boolean {
    const window = this.#windows.get(kind);
    if (window && Date.now() < window.until) {
      window.suppressed++;
      return false;
    }
    return true;
  }

  #suffix(kind: string, message: string): string {
    const suppressed = this.#windows.get(kind)?.suppressed ?? 0;
    if (this.#windows.size >= 64) this.#windows.clear();
    this.#windows.set(kind, { until: Date.now() + 1000, suppressed: 0 });
    return suppressed > 0 ? `${message} (and ${suppressed} more like it in the last second)` : message;
  }
}
