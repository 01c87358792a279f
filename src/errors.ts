/**
 * The errors fcgi throws: FastCGIError, with what a log line needs, and RequestRefusedError,
 * the Client's form of it for a request the application would not do.
 * @module
 */

/** Why a FastCGI stream or operation was refused. */
export type FastCGIErrorCode =
  /** A record header's version byte is not 1. */
  | "BAD_VERSION"
  /** A name-value stream ended inside a pair (or inside its length bytes). */
  | "PAIR_TRUNCATED"
  /** A pair's declared name length exceeds the configured limit. */
  | "NAME_TOO_LONG"
  /** A pair's declared value length exceeds the configured limit. */
  | "VALUE_TOO_LONG"
  /** A name-value stream as a whole exceeds the configured byte limit. */
  | "PARAMS_TOO_LARGE"
  /** A record arrived that the protocol does not allow at this point. */
  | "UNEXPECTED_RECORD"
  /** A configured limit was hit (see `limit`). */
  | "LIMIT_EXCEEDED"
  /** The peer closed or broke the connection. */
  | "CONNECTION_CLOSED"
  /** A timeout elapsed (see `limit`). */
  | "TIMEOUT"
  /** The peer sent something that is not valid CGI output or a valid record body. */
  | "BAD_RESPONSE"
  /** The request was aborted. */
  | "ABORTED"
  /** The application refused the request: END_REQUEST with protocolStatus CANT_MPX_CONN, OVERLOADED or UNKNOWN_ROLE. */
  | "REQUEST_REFUSED"
  /** A Client has no backend up to send the request to: each one failed recently and is left out for now. */
  | "UNAVAILABLE";

/** Details carried by a {@link FastCGIError}. */
export interface FastCGIErrorDetails {
  /** The requestId concerned, if any. */
  requestId?: number;
  /** The record type concerned, if any. */
  recordType?: number;
  /** The name of the limit that was hit, if any (for example `maxParamsBytes`). */
  limit?: string;
  /** The param whose pair broke a params limit (its first 64 bytes, latin1), when its name had arrived. */
  param?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A protocol error: malformed input, a limit hit, a timeout, a lost connection.
 *
 * @example
 * ```ts
 * import { FastCGIError, RecordDecoder } from "fcgi";
 * import { connect } from "node:net";
 *
 * const socket = connect("/run/app.sock");
 * const decoder = new RecordDecoder();
 * socket.on("data", (chunk: Uint8Array) => {
 *   try {
 *     decoder.decode(chunk, (type, requestId, content) => {});
 *   } catch (e) {
 *     if (e instanceof FastCGIError && e.code === "BAD_VERSION") socket.destroy(); // not FastCGI
 *     else throw e;
 *   }
 * });
 * ```
 */
export class FastCGIError extends Error {
  /** Machine-readable reason. */
  readonly code: FastCGIErrorCode;
  /** The requestId concerned, if any. */
  readonly requestId: number | undefined;
  /** The record type concerned, if any. */
  readonly recordType: number | undefined;
  /** The limit that was hit, if any. */
  readonly limit: string | undefined;
  /** The param whose pair broke a params limit (its first 64 bytes, latin1), if known. */
  readonly param: string | undefined;

  /** An error with its stable `code`, a message for people, and what is known of where it happened. */
  constructor(code: FastCGIErrorCode, message: string, details: FastCGIErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "FastCGIError";
    this.code = code;
    this.requestId = details.requestId;
    this.recordType = details.recordType;
    this.limit = details.limit;
    this.param = details.param;
  }
}

/**
 * END_REQUEST said the application would not do the request (protocolStatus CANT_MPX_CONN,
 * OVERLOADED or UNKNOWN_ROLE). Code "REQUEST_REFUSED".
 */
export class RequestRefusedError extends FastCGIError {
  /** The protocolStatus of END_REQUEST (see ProtocolStatus). */
  readonly protocolStatus: number;
  /** The appStatus of END_REQUEST. */
  readonly appStatus: number;

  /** The refusal of request `requestId`, as its END_REQUEST gave it. */
  constructor(requestId: number, protocolStatus: number, appStatus: number) {
    super("REQUEST_REFUSED", `the FastCGI application refused the request: END_REQUEST with protocolStatus ${statusName(protocolStatus)}`, { requestId, recordType: END_REQUEST });
    this.name = "RequestRefusedError";
    this.protocolStatus = protocolStatus;
    this.appStatus = appStatus;
  }
}

// The wire numbers (FastCGI 1.0, sections 5.5 and 8), written here because this module sits
// below the codec and the protocol layer, which import it.
const END_REQUEST = 3;

function statusName(status: number): string {
  switch (status) {
    case 1:
      return "CANT_MPX_CONN (1): it does not multiplex requests on one connection";
    case 2:
      return "OVERLOADED (2): it is out of a resource, such as worker processes";
    case 3:
      return "UNKNOWN_ROLE (3): it does not play the role asked for";
    default:
      return `${status} (unknown)`;
  }
}
