/**
 * FastCGI 1.0 protocol numbers, named as the specification names them.
 * @module
 */

/** The only protocol version there is; any other version byte is a decode error. */
export const FCGI_VERSION_1 = 1;
/** Size of every record header. */
export const FCGI_HEADER_LEN = 8;
/** Largest content one record can carry (16-bit contentLength). */
export const FCGI_MAX_CONTENT_LENGTH = 65535;
/** requestId of management records. */
export const FCGI_NULL_REQUEST_ID = 0;
/** BEGIN_REQUEST flags bit: the web server keeps the connection open after END_REQUEST. */
export const FCGI_KEEP_CONN = 1;
/** The listening socket a web server or spawn-fcgi hands the application (file descriptor 0). */
export const FCGI_LISTENSOCK_FILENO = 0;

/** Record types (byte 1 of the header). */
export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;
/** A record type number. */
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** The highest record type the specification defines; larger ones are unknown types. */
export const FCGI_MAXTYPE = 11;

/** Roles in BEGIN_REQUEST. */
export const Role = {
  RESPONDER: 1,
  AUTHORIZER: 2,
  FILTER: 3,
} as const;
/** A role number. */
export type Role = (typeof Role)[keyof typeof Role];

/** A role as the API and the CLI name it. */
export type RoleName = "responder" | "authorizer" | "filter";

/** Each role's number by its API name: the one mapping between the two. */
export const ROLE_BY_NAME: Readonly<Record<RoleName, Role>> = {
  responder: Role.RESPONDER,
  authorizer: Role.AUTHORIZER,
  filter: Role.FILTER,
};

/** The role number of an API role name, or undefined when `name` names no role. */
export function roleFromName(name: unknown): Role | undefined {
  return typeof name === "string" && Object.hasOwn(ROLE_BY_NAME, name) ? ROLE_BY_NAME[name as RoleName] : undefined;
}

/** protocolStatus values of END_REQUEST. */
export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;
/** A protocolStatus number. */
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** Names a GET_VALUES query may ask for. */
export const FCGI_MAX_CONNS = "FCGI_MAX_CONNS";
/** Names a GET_VALUES query may ask for. */
export const FCGI_MAX_REQS = "FCGI_MAX_REQS";
/** Names a GET_VALUES query may ask for. */
export const FCGI_MPXS_CONNS = "FCGI_MPXS_CONNS";
