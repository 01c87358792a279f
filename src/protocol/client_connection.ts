/**
 * The web server side of one FastCGI connection, sans-IO: the application's bytes in → events
 * out, the web server's intents in → bytes out. No sockets, no timers, no runtime checks.
 *
 * ## States of a requestId (FastCGI 1.0 §3.3 "Managing Request IDs")
 *
 * {@link ClientConnection.beginRequest} picks the lowest inactive id, queues BEGIN_REQUEST and the
 * whole PARAMS stream, and makes the id *active*. It stays active until the application's
 * END_REQUEST for it arrives (an ABORT_REQUEST does not end it: the application answers the abort
 * with END_REQUEST), or until the connection is lost. Records for inactive ids are ignored. An
 * ended id is reused only once its `end` (or `lost`) event has been taken. An active id is in
 * ACTIVE, or in ABORTED once {@link ClientConnection.abort} queued ABORT_REQUEST: the records of
 * both are handled alike (the application still answers), but in ABORTED the input intents
 * (stdin, stdinEnd, data, dataEnd, another abort) are ignored. These are the `RequestPhase`s of
 * the code; "active" in the table is either of them, "none" an id with no request.
 *
 * | state  | record from the application | what happens                                  |
 * |--------|-----------------------------|-----------------------------------------------|
 * | none   | STDOUT, STDERR, END_REQUEST | ignored (never begun, or already ended)       |
 * | active | STDOUT, non-empty           | `stdout` per piece (ignored after its end)    |
 * | active | STDOUT, empty               | `stdoutEnd`; later STDOUT ignored             |
 * | active | STDERR, non-empty           | `stderr` per piece (ignored after its end)    |
 * | active | STDERR, empty               | nothing; later STDERR ignored                 |
 * | active | END_REQUEST (8-byte body)   | `end` with appStatus, protocolStatus → none   |
 * | active | END_REQUEST, other size     | fatal (`error`, then `lost` for every request)|
 * | any    | BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA, types above 11 | ignored (web server → application types) |
 *
 * Management records (requestId 0): GET_VALUES_RESULT → `values`; UNKNOWN_TYPE → `unknownType`;
 * anything else is ignored (the web server answers no queries). A version byte other than 1 is
 * fatal: an `error` event, then `lost` for every active request; later input is ignored.
 * When the application closes the connection ({@link ClientConnection.receiveEnd}), every request
 * still active is `lost` (FastCGIError CONNECTION_CLOSED): a response is never silently cut short.
 * @module
 */

import {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeGetValues,
  encodeParams,
  encodeStreamEnd,
} from "../codec/encode.ts";
import type { Params } from "../codec/pairs.ts";
import { PIECE_START, PIECE_WHOLE, type Bytesish } from "../codec/types.ts";
import { FastCGIError } from "../errors.ts";
import { Queue } from "../queue.ts";
import { FixedBody, ManagementPairs, OutputQueue, RecordInput } from "./plumbing.ts";
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MAX_REQS,
  FCGI_MPXS_CONNS,
  FCGI_NULL_REQUEST_ID,
  RecordType,
  Role,
} from "./constants.ts";

/**
 * What the connection reports to the web server, pulled one at a time with
 * {@link ClientConnection.nextEvent}. Per request: `stdout`/`stderr` pieces in arrival order
 * (`stdoutEnd` once the empty STDOUT record came), then exactly one of `end` or `lost`.
 */
export type ClientEvent =
  /** A non-empty piece of STDOUT: a view of the received chunk, valid as long as that chunk is. */
  | { type: "stdout"; requestId: number; data: Uint8Array }
  /** The empty STDOUT record arrived. The request is still active until `end`. */
  | { type: "stdoutEnd"; requestId: number }
  /** A non-empty piece of STDERR: a view of the received chunk. */
  | { type: "stderr"; requestId: number; data: Uint8Array }
  /** END_REQUEST: the request is over and its id inactive again. */
  | { type: "end"; requestId: number; appStatus: number; protocolStatus: number }
  /** The connection ended or failed while this request was active: its response is incomplete. */
  | { type: "lost"; requestId: number; error: FastCGIError }
  /** GET_VALUES_RESULT (names and values as the application sent them). */
  | { type: "values"; values: Params }
  /** UNKNOWN_TYPE: the application did not know a management record type we sent. */
  | { type: "unknownType"; recordType: number }
  /** Fatal for the connection (bad version, malformed END_REQUEST or GET_VALUES_RESULT). */
  | { type: "error"; error: FastCGIError };

/** Options of {@link ClientConnection.beginRequest}. */
export interface BeginRequestOptions {
  /** Role number (default Role.RESPONDER). */
  role?: number;
  /** Set FCGI_KEEP_CONN: the application leaves the connection open after END_REQUEST (default true). */
  keepConn?: boolean;
}

/** The states of an active request, as the comment at the top of this file names them. */
const RequestPhase = {
  /** Begun: its input may be sent, its answer streams in. */
  ACTIVE: "ACTIVE",
  /** ABORT_REQUEST is queued: no more input is sent; the answer still streams in until END_REQUEST. */
  ABORTED: "ABORTED",
} as const;
type RequestPhase = (typeof RequestPhase)[keyof typeof RequestPhase];

/** One active requestId. */
interface ActiveRequest {
  readonly requestId: number;
  phase: RequestPhase;
  /** STDOUT pieces still go to the web server (until the empty STDOUT record). */
  stdoutOpen: boolean;
  /** STDERR pieces still go to the web server (until the empty STDERR record). */
  stderrOpen: boolean;
  /** In ACTIVE: STDIN records may still be sent (not an Authorizer, no stdinEnd yet). */
  stdinOpen: boolean;
  /** In ACTIVE: DATA records may still be sent (a Filter, no dataEnd yet). */
  dataOpen: boolean;
}

/** The names a web server asks for by default. */
const DEFAULT_QUERY: readonly string[] = [FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS];

/** The highest requestId (16 bits; 0 is the management id). */
const MAX_REQUEST_ID = 0xffff;

/**
 * The web server side of one FastCGI connection, h11 style: begin requests and stream their
 * input with {@link beginRequest}, {@link stdin}, {@link stdinEnd}, write what {@link takeOutput}
 * returns, feed the socket's bytes to {@link receive} and pull {@link ClientEvent}s with
 * {@link nextEvent}.
 *
 * @example
 * ```ts
 * import { ClientConnection } from "fcgi";
 * import { connect } from "node:net";
 *
 * const socket = connect("/run/php/php-fpm.sock");
 * const conn = new ClientConnection();
 * const id = conn.beginRequest([["SCRIPT_FILENAME", "/srv/www/index.php"], ["REQUEST_METHOD", "GET"]]);
 * conn.stdinEnd(id);
 * for (const bytes of conn.takeOutput()) socket.write(bytes);
 * socket.on("data", (chunk: Uint8Array) => {
 *   conn.receive(chunk);
 *   for (let e = conn.nextEvent(); e !== null; e = conn.nextEvent()) {
 *     if (e.type === "stdout") process.stdout.write(e.data);
 *     if (e.type === "end") console.log("protocolStatus", e.protocolStatus);
 *   }
 * });
 * ```
 */
export class ClientConnection {
  readonly #records: RecordInput = new RecordInput((type, requestId, content, flags) => this.#record(type, requestId, content, flags));
  readonly #requests: Map<number, ActiveRequest> = new Map();
  readonly #events: Queue<ClientEvent> = new Queue();
  /**
   * Ids whose `end` or `lost` is queued but not yet taken: not reusable until then, or a request
   * begun while the caller handles earlier events would take an id whose last events are still
   * to come, and receive them as its own.
   */
  readonly #retiring = new Set<number>();
  readonly #output: OutputQueue = new OutputQueue();
  #failed = false;
  #peerClosed = false;
  /** A request was begun without FCGI_KEEP_CONN: the application will close after it. */
  #closing = false;

  // The record being received, for the discrete records that need their whole content.
  readonly #endBody: FixedBody = new FixedBody();
  readonly #result: ManagementPairs = new ManagementPairs();

  /** Creates the state of one freshly opened connection. */
  constructor() {}

  // ---- intents ----------------------------------------------------------------------------

  /**
   * Starts a request: BEGIN_REQUEST, then the whole PARAMS stream (its empty record included).
   * Returns the requestId, the lowest one not active. `params` are name-value pairs (strings are
   * latin1 when every character fits a byte, else UTF-8; pass Uint8Array for exact bytes).
   * Throws a FastCGIError if the connection is no longer usable (lost, failed, or closing after a
   * request without FCGI_KEEP_CONN), and a RangeError if all 65535 ids are active.
   */
  beginRequest(params: Iterable<readonly [Bytesish, Bytesish]>, options: BeginRequestOptions = {}): number {
    if (!this.usable) {
      throw new FastCGIError("CONNECTION_CLOSED", "the connection cannot take another request (lost, failed, or closing after a request without FCGI_KEEP_CONN)");
    }
    let requestId = 1;
    while (this.#requests.has(requestId) || this.#retiring.has(requestId)) requestId++;
    if (requestId > MAX_REQUEST_ID) throw new RangeError("all 65535 requestIds are active on this connection");
    const role = options.role ?? Role.RESPONDER;
    const keepConn = options.keepConn ?? true;
    this.#output.push(encodeBeginRequest(requestId, role, keepConn ? FCGI_KEEP_CONN : 0));
    this.#output.push(encodeParams(requestId, params));
    this.#requests.set(requestId, {
      requestId,
      phase: RequestPhase.ACTIVE,
      stdoutOpen: true,
      stderrOpen: true,
      // An Authorizer gets no input streams (§6.3); a Responder no DATA.
      stdinOpen: role !== Role.AUTHORIZER,
      dataOpen: role === Role.FILTER,
    });
    if (!keepConn) this.#closing = true;
    return requestId;
  }

  /**
   * Queues STDIN records carrying `data` (split into records of at most 65535 bytes; the bytes
   * are not copied, so `data` must stay unchanged until written). Empty data, inactive ids and
   * ids whose STDIN was ended or aborted are ignored: the request may have ended meanwhile.
   */
  stdin(requestId: number, data: Uint8Array): void {
    this.#send(RecordType.STDIN, requestId, data);
  }

  /** Queues the empty STDIN record that ends the request body. Ignored when not applicable. */
  stdinEnd(requestId: number): void {
    this.#sendEnd(RecordType.STDIN, requestId);
  }

  /** Queues FCGI_DATA records (Filter role: the file to filter), like {@link stdin}. */
  data(requestId: number, data: Uint8Array): void {
    this.#send(RecordType.DATA, requestId, data);
  }

  /** Queues the empty DATA record (Filter role). Ignored when not applicable. */
  dataEnd(requestId: number): void {
    this.#sendEnd(RecordType.DATA, requestId);
  }

  /**
   * Queues ABORT_REQUEST (§5.4). The id stays active until the application's END_REQUEST;
   * input intents for it are ignored from now on. A second abort, or one for an inactive id,
   * does nothing. Returns whether a record was queued.
   */
  abort(requestId: number): boolean {
    const request = this.#requests.get(requestId);
    if (request === undefined || request.phase !== RequestPhase.ACTIVE || this.#failed || this.#peerClosed) return false;
    request.phase = RequestPhase.ABORTED;
    this.#output.push(encodeAbortRequest(requestId));
    return true;
  }

  /** Queues a GET_VALUES management record (default names: FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). */
  getValues(names: Iterable<string> = DEFAULT_QUERY): void {
    this.#output.push(encodeGetValues(names));
  }

  /** The bytes to write, in order; empties the queue. */
  takeOutput(): Uint8Array[] {
    return this.#output.take();
  }

  /** How many bytes {@link takeOutput} would return now. */
  get pendingOutputBytes(): number {
    return this.#output.bytes;
  }

  // ---- input ------------------------------------------------------------------------------

  /**
   * Feeds bytes read from the socket (one codec call per chunk); events may follow. The chunk
   * must not be reused by the caller: `stdout`/`stderr` events are views of it. Input after a
   * fatal error or after receiveEnd is ignored.
   */
  receive(chunk: Uint8Array): void {
    if (this.#failed || this.#peerClosed) return;
    const error = this.#records.receive(chunk);
    if (error !== undefined) this.#fail(error);
  }

  /** The application closed the connection: every active request is `lost` (CONNECTION_CLOSED). */
  receiveEnd(): void {
    if (this.#peerClosed || this.#failed) return;
    this.#peerClosed = true;
    const where = this.#records.idle ? "" : " (in the middle of a record)";
    for (const requestId of [...this.#requests.keys()]) {
      this.#lose(requestId, new FastCGIError(
        "CONNECTION_CLOSED",
        `the FastCGI application closed the connection before END_REQUEST for requestId ${requestId}${where}`,
        { requestId },
      ));
    }
  }

  /** The next event, or null when the input so far produced no more (h11's NEED_DATA). */
  nextEvent(): ClientEvent | null {
    const event = this.#events.shift();
    if (event === undefined) return null;
    if (event.type === "end" || event.type === "lost") this.#retiring.delete(event.requestId);
    return event;
  }

  // ---- state ------------------------------------------------------------------------------

  /** How many requestIds are active (begun, no END_REQUEST yet). */
  get activeRequests(): number {
    return this.#requests.size;
  }

  /** Whether `requestId` is active. */
  isActive(requestId: number): boolean {
    return this.#requests.has(requestId);
  }

  /**
   * Whether another request may be begun: not failed, not closed by the peer, and no request was
   * begun without FCGI_KEEP_CONN (the application closes the connection after that one).
   */
  get usable(): boolean {
    return !this.#failed && !this.#peerClosed && !this.#closing;
  }

  /** True after a fatal error or receiveEnd: the connection is good for nothing more. */
  get broken(): boolean {
    return this.#failed || this.#peerClosed;
  }

  /** How many whole records were ignored (inactive ids, unexpected types, …). */
  get ignoredRecords(): number {
    return this.#records.ignored;
  }

  // ---- records ----------------------------------------------------------------------------

  /** Dispatches one record piece by type, as the spec names them. */
  #record(type: number, requestId: number, content: Uint8Array, flags: number): void {
    // The decoder hands out the rest of a chunk after a fatal error: drop it.
    if (this.#failed) return;
    if (requestId === FCGI_NULL_REQUEST_ID) return this.#management(type, content, flags);
    switch (type) {
      case RecordType.STDOUT:
        return this.#outputStream(true, requestId, content, flags);
      case RecordType.STDERR:
        return this.#outputStream(false, requestId, content, flags);
      case RecordType.END_REQUEST:
        return this.#endRequest(requestId, content, flags);
      default:
        // BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA go from web server to application;
        // GET_VALUES_RESULT and UNKNOWN_TYPE are management records; others are unknown.
        return this.#records.ignore(flags);
    }
  }

  /** FCGI_STDOUT and FCGI_STDERR: byte streams closed by their empty record (§5.3). */
  #outputStream(stdout: boolean, requestId: number, content: Uint8Array, flags: number): void {
    const request = this.#requests.get(requestId);
    if (request === undefined || !(stdout ? request.stdoutOpen : request.stderrOpen)) return this.#records.ignore(flags);
    if (content.length > 0) {
      this.#events.push(stdout ? { type: "stdout", requestId, data: content } : { type: "stderr", requestId, data: content });
    } else if (flags === PIECE_WHOLE) {
      if (stdout) {
        request.stdoutOpen = false;
        this.#events.push({ type: "stdoutEnd", requestId });
      } else {
        request.stderrOpen = false;
      }
    }
  }

  /** FCGI_END_REQUEST: acts once its 8-byte body is complete (§5.5). */
  #endRequest(requestId: number, content: Uint8Array, flags: number): void {
    if (!this.#requests.has(requestId)) return this.#records.ignore(flags);
    const b = this.#endBody.add(content, flags);
    if (b === undefined) return;
    if (!this.#endBody.complete) {
      return this.#fail(new FastCGIError(
        "UNEXPECTED_RECORD",
        `END_REQUEST for requestId ${requestId} has a ${this.#endBody.length}-byte body, not 8`,
        { requestId, recordType: RecordType.END_REQUEST },
      ));
    }
    const appStatus = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    this.#requests.delete(requestId);
    this.#retiring.add(requestId);
    this.#events.push({ type: "end", requestId, appStatus, protocolStatus: b[4]! });
  }

  /** Management records (§4.2): the answers to what the web server asked. */
  #management(type: number, content: Uint8Array, flags: number): void {
    if (type === RecordType.UNKNOWN_TYPE) {
      // The body is the unknown type byte and 7 reserved bytes; only the first piece holds it.
      if ((flags & PIECE_START) && content.length > 0) this.#events.push({ type: "unknownType", recordType: content[0]! });
      return;
    }
    if (type !== RecordType.GET_VALUES_RESULT) return this.#records.ignore(flags);
    const values = this.#result.add(content, flags);
    if (values === undefined) return;
    if (!(values instanceof FastCGIError)) return void this.#events.push({ type: "values", values });
    const cause = values;
    this.#fail(new FastCGIError("BAD_RESPONSE", `malformed GET_VALUES_RESULT: ${cause.message}`, {
      recordType: RecordType.GET_VALUES_RESULT,
      cause,
    }));
  }

  #fail(error: FastCGIError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#result.clear();
    this.#events.push({ type: "error", error });
    for (const requestId of [...this.#requests.keys()]) this.#lose(requestId, error);
  }

  #lose(requestId: number, error: FastCGIError): void {
    this.#requests.delete(requestId);
    this.#retiring.add(requestId);
    this.#events.push({ type: "lost", requestId, error });
  }

  // ---- output -----------------------------------------------------------------------------

  /** The request whose input stream `type` (STDIN or DATA) may still be sent, or undefined. */
  #sending(type: number, requestId: number): ActiveRequest | undefined {
    const request = this.#requests.get(requestId);
    if (request === undefined || request.phase !== RequestPhase.ACTIVE) return undefined;
    return (type === RecordType.STDIN ? request.stdinOpen : request.dataOpen) ? request : undefined;
  }

  #send(type: number, requestId: number, data: Uint8Array): void {
    if (data.length > 0 && this.#sending(type, requestId) !== undefined) this.#output.stream(type, requestId, data);
  }

  #sendEnd(type: number, requestId: number): void {
    const request = this.#sending(type, requestId);
    if (request === undefined) return;
    if (type === RecordType.STDIN) request.stdinOpen = false;
    else request.dataOpen = false;
    this.#output.push(encodeStreamEnd(type, requestId));
  }
}
