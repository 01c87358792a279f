/**
 * The application side of one FastCGI connection, sans-IO: socket bytes in → events out,
 * the application's intents in → bytes out. No sockets, no timers, no runtime checks.
 *
 * ## States of a requestId (FastCGI 1.0 §3.3 "Managing Request IDs")
 *
 * An id is *inactive* until a BEGIN_REQUEST starts it, and inactive again once END_REQUEST for
 * it is queued (by {@link AppConnection.endRequest}, or by the core when it refuses a request).
 * Records for an inactive id are ignored without a word, as the spec says. While active, an id
 * is first in PARAMS (the PARAMS stream is open; the application has not heard of it yet), then
 * in INPUT (the `request` event is out; STDIN, and DATA for a Filter, stream to the application,
 * each until its empty record), and in ABORTED once the application was told to stop. The
 * states are the `RequestPhase`s of the code; "none" is an id with no request.
 *
 * | state   | record                  | what happens                                                      |
 * |---------|-------------------------|-------------------------------------------------------------------|
 * | none    | BEGIN_REQUEST           | role, multiplexing, `admit()` checked → PARAMS, or END_REQUEST(refusal) |
 * | none    | any other               | ignored                                                           |
 * | PARAMS  | PARAMS, non-empty       | bytes to the pair decoder; a limit hit → END_REQUEST, `rejected` → none |
 * | PARAMS  | PARAMS, empty           | `request` (Authorizer: then `stdinEnd` at once) → INPUT           |
 * | PARAMS  | STDIN, DATA             | out of order: END_REQUEST, `rejected` → none                      |
 * | PARAMS  | ABORT_REQUEST           | the application never saw it: END_REQUEST, `rejected` → none     |
 * | INPUT   | STDIN (Responder, Filter) | `stdin` per piece; the empty record → `stdinEnd`; later STDIN ignored |
 * | INPUT   | DATA (Filter)           | `data` per piece; the empty record → `dataEnd`; later DATA ignored |
 * | INPUT   | ABORT_REQUEST           | `abort` → ABORTED                                                 |
 * | INPUT   | PARAMS                  | ignored (the params were already delivered)                       |
 * | ABORTED | any                     | ignored (no input event follows `abort`)                          |
 * | any     | BEGIN_REQUEST           | ignored: the active request goes on undisturbed                   |
 * | any     | other types             | ignored (UNKNOWN_TYPE answers management records only)            |
 *
 * The application's {@link AppConnection.endRequest} takes INPUT or ABORTED to none. When the
 * connection ends (receiveEnd, a fatal error), PARAMS goes to none as a `rejected` request and
 * INPUT to ABORTED.
 *
 * Management records (requestId 0): GET_VALUES is answered by the core with GET_VALUES_RESULT;
 * every other type, known or not, gets UNKNOWN_TYPE. A version byte other than 1 or a malformed
 * BEGIN_REQUEST body is fatal: an `error` event, then the connection only winds down.
 * @module
 */

import { PairDecoder, type Params } from "../codec/pairs.ts";
import { encodeEndRequest, encodeGetValuesResult, encodeStreamEnd, encodeUnknownType } from "../codec/encode.ts";
import { PIECE_END, PIECE_START, PIECE_WHOLE, type PairLimits } from "../codec/types.ts";
import { FastCGIError } from "../errors.ts";
import { IdMap } from "../id_map.ts";
import { Queue } from "../queue.ts";
import { asFastCGIError, FixedBody, ManagementPairs, OutputQueue, RecordInput } from "./plumbing.ts";
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MAX_REQS,
  FCGI_MPXS_CONNS,
  FCGI_NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  Role,
  ROLE_BY_NAME,
  type RoleName,
} from "./constants.ts";

/** How an {@link AppConnection} behaves. Only `values` is required. */
export interface AppConnectionOptions {
  /**
   * Accept several requests at once on this connection (default true). When false, a
   * BEGIN_REQUEST while another request is active gets END_REQUEST(CANT_MPX_CONN).
   */
  multiplex?: boolean;
  /**
   * Roles this application plays (default all three). A BEGIN_REQUEST for another role gets
   * END_REQUEST(UNKNOWN_ROLE). A role left out of the object counts as not played.
   */
  roles?: { responder?: boolean; authorizer?: boolean; filter?: boolean };
  /**
   * Called for each BEGIN_REQUEST that would start a request (after the role and multiplexing
   * checks passed); false → END_REQUEST(OVERLOADED). The server counts requests across
   * connections (FCGI_MAX_REQS). Default: always true. A throw counts as false.
   */
  admit?: () => boolean;
  /**
   * Called exactly once for every request `admit()` let in, when that request becomes inactive:
   * when its END_REQUEST is queued, whether by {@link AppConnection.endRequest} or by the core
   * (a `rejected` event). Pairs with `admit` so a cross-connection counter stays exact.
   */
  release?: () => void;
  /**
   * Values answered to GET_VALUES (the library answers, not the app). Names not listed in the
   * query are not sent; unknown names asked are omitted. FCGI_MPXS_CONNS is answered "1" only
   * when it is true here and `multiplex` is not false, so the answer never claims more than
   * this connection does.
   */
  values: { FCGI_MAX_CONNS: number; FCGI_MAX_REQS: number; FCGI_MPXS_CONNS: boolean };
  /**
   * Limits of the PARAMS stream of each request (`maxTotalBytes` is the per-request params byte
   * limit). They bound the memory one request can hold before its `request` event; a request
   * that exceeds them is refused (see the `rejected` event).
   */
  pairLimits?: PairLimits;
  /**
   * The CGI output (STDOUT content: a Status line, headers, a body) the core sends ahead of its
   * END_REQUEST when a request's PARAMS break a limit, so that the web server passes an answer
   * such as 431 on to its client instead of a bare 502. Given the refusal: its `limit` and, when
   * the pair's name had arrived, its `param`. Default: none (END_REQUEST alone).
   */
  refusalOutput?: (refusal: FastCGIError) => Uint8Array | undefined;
}

/**
 * What the connection reports to the application, pulled one at a time with
 * {@link AppConnection.nextEvent}.
 *
 * Per request the application sees, in order: `request`; then input events by role —
 * Responder: `stdin`* `stdinEnd`; Authorizer: `stdinEnd` right after `request` (it gets no
 * body; STDIN the server sends anyway is ignored); Filter: `stdin`* `stdinEnd` `data`* `dataEnd`
 * (the spec's order; the core does not enforce it between the two streams). An `abort` may come
 * at any point after `request`, and ends the input (no input event follows it). Whatever
 * happened, the application answers every `request` with {@link AppConnection.endRequest}.
 * A request the core ended itself before its `request` event shows up only as `rejected`.
 */
export type AppEvent =
  /** The PARAMS stream is complete (the empty PARAMS record arrived). */
  | { type: "request"; requestId: number; role: number; keepConn: boolean; params: Params }
  /** A non-empty piece of STDIN: a view of the received chunk, valid as long as that chunk is. */
  | { type: "stdin"; requestId: number; data: Uint8Array }
  /** The empty STDIN record arrived (for an Authorizer: emitted right after `request`). */
  | { type: "stdinEnd"; requestId: number }
  /** A non-empty piece of the Filter role's FCGI_DATA stream: a view of the received chunk. */
  | { type: "data"; requestId: number; data: Uint8Array }
  /** The empty DATA record arrived. */
  | { type: "dataEnd"; requestId: number }
  /**
   * ABORT_REQUEST for an active request, or the connection ended (receiveEnd, or a fatal error)
   * with this request active. The application stops and calls endRequest.
   */
  | { type: "abort"; requestId: number }
  /**
   * The core itself answered END_REQUEST for this requestId (CANT_MPX_CONN, OVERLOADED,
   * UNKNOWN_ROLE at BEGIN_REQUEST; REQUEST_COMPLETE with appStatus 1 for a params limit, input
   * out of order, an abort or the end of the connection before PARAMS ended). For one log line;
   * `limit` names the limit a params limit hit broke (the pair decoder's name for it), `param`
   * the pair that broke it: what had arrived of its name (64 bytes at most) when the limit broke,
   * so all of it when the web server sent the record whole, less or none when it came in pieces.
   */
  | { type: "rejected"; requestId: number; protocolStatus: number; reason: string; limit?: string; param?: string }
  /** Fatal for the connection (bad version, malformed BEGIN_REQUEST): closeWanted is now true. */
  | { type: "error"; error: FastCGIError };

/** appStatus of an END_REQUEST the core sends for a request it ended with REQUEST_COMPLETE. */
export const CORE_REJECT_APP_STATUS = 1;

/** The states of an active request, as the table at the top of this file names them. */
const RequestPhase = {
  /** The PARAMS stream is open; the application has not heard of the request. */
  PARAMS: "PARAMS",
  /** The `request` event is out; the role's input streams go to the application. */
  INPUT: "INPUT",
  /** The `abort` event is out; input for the request is ignored. */
  ABORTED: "ABORTED",
} as const;
type RequestPhase = (typeof RequestPhase)[keyof typeof RequestPhase];

/** One active requestId. */
interface ActiveRequest {
  readonly requestId: number;
  readonly role: number;
  readonly keepConn: boolean;
  phase: RequestPhase;
  /** The PARAMS stream's decoder while in PARAMS; null after. */
  params: PairDecoder | null;
  /** In INPUT: STDIN pieces still go to the application (not an Authorizer, no empty STDIN yet). */
  stdinOpen: boolean;
  /** In INPUT: DATA pieces still go to the application (a Filter, no empty DATA yet). */
  dataOpen: boolean;
  /** STDERR was written, so it needs its closing empty record. */
  stderrUsed: boolean;
}

/**
 * The application side of one FastCGI connection, h11 style: feed it the socket's bytes with
 * {@link receive}, pull {@link AppEvent}s with {@link nextEvent}, answer with {@link stdout},
 * {@link stderr} and {@link endRequest}, and write what {@link takeOutput} returns. The core
 * answers GET_VALUES, unknown management records and refusals by itself.
 *
 * @example
 * ```ts
 * import { AppConnection } from "fcgi";
 * import { createServer } from "node:net";
 *
 * createServer((socket) => {
 *   const conn = new AppConnection({ values: { FCGI_MAX_CONNS: 100, FCGI_MAX_REQS: 100, FCGI_MPXS_CONNS: true } });
 *   socket.on("data", (chunk: Uint8Array) => {
 *     conn.receive(chunk);
 *     for (let e = conn.nextEvent(); e !== null; e = conn.nextEvent()) {
 *       if (e.type === "request") {
 *         conn.stdout(e.requestId, new TextEncoder().encode("Content-Type: text/plain\r\n\r\nhello"));
 *         conn.endRequest(e.requestId);
 *       }
 *     }
 *     for (const bytes of conn.takeOutput()) socket.write(bytes);
 *     if (conn.closeWanted) socket.end();
 *   });
 * }).listen("/run/app.sock");
 * ```
 */
export class AppConnection {
  readonly #records: RecordInput = new RecordInput((type, requestId, content, flags) => this.#record(type, requestId, content, flags));
  readonly #requests: IdMap<ActiveRequest> = new IdMap();
  readonly #multiplex: boolean;
  /** The role numbers this application plays, as bits (1 << role): no Set per connection. */
  readonly #roles: number;
  readonly #admit: (() => boolean) | undefined;
  readonly #release: (() => void) | undefined;
  readonly #values: AppConnectionOptions["values"];
  readonly #pairLimits: PairLimits | undefined;
  readonly #refusalOutput: ((refusal: FastCGIError) => Uint8Array | undefined) | undefined;

  readonly #events: Queue<AppEvent> = new Queue();
  readonly #output: OutputQueue = new OutputQueue();

  /** A fatal error happened: input is no longer read. */
  #failed = false;
  /** receiveEnd was called. */
  #peerClosed = false;
  /** dispose() was called. */
  #disposed = false;
  /** Close once no request is active (close authority delegated, or the peer closed). */
  #closeWhenIdle = false;

  // The record being received, for the discrete records that need their whole content.
  readonly #beginBody: FixedBody = new FixedBody();
  /** Made at the first GET_VALUES: most connections never see one. */
  #query: ManagementPairs | undefined;

  /** Creates the state of one freshly accepted connection. */
  constructor(options: AppConnectionOptions) {
    this.#multiplex = options.multiplex ?? true;
    const roles = options.roles;
    let played = 0;
    for (const name of Object.keys(ROLE_BY_NAME) as RoleName[]) if (roles === undefined || roles[name] === true) played |= 1 << ROLE_BY_NAME[name];
    this.#roles = played;
    this.#admit = options.admit;
    this.#release = options.release;
    this.#values = options.values;
    this.#pairLimits = options.pairLimits;
    this.#refusalOutput = options.refusalOutput;
  }

  /**
   * Feeds bytes read from the socket (one codec call per chunk). Events and output may follow.
   * The chunk must not be reused by the caller: `stdin`/`data` events are views of it.
   * Input after a fatal error, after receiveEnd, or once closeWanted is true is ignored.
   */
  receive(chunk: Uint8Array): void {
    if (this.#failed || this.#peerClosed || this.closeWanted) return;
    const error = this.#records.receive(chunk);
    if (error !== undefined) this.#fail(error);
  }

  /**
   * The peer closed its side. Every active request the application knows gets `abort`; one
   * still in its PARAMS stream is ended by the core (`rejected`). closeWanted becomes true once
   * no request is active.
   */
  receiveEnd(): void {
    if (this.#peerClosed || this.#disposed) return;
    this.#peerClosed = true;
    this.#closeWhenIdle = true;
    if (!this.#failed) this.#endAll("the connection ended before PARAMS did");
  }

  /**
   * The socket is gone for good (closed or destroyed, whatever the reason): every request still
   * active becomes inactive at once, without output, and `release()` is called for each; pending
   * events and output are dropped, and every later call does nothing. Call it last, so that an
   * admission counter shared across connections never leaks.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const request of this.#requests.values()) this.#deactivate(request);
    this.#events.clear();
    this.#output.take();
  }

  /** The next event, or null when the input so far produced no more (h11's NEED_DATA). */
  nextEvent(): AppEvent | null {
    return this.#events.shift() ?? null;
  }

  /**
   * Queues STDOUT records carrying `data` (split into records of at most 65535 bytes; the
   * content is not copied, so `data` must stay unchanged until written). Empty data and
   * inactive ids are ignored: the empty STDOUT record is sent by endRequest.
   */
  stdout(requestId: number, data: Uint8Array): void {
    this.#stream(RecordType.STDOUT, requestId, data);
  }

  /** Queues STDERR records, like {@link stdout}. endRequest then also closes the STDERR stream. */
  stderr(requestId: number, data: Uint8Array): void {
    this.#stream(RecordType.STDERR, requestId, data);
  }

  /**
   * Ends a request: the empty STDOUT record (and the empty STDERR record if STDERR was used),
   * then END_REQUEST(appStatus, protocolStatus). The id becomes inactive; later calls for it
   * are ignored. Without FCGI_KEEP_CONN, closeWanted follows (once no other request is active).
   */
  endRequest(requestId: number, appStatus: number = 0, protocolStatus: number = ProtocolStatus.REQUEST_COMPLETE): void {
    const request = this.#requests.get(requestId);
    if (request === undefined) return;
    this.#deactivate(request);
    this.#output.push(encodeStreamEnd(RecordType.STDOUT, requestId));
    if (request.stderrUsed) this.#output.push(encodeStreamEnd(RecordType.STDERR, requestId));
    this.#output.push(encodeEndRequest(requestId, appStatus >>> 0, protocolStatus & 0xff));
    if (!request.keepConn) this.#closeWhenIdle = true;
  }

  /** The bytes to write, in order; empties the queue. */
  takeOutput(): Uint8Array[] {
    return this.#output.take();
  }

  /** How many bytes {@link takeOutput} would return now (for backpressure decisions). */
  get pendingOutputBytes(): number {
    return this.#output.bytes;
  }

  /**
   * True when the connection must be closed once the output is flushed: after a fatal error,
   * or when no request is active after END_REQUEST of a request begun without FCGI_KEEP_CONN
   * (a refusal with CANT_MPX_CONN excepted: the active request's flag governs), or after
   * receiveEnd, or after dispose(). With multiplexed requests the close waits until the last
   * active one ends.
   */
  get closeWanted(): boolean {
    return this.#failed || this.#disposed || (this.#closeWhenIdle && this.#requests.size === 0);
  }

  /** How many requestIds are active (begun and not yet ended). */
  get activeRequests(): number {
    return this.#requests.size;
  }

  /** How many whole records were ignored (inactive ids, a BEGIN_REQUEST for an active id, …). */
  get ignoredRecords(): number {
    return this.#records.ignored;
  }

  /** Whether `requestId` is active: from its BEGIN_REQUEST until its END_REQUEST was queued. */
  isActive(requestId: number): boolean {
    return this.#requests.has(requestId);
  }

  // ---- input ------------------------------------------------------------------------------

  /** Dispatches one record piece by type, as the spec's §4 and §5 name them. */
  #record(type: number, requestId: number, content: Uint8Array, flags: number): void {
    // The decoder delivers the rest of a chunk after a fatal error or a refusal that closes the
    // connection; dropping it here keeps the outcome independent of how input was chunked.
    if (this.closeWanted) return;
    if (requestId === FCGI_NULL_REQUEST_ID) return this.#management(type, content, flags);
    switch (type) {
      case RecordType.BEGIN_REQUEST:
        return this.#beginRequest(requestId, content, flags);
      case RecordType.ABORT_REQUEST:
        return this.#abortRequest(requestId, flags);
      case RecordType.PARAMS:
        return this.#params(requestId, content, flags);
      case RecordType.STDIN:
        return this.#input(RecordType.STDIN, requestId, content, flags);
      case RecordType.DATA:
        return this.#input(RecordType.DATA, requestId, content, flags);
      default:
        // END_REQUEST, STDOUT, STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE and types above 11 with a
        // requestId: UNKNOWN_TYPE is defined for management records only (§4.2), and the web
        // server never sends the application-to-server types, so these are dropped.
        return this.#records.ignore(flags);
    }
  }

  /** FCGI_GET_VALUES → FCGI_GET_VALUES_RESULT; any other management type → FCGI_UNKNOWN_TYPE. */
  #management(type: number, content: Uint8Array, flags: number): void {
    if (type !== RecordType.GET_VALUES) {
      if (flags & PIECE_END) this.#output.push(encodeUnknownType(type));
      return;
    }
    const asked = (this.#query ??= new ManagementPairs()).add(content, flags);
    if (asked === undefined) return;
    // A malformed query still gets an answer, an empty one, so the server does not wait for it.
    this.#output.push(encodeGetValuesResult(asked instanceof FastCGIError ? [] : this.#answer(asked)));
  }

  /** The known values among the names asked, each once, in the order asked. */
  #answer(asked: Params): Array<readonly [string, string]> {
    const answer: Array<readonly [string, string]> = [];
    const seen = new Set<string>();
    for (const name of asked.keys()) {
      if (seen.has(name)) continue;
      seen.add(name);
      const value = this.#value(name);
      if (value !== undefined) answer.push([name, value]);
    }
    return answer;
  }

  #value(name: string): string | undefined {
    switch (name) {
      case FCGI_MAX_CONNS:
        return String(this.#values.FCGI_MAX_CONNS);
      case FCGI_MAX_REQS:
        return String(this.#values.FCGI_MAX_REQS);
      case FCGI_MPXS_CONNS:
        return this.#values.FCGI_MPXS_CONNS && this.#multiplex ? "1" : "0";
      default:
        return undefined;
    }
  }

  /** FCGI_BEGIN_REQUEST: acts once its 8-byte body is complete. */
  #beginRequest(requestId: number, content: Uint8Array, flags: number): void {
    const body = this.#beginBody.add(content, flags);
    if (body === undefined) return;
    if (!this.#beginBody.complete) {
      return this.#fail(new FastCGIError(
        "UNEXPECTED_RECORD",
        `BEGIN_REQUEST for requestId ${requestId} has a ${this.#beginBody.length}-byte body, not 8`,
        { requestId, recordType: RecordType.BEGIN_REQUEST },
      ));
    }
    // The spec defines BEGIN_REQUEST for inactive ids only. Answering it would end the active
    // request in the server's eyes while the application still works on it, and failing the
    // connection would kill every other request on it: so the duplicate is dropped.
    if (this.#requests.has(requestId)) return this.#records.ignore();

    const role = (body[0]! << 8) | body[1]!;
    const keepConn = (body[2]! & FCGI_KEEP_CONN) !== 0;
    if (role > 30 || (this.#roles & (1 << role)) === 0) {
      return this.#refuse(requestId, keepConn, ProtocolStatus.UNKNOWN_ROLE, `role ${role} is not played`);
    }
    if (!this.#multiplex && this.#requests.size > 0) {
      return this.#refuse(requestId, keepConn, ProtocolStatus.CANT_MPX_CONN, "another request is active on this connection");
    }
    let admitted: boolean;
    let why = "admit() refused";
    try {
      admitted = this.#admit === undefined || this.#admit() === true;
    } catch (error) {
      admitted = false;
      why = `admit() threw: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (!admitted) return this.#refuse(requestId, keepConn, ProtocolStatus.OVERLOADED, why);

    this.#requests.set(requestId, {
      requestId,
      role,
      keepConn,
      phase: RequestPhase.PARAMS,
      params: new PairDecoder(this.#pairLimits),
      stdinOpen: role !== Role.AUTHORIZER,
      dataOpen: role === Role.FILTER,
      stderrUsed: false,
    });
  }

  /** A BEGIN_REQUEST refused on the spot: END_REQUEST alone, no state kept. */
  #refuse(requestId: number, keepConn: boolean, protocolStatus: number, reason: string): void {
    this.#output.push(encodeEndRequest(requestId, 0, protocolStatus));
    this.#events.push({ type: "rejected", requestId, protocolStatus, reason });
    // CANT_MPX_CONN only happens beside an active request, whose own flag decides the close.
    if (!keepConn && protocolStatus !== ProtocolStatus.CANT_MPX_CONN) this.#closeWhenIdle = true;
  }

  /** FCGI_ABORT_REQUEST: the web server gave up on the request (§5.4). */
  #abortRequest(requestId: number, flags: number): void {
    if (!(flags & PIECE_START)) return;
    const request = this.#requests.get(requestId);
    if (request === undefined || request.phase === RequestPhase.ABORTED) return this.#records.ignore(flags);
    if (request.phase === RequestPhase.PARAMS) return this.#reject(request, "ABORT_REQUEST before PARAMS ended");
    this.#abort(request);
  }

  /** INPUT → ABORTED. */
  #abort(request: ActiveRequest): void {
    request.phase = RequestPhase.ABORTED;
    this.#events.push({ type: "abort", requestId: request.requestId });
  }

  /** FCGI_PARAMS: name-value pairs, complete at the empty record (§5.2). */
  #params(requestId: number, content: Uint8Array, flags: number): void {
    const request = this.#requests.get(requestId);
    if (request === undefined || request.phase !== RequestPhase.PARAMS) return this.#records.ignore(flags);
    const decoder = request.params!;
    if (content.length > 0) {
      try {
        decoder.push(content);
      } catch (error) {
        this.#rejectParams(request, error);
      }
      return;
    }
    if (flags !== PIECE_WHOLE) return;
    let params: Params;
    try {
      params = decoder.end();
    } catch (error) {
      return this.#rejectParams(request, error);
    }
    request.phase = RequestPhase.INPUT;
    request.params = null;
    this.#events.push({ type: "request", requestId, role: request.role, keepConn: request.keepConn, params });
    // An Authorizer gets no body (§6.3): its input is complete with the params.
    if (request.role === Role.AUTHORIZER) this.#events.push({ type: "stdinEnd", requestId });
  }

  #rejectParams(request: ActiveRequest, error: unknown): void {
    const fault = asFastCGIError(error);
    let answer: Uint8Array | undefined;
    try {
      answer = fault.limit === undefined ? undefined : this.#refusalOutput?.(fault);
    } catch {
      // The caller's callback failed: the refusal goes out as END_REQUEST alone.
    }
    if (answer !== undefined && answer.length > 0) {
      this.#output.stream(RecordType.STDOUT, request.requestId, answer);
      this.#output.push(encodeStreamEnd(RecordType.STDOUT, request.requestId));
    }
    this.#reject(request, `PARAMS refused (${fault.code}): ${fault.message}`, fault.limit, fault.param);
  }

  /** FCGI_STDIN and FCGI_DATA: byte streams, ended by their empty record (§5.3). */
  #input(type: number, requestId: number, content: Uint8Array, flags: number): void {
    const request = this.#requests.get(requestId);
    if (request === undefined) return this.#records.ignore(flags);
    if (request.phase === RequestPhase.PARAMS) {
      const name = type === RecordType.STDIN ? "STDIN" : "DATA";
      if (flags & PIECE_START) this.#reject(request, `${name} before PARAMS ended`);
      return;
    }
    const stdin = type === RecordType.STDIN;
    if (request.phase === RequestPhase.ABORTED || !(stdin ? request.stdinOpen : request.dataOpen)) return this.#records.ignore(flags);
    if (content.length > 0) {
      this.#events.push(stdin ? { type: "stdin", requestId, data: content } : { type: "data", requestId, data: content });
    } else if (flags === PIECE_WHOLE) {
      if (stdin) request.stdinOpen = false;
      else request.dataOpen = false;
      this.#events.push(stdin ? { type: "stdinEnd", requestId } : { type: "dataEnd", requestId });
    }
  }

  /** The core ends a request the application has not been told about (PARAMS still open). */
  #reject(request: ActiveRequest, reason: string, limit?: string, param?: string): void {
    this.#deactivate(request);
    this.#output.push(encodeEndRequest(request.requestId, CORE_REJECT_APP_STATUS, ProtocolStatus.REQUEST_COMPLETE));
    const event: AppEvent = { type: "rejected", requestId: request.requestId, protocolStatus: ProtocolStatus.REQUEST_COMPLETE, reason };
    if (limit !== undefined) event.limit = limit;
    if (param !== undefined) event.param = param;
    this.#events.push(event);
    if (!request.keepConn) this.#closeWhenIdle = true;
  }

  /** Connection-wide end: requests still in PARAMS are ended by the core, the others get `abort`. */
  #endAll(reason: string): void {
    for (const request of this.#requests.values()) {
      if (request.phase === RequestPhase.PARAMS) this.#reject(request, reason);
      else if (request.phase === RequestPhase.INPUT) this.#abort(request);
    }
  }

  #fail(error: FastCGIError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#query?.clear();
    this.#events.push({ type: "error", error });
    this.#endAll(`the connection failed before PARAMS ended: ${error.code}`);
  }

  #deactivate(request: ActiveRequest): void {
    this.#requests.delete(request.requestId);
    request.params = null;
    if (this.#release !== undefined) this.#release();
  }

  // ---- output -----------------------------------------------------------------------------

  #stream(type: number, requestId: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const request = this.#requests.get(requestId);
    if (request === undefined) return;
    if (type === RecordType.STDERR) request.stderrUsed = true;
    this.#output.stream(type, requestId, data);
  }
}
