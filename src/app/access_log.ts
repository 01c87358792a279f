/**
 * The access log of `fcgi serve --access-log FILE|-`: one line per request, as JSON or in the NCSA
 * Common Log Format, gathered in memory and appended to a file (or stdout) in few large writes.
 * @module
 */
import { closeSync, openSync, writeSync } from "node:fs";

/** One served request, as the access log records it. */
export interface AccessEntry {
  /** When the request started, in ms since the epoch. */
  time: number;
  /** The process that served it (several workers may share one log). */
  pid: number;
  /** The FastCGI request id on its connection. */
  requestId: number;
  /** REQUEST_METHOD. */
  method: string;
  /** REQUEST_URI: the raw request target. */
  uri: string;
  /** SERVER_PROTOCOL; the Common Log Format's request line says "HTTP/1.1" when it is absent. */
  protocol?: string;
  /** The response status. */
  status: number;
  /** Response body bytes. */
  bytes: number;
  /** From the request's start to the response's end, in ms. */
  durationMs: number;
  /** REMOTE_ADDR, "-" when absent. */
  remoteAddr: string;
  /** REMOTE_USER, when the web server authenticated one. */
  user?: string;
}

/**
 * "json": one JSON object per line (keys time, pid, requestId, method, uri, protocol when given,
 * status, bytes, duration_ms, remote_addr, user when given). "common": the NCSA Common Log Format,
 * `remote - user [day/Mon/year:hh:mm:ss +0000] "METHOD uri protocol" status bytes`.
 */
export type AccessLogFormat = "json" | "common";

/** What an AccessLog may be given besides its target and format. */
export interface AccessLogOptions {
  /**
   * Told once per kind of failure (and again after writes recover) instead of throwing, so that a
   * full disk never stops the server. Default: console.error with "fcgi: access log: ".
   */
  onError?: (message: string) => void;
}

// Lines go out in one write once this much has gathered, or FLUSH_MS after the first of them.
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 100;
// The most unwritten lines held while writes fail or the reader of stdout lags; older ones are dropped.
const MAX_BYTES = 1024 * 1024;

// Every line is ASCII (both formats escape the rest), so a string's length is its size in bytes:
// the thresholds above and writeSync's count of bytes written apply to strings as they are, and no
// reader has to guess the encoding of params, which are latin1 strings of the raw bytes.

const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();

// JSON: a string with none of what JSON.stringify escapes, nor anything from DEL up (see above).
// (Whole-string negated classes: V8 matches them about twice as fast as a search for one bad character.)
const JSON_SAFE = /^[^"\\\x00-\x1f\x7f-\uffff]*$/;
const JSON_NON_ASCII = /[\x7f-\uffff]/g;

function jsonString(text: string): string {
  // A string with nothing to escape is what JSON.stringify would give, quoted: skip the call.
  if (JSON_SAFE.test(text)) return '"' + text + '"';
  return JSON.stringify(text).replace(JSON_NON_ASCII, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}

// NaN and Infinity are not JSON.
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? "" + n : "null";
}

// CLF: what nginx escapes as \xHH in its access log (", \, controls, DEL and every byte above), and
// the space too, so that a parser splitting the line or the request line on spaces finds the same
// fields whatever the request held.
const CLF_SAFE = /^[^\x00-\x20"\\\x7f-\uffff]*$/;

function clfField(text: string): string {
  if (text === "") return "-";
  if (CLF_SAFE.test(text)) return text;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) {
      out += text[i];
    } else if (c <= 0xff) {
      // Params are latin1 strings of the raw bytes: one character is one byte of the request.
      out += "\\x" + HEX[c >> 4] + HEX[c & 15];
    } else {
      // Only a string built elsewhere holds more than a byte per character: log its UTF-8 bytes.
      const point = text.codePointAt(i)!;
      if (point > 0xffff) i++;
      for (const b of encoder.encode(String.fromCodePoint(point))) out += "\\x" + HEX[b >> 4] + HEX[b & 15];
    }
  }
  return out;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad2 = (n: number) => (n < 10 ? "0" + n : "" + n);
const pad3 = (n: number) => (n < 10 ? "00" : n < 100 ? "0" : "") + n;

// A server logs many requests per second: the time text is built once per second and reused (V8
// takes some 700 ns for a Date's toISOString, more than the whole line costs with the cache).
let clfSecond = NaN;
let clfTime = "";
let isoSecond = NaN;
let isoPrefix = "";

// A time a Date cannot hold (NaN, ±Infinity) would make toISOString throw in the server: log the epoch.
function wholeMs(time: number): number {
  return time >= -8.64e15 && time <= 8.64e15 ? Math.floor(time) : 0;
}

function clfTimeOf(time: number): string {
  const second = Math.floor(wholeMs(time) / 1000);
  if (second !== clfSecond) {
    const d = new Date(second * 1000);
    clfTime = `${pad2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000`;
    clfSecond = second;
  }
  return clfTime;
}

function isoTimeOf(time: number): string {
  const ms = wholeMs(time);
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    // "…:25.000Z" without "000Z"; slicing from the end keeps the six-digit years of far dates.
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    isoSecond = second;
  }
  return isoPrefix + pad3(ms - second * 1000) + "Z";
}

// toFixed(3), which costs V8 and JSC some 160 ns, by integer arithmetic for the durations a server
// sees (rounding a half may differ from toFixed's in the last digit); null for NaN and Infinity.
function fixed3(n: number): string {
  if (!(n >= 0 && n < 1e12)) return Number.isFinite(n) ? n.toFixed(3) : "null";
  const thousandths = Math.round(n * 1000);
  const whole = Math.floor(thousandths / 1000);
  return whole + "." + pad3(thousandths - whole * 1000);
}

/**
 * One access log line, with its "\n": every string field escaped so that no request can break the
 * line or forge another, and the line all ASCII.
 * @example
 * ```ts
 * formatAccessLine({ time: Date.UTC(2026, 11, 6, 6, 20, 25), pid: 7, requestId: 1, method: "GET", uri: "/", status: 200, bytes: 5, durationMs: 0.25, remoteAddr: "10.0.0.1" }, "common");
 * // '10.0.0.1 - - [06/Dec/2026:06:20:25 +0000] "GET / HTTP/1.1" 200 5\n'
 * ```
 */
export function formatAccessLine(entry: AccessEntry, format: AccessLogFormat): string {
  if (format === "common") {
    return clfField(entry.remoteAddr) + " - " + clfField(entry.user ?? "") + " [" + clfTimeOf(entry.time) + '] "' +
      clfField(entry.method) + " " + clfField(entry.uri) + " " + clfField(entry.protocol ?? "HTTP/1.1") + '" ' +
      entry.status + " " + (entry.bytes > 0 ? "" + entry.bytes : "-") + "\n";
  }
  return '{"time":"' + isoTimeOf(entry.time) + '","pid":' + jsonNumber(entry.pid) + ',"requestId":' + jsonNumber(entry.requestId) +
    ',"method":' + jsonString(entry.method) + ',"uri":' + jsonString(entry.uri) +
    (entry.protocol === undefined ? "" : ',"protocol":' + jsonString(entry.protocol)) +
    ',"status":' + jsonNumber(entry.status) + ',"bytes":' + jsonNumber(entry.bytes) +
    ',"duration_ms":' + fixed3(entry.durationMs) +
    ',"remote_addr":' + jsonString(entry.remoteAddr) +
    (entry.user === undefined ? "" : ',"user":' + jsonString(entry.user)) + "}\n";
}

// A failure's kind, such as ENOSPC, for reporting each kind once.
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : String(error);
}

// The message with its code: Deno's writeSync says "No space left on device (os error 28)" alone.
function errorText(error: unknown): string {
  const message = (error as Error | undefined)?.message ?? String(error);
  const code = errorCode(error);
  return message.includes(code) ? message : `${code}: ${message}`;
}

/**
 * An access log: a file opened for appending (O_APPEND, so that several workers can share it and
 * each write lands whole at its end) or stdout for "-". Lines gather in memory and go out in one
 * write per 64 KiB or 100 ms after the first of them, so that a request pays for a string, not a
 * system call. Writes never throw: a failure is reported once per kind through `onError`, and up
 * to 1 MiB of the newest lines wait for the next try (every 100 ms); older ones are dropped and
 * counted.
 * @example
 * ```ts
 * const log = new AccessLog("/var/log/fcgi/access.log", "common");
 * log.write({ time: Date.now(), pid: 1, requestId: 1, method: "GET", uri: "/", status: 200, bytes: 5, durationMs: 0.2, remoteAddr: "-" });
 * log.reopen(); // after logrotate moved the file (on SIGUSR1, as nginx does)
 * await log.close();
 * ```
 */
export class AccessLog {
  readonly #path: string | undefined;
  readonly #format: AccessLogFormat;
  readonly #onError: (message: string) => void;
  #fd: number;
  #closed = false;
  // Lines since the last write, and how many.
  #head = "";
  #headLines = 0;
  // Chunks of whole lines a write has yet to take, oldest first (only while writes fail or lag).
  #backlog: string[] = [];
  #backlogLines: number[] = [];
  #backlogBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // The last write failed: lines wait for the timer rather than retry a write on every request.
  #failing = false;
  // reopen() could not open the path: lines go on to the old file, and each flush tries again.
  #reopenPending = false;
  #dropped = 0;
  #reported = new Set<string>();

  /**
   * Opens `target` for appending (created with mode 0o644), or takes stdout for "-". Throws when
   * the file cannot be opened: at startup that is a mistake to show, not to log.
   */
  constructor(target: string, format: AccessLogFormat = "json", options: AccessLogOptions = {}) {
    if (format !== "json" && format !== "common") throw new TypeError(`access log format must be "json" or "common", not ${JSON.stringify(format)}`);
    this.#format = format;
    this.#onError = options.onError ?? ((message) => console.error(`fcgi: access log: ${message}`));
    this.#path = target === "-" ? undefined : target;
    this.#fd = this.#path === undefined ? 1 : openSync(this.#path, "a", 0o644);
  }

  /** Adds a request's line; it is written within 100 ms. Ignored after close(). */
  write(entry: AccessEntry): void {
    if (this.#closed) return;
    this.#head += formatAccessLine(entry, this.#format);
    this.#headLines++;
    if (this.#head.length < FLUSH_BYTES) {
      if (this.#timer === undefined) this.#startTimer();
    } else if (this.#failing) {
      this.#park();
      this.#bound();
    } else {
      this.flush();
    }
  }

  /** Writes what has gathered now (as far as the target takes it). */
  flush(): void {
    if (this.#closed) return;
    this.#clearTimer();
    this.#park();
    if (this.#reopenPending) this.#open();
    // Synchronous writes: one write(2) per 64 KiB or 100 ms costs a request well under a
    // microsecond, keeps every chunk of whole lines a single append (which is what keeps workers
    // sharing the file from tearing each other's lines), and keeps the order without writes in
    // flight across reopen() and close(). The price is that a stalled disk or a stdout reader that
    // stops reading stalls the server, as it does nginx, whose log writes block too.
    while (this.#backlog.length > 0) {
      const chunk = this.#backlog[0]!;
      let written: number;
      try {
        written = writeSync(this.#fd, chunk);
      } catch (error) {
        this.#failed(error);
        return;
      }
      this.#backlogBytes -= written;
      if (written >= chunk.length) {
        this.#backlog.shift();
        this.#backlogLines.shift();
      } else if (written > 0) {
        // A pipe or a nearly full disk took part: the rest goes next, the lines it holds still count.
        const rest = chunk.slice(written);
        this.#backlog[0] = rest;
        this.#backlogLines[0] = rest.split("\n").length - 1;
      } else {
        this.#failed(new Error("the write took nothing"));
        return;
      }
    }
    if (this.#failing) this.#recovered();
  }

  /**
   * Writes what has gathered to the file open now, then opens the path again: after logrotate
   * renamed the file, new lines go to a new one. If the path cannot be opened, that is reported,
   * lines go on to the old file, and each flush tries again. For stdout it does nothing.
   */
  reopen(): void {
    if (this.#closed || this.#path === undefined) return;
    this.flush();
    this.#open();
    // Lines the old file refused may go to the new one now rather than at the next retry.
    if (this.#failing) this.flush();
  }

  /** Writes what has gathered and closes the file; later writes are ignored. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#clearTimer();
    const lost = this.#dropped + this.#headLines + this.#backlogLines.reduce((sum, n) => sum + n, 0);
    if (lost > 0) this.#onError(`${this.#name()}: closed with ${lost} lines not written`);
    this.#head = "";
    this.#backlog = [];
    this.#backlogLines = [];
    if (this.#path !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // Nothing is left to write to it.
      }
    }
  }

  #name(): string {
    return this.#path ?? "stdout";
  }

  // Tells `message` unless this kind of failure was told already since writes last worked.
  #report(kind: string, message: string): void {
    if (this.#reported.has(kind)) return;
    this.#reported.add(kind);
    this.#onError(message);
  }

  #open(): void {
    let fd: number;
    try {
      fd = openSync(this.#path!, "a", 0o644);
    } catch (error) {
      this.#reopenPending = true;
      this.#report(`open ${errorCode(error)}`, `cannot reopen ${this.#path}: ${errorText(error)}; writing to the file open before until it opens`);
      return;
    }
    try {
      closeSync(this.#fd);
    } catch {
      // Already gone: the new file is what matters.
    }
    this.#fd = fd;
    if (this.#reopenPending) {
      this.#reopenPending = false;
      if (this.#reported.size > 0) this.#onError(`${this.#path}: reopened`);
      this.#reported.clear();
    }
  }

  #failed(error: unknown): void {
    this.#failing = true;
    const code = errorCode(error);
    // EAGAIN is a non-blocking stdout whose reader lags: slow, not broken; the bound covers it.
    if (code !== "EAGAIN") this.#report(`write ${code}`, `cannot write to ${this.#name()}: ${errorText(error)}; keeping the newest 1 MiB of lines and trying again every ${FLUSH_MS} ms`);
    this.#bound();
    this.#startTimer();
  }

  #recovered(): void {
    this.#failing = false;
    const dropped = this.#dropped;
    this.#dropped = 0;
    if (dropped > 0) this.#onError(`${this.#name()}: writing again; ${dropped} lines were dropped meanwhile`);
    else if (this.#reported.size > 0) this.#onError(`${this.#name()}: writing again`);
    this.#reported.clear();
  }

  // Moves the lines gathered so far to the backlog as one chunk.
  #park(): void {
    if (this.#head === "") return;
    this.#backlog.push(this.#head);
    this.#backlogLines.push(this.#headLines);
    this.#backlogBytes += this.#head.length;
    this.#head = "";
    this.#headLines = 0;
  }

  // Drops the oldest chunks while the backlog and the next chunk's room exceed MAX_BYTES: whole
  // chunks, so that dropping is rare and cheap however many requests arrive while writes fail.
  #bound(): void {
    while (this.#backlogBytes > MAX_BYTES - FLUSH_BYTES && this.#backlog.length > 0) {
      this.#backlogBytes -= this.#backlog.shift()!.length;
      this.#dropped += this.#backlogLines.shift()!;
    }
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, FLUSH_MS);
    // A quiet server must still be free to exit; Deno's global timers are numbers without unref.
    this.#timer.unref?.();
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
