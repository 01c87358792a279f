// A raw-record FastCGI test client: plain node:net sockets (available on Node, Deno and Bun),
// records built and parsed with the test oracle (test/oracle/), written from the spec apart from
// src/codec/, so that a bug the project's encoder and decoder share cannot cancel itself out here.
// Every wait is bounded by a timeout.
// Playing the web server by hand lets tests send what real web servers never would.
import { connect, type Socket } from "node:net";
import { concatBytes } from "../../src/bytes.ts";
import { PIECE_END, PIECE_START } from "../../src/codec/types.ts";
import { asBytes, chunksOf, pairs as encodePairs, record as encodeRecord, stream as encodeWholeStream } from "../oracle/build.ts";
import { OracleRecordDecoder } from "../oracle/decoder.ts";
import { OraclePairDecoder } from "../oracle/pairs.ts";
import { RecordType, Role } from "../../src/protocol/constants.ts";

/** One whole record as received. */
export interface RawRecord {
  type: number;
  requestId: number;
  content: Uint8Array;
}

/** What one request produced on the wire. */
export interface RequestResult {
  stdout: Uint8Array;
  stderr: string;
  appStatus: number;
  protocolStatus: number;
  records: RawRecord[];
}

/** A parsed CGI response. */
export interface CgiResponse {
  status: number;
  /** Header lines in order, names as sent. */
  headers: [string, string][];
  body: Uint8Array;
  text: string;
  /** The first value of a header (case-insensitive). */
  header(name: string): string | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DEFAULT_TIMEOUT = 5000;
/** Stream records carry at most this much, as the project's encoder cuts them (65535 rounded down to 8). */
const STREAM_RECORD_CONTENT = 65528;

function bytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** A string as pair bytes, as web servers send them: latin1 when every code unit fits a byte, else UTF-8. */
function pairBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" && /^[\0-\xff]*$/.test(data) ? asBytes(data) : bytes(data);
}

/** Where the client connects: a TCP port on loopback, or a Unix socket path. */
export type Target = number | { port: number; host?: string } | { path: string };

/** A FastCGI connection driven record by record. */
export class RecordClient {
  readonly socket: Socket;
  readonly #records: RawRecord[] = [];
  readonly #decoder = new OracleRecordDecoder();
  #partial: { type: number; requestId: number; parts: Uint8Array[] } | null = null;
  #closed = false;
  #error: Error | undefined;
  readonly #wakers = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      try {
        this.#decoder.decode(new Uint8Array(chunk), (type, requestId, content, flags) => this.#piece(type, requestId, content, flags));
      } catch (error) {
        this.#error = error as Error;
      }
      this.#notify();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#notify();
    });
    socket.on("error", (error) => {
      this.#error ??= error;
    });
  }

  /** Connects (bounded by a timeout). */
  static connect(target: Target, timeout: number = DEFAULT_TIMEOUT): Promise<RecordClient> {
    return new Promise((resolve, reject) => {
      const options = typeof target === "number" ? { port: target, host: "127.0.0.1" } : "path" in target ? { path: target.path } : { port: target.port, host: target.host ?? "127.0.0.1" };
      const socket = connect(options as { port: number; host: string });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timed out after ${timeout} ms`));
      }, timeout);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.setNoDelay?.(true);
        resolve(new RecordClient(socket));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** True once the server closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes raw bytes. */
  write(data: Uint8Array | readonly Uint8Array[]): void {
    if (data instanceof Uint8Array) this.socket.write(data);
    else for (const part of data) this.socket.write(part);
  }

  /** Writes and resolves once the socket took the bytes (for large writes). */
  writeAsync(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  begin(requestId: number, role: number = Role.RESPONDER, keepConn: boolean = false): void {
    this.record(RecordType.BEGIN_REQUEST, requestId, Uint8Array.of(role >> 8, role & 0xff, keepConn ? 1 : 0, 0, 0, 0, 0, 0));
  }

  params(requestId: number, params: Record<string, string | Uint8Array> | readonly (readonly [string | Uint8Array, string | Uint8Array])[]): void {
    const list = (Array.isArray(params) ? params : Object.entries(params)) as ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>;
    this.write(encodeWholeStream(RecordType.PARAMS, requestId, encodePairs(list.map(([name, value]) => [pairBytes(name), pairBytes(value)]))));
  }

  stdin(requestId: number, data: Uint8Array | string): void {
    this.#stream(RecordType.STDIN, requestId, data);
  }

  stdinEnd(requestId: number): void {
    this.record(RecordType.STDIN, requestId);
  }

  data(requestId: number, data: Uint8Array | string): void {
    this.#stream(RecordType.DATA, requestId, data);
  }

  dataEnd(requestId: number): void {
    this.record(RecordType.DATA, requestId);
  }

  abort(requestId: number): void {
    this.record(RecordType.ABORT_REQUEST, requestId);
  }

  getValues(names: readonly string[]): void {
    this.record(RecordType.GET_VALUES, 0, encodePairs(names.map((name) => [pairBytes(name), new Uint8Array(0)])));
  }

  /** Writes one record of any type (content up to 65535 bytes). */
  record(type: number, requestId: number, content?: Uint8Array): void {
    this.write(encodeRecord(type, requestId, content));
  }

  /** Stream records holding `data`, without the empty record that would end the stream. */
  #stream(type: number, requestId: number, data: Uint8Array | string): void {
    const all = bytes(data);
    if (all.length === 0) return;
    this.write(chunksOf(all, STREAM_RECORD_CONTENT).map((piece) => encodeRecord(type, requestId, piece)));
  }

  /** A whole request: BEGIN_REQUEST, PARAMS, then STDIN (closed unless `openStdin`). */
  send(requestId: number, options: SendOptions): void {
    this.begin(requestId, options.role ?? Role.RESPONDER, options.keepConn ?? false);
    this.params(requestId, options.params ?? {});
    if (options.stdin !== undefined) this.stdin(requestId, options.stdin);
    if (!options.openStdin && (options.role ?? Role.RESPONDER) !== Role.AUTHORIZER) this.stdinEnd(requestId);
  }

  /** The next record, waiting up to `timeout` ms. */
  async next(timeout: number = DEFAULT_TIMEOUT): Promise<RawRecord> {
    const record = await this.#take(() => this.#records.shift(), timeout, "a record");
    return record;
  }

  /** The next record for `requestId` (others stay queued). */
  async nextFor(requestId: number, timeout: number = DEFAULT_TIMEOUT): Promise<RawRecord> {
    return await this.#take(() => {
      const i = this.#records.findIndex((r) => r.requestId === requestId);
      return i < 0 ? undefined : this.#records.splice(i, 1)[0];
    }, timeout, `a record for request ${requestId}`);
  }

  /** Every record of `requestId` up to and including its END_REQUEST. */
  async response(requestId: number, timeout: number = DEFAULT_TIMEOUT): Promise<RequestResult> {
    const deadline = Date.now() + timeout;
    const records: RawRecord[] = [];
    const out: Uint8Array[] = [];
    let stderr = "";
    for (;;) {
      const record = await this.nextFor(requestId, Math.max(1, deadline - Date.now()));
      records.push(record);
      if (record.type === RecordType.STDOUT) out.push(record.content);
      else if (record.type === RecordType.STDERR) stderr += decoder.decode(record.content);
      else if (record.type === RecordType.END_REQUEST) {
        const view = new DataView(record.content.buffer, record.content.byteOffset, record.content.byteLength);
        return { stdout: concatBytes(out), stderr, appStatus: view.getUint32(0), protocolStatus: record.content[4], records };
      }
    }
  }

  /** Resolves once the server closed the connection; rejects after `timeout` ms. */
  async waitClosed(timeout: number = DEFAULT_TIMEOUT): Promise<void> {
    await this.#take(() => (this.#closed ? true : undefined), timeout, "the connection to close", true);
  }

  /** Records received and not yet taken. */
  get pending(): readonly RawRecord[] {
    return this.#records;
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  #piece(type: number, requestId: number, content: Uint8Array, flags: number): void {
    if (flags & PIECE_START) this.#partial = { type, requestId, parts: [] };
    this.#partial!.parts.push(content.slice());
    if (flags & PIECE_END) {
      this.#records.push({ type, requestId, content: concatBytes(this.#partial!.parts) });
      this.#partial = null;
    }
  }

  #notify(): void {
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const wake of wakers) wake();
  }

  async #take<T>(get: () => T | undefined, timeout: number, what: string, closeOk: boolean = false): Promise<T> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const value = get();
      if (value !== undefined) return value;
      if (this.#error && !closeOk) throw this.#error;
      if (this.#closed && !closeOk) throw new Error(`the connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#wakers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#wakers.add(wake);
      });
    }
  }
}

/** Options of {@link RecordClient.send}. */
export interface SendOptions {
  params?: Record<string, string | Uint8Array>;
  stdin?: Uint8Array | string;
  role?: number;
  keepConn?: boolean;
  /** Leave STDIN open (the caller sends the rest). */
  openStdin?: boolean;
}

/** One request on a fresh connection; returns what came back. */
export async function fcgiRequest(target: Target, options: SendOptions, timeout: number = DEFAULT_TIMEOUT): Promise<RequestResult> {
  const client = await RecordClient.connect(target, timeout);
  try {
    client.send(1, options);
    return await client.response(1, timeout);
  } finally {
    client.destroy();
  }
}

/** Typical params of a GET request as nginx sends them. */
export function httpParams(uri: string = "/", extra: Record<string, string | Uint8Array> = {}): Record<string, string | Uint8Array> {
  const [path, query = ""] = uri.split("?", 2) as [string, string?];
  return {
    GATEWAY_INTERFACE: "CGI/1.1",
    REQUEST_METHOD: "GET",
    REQUEST_URI: uri,
    SCRIPT_NAME: path,
    QUERY_STRING: query,
    SERVER_PROTOCOL: "HTTP/1.1",
    SERVER_NAME: "localhost",
    SERVER_PORT: "80",
    SERVER_ADDR: "127.0.0.1",
    REMOTE_ADDR: "127.0.0.1",
    REMOTE_PORT: "50000",
    HTTP_HOST: "example.test",
    ...extra,
  };
}

/** Parses CGI output: header lines, blank line, body. */
export function parseCgi(stdout: Uint8Array): CgiResponse {
  let end = -1;
  for (let i = 0; i + 3 < stdout.length; i++) {
    if (stdout[i] === 13 && stdout[i + 1] === 10 && stdout[i + 2] === 13 && stdout[i + 3] === 10) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`no end of CGI headers in ${JSON.stringify(latin1(stdout.subarray(0, 200)))}`);
  const head = latin1(stdout.subarray(0, end));
  const headers: [string, string][] = [];
  let status = 200;
  for (const line of head.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`bad CGI header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = Number(value.split(" ")[0]);
    else headers.push([name, value]);
  }
  const body = stdout.subarray(end + 4);
  return {
    status,
    headers,
    body,
    text: decoder.decode(body),
    header: (name) => headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1],
  };
}

/** Decodes GET_VALUES_RESULT content. */
export function parseValues(content: Uint8Array): Map<string, string> {
  const pairs = new OraclePairDecoder();
  pairs.push(content);
  return new Map(pairs.end().entries());
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}


/** A logger for serve() that keeps its lines, so tests can check that a limit hit was logged. */
export function captureLogger(): { lines: string[]; logger: { info(m: string): void; warn(m: string): void; error(m: string): void } } {
  const lines: string[] = [];
  return {
    lines,
    logger: {
      info: (m) => lines.push(`info: ${m}`),
      warn: (m) => lines.push(`warn: ${m}`),
      error: (m) => lines.push(`error: ${m}`),
    },
  };
}

/** A promise with its resolve function, for handlers that wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

