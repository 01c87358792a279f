/**
 * FastCGI 1.0 protocol numbers, named as the specification names them: roles, statuses, flags and
 * management names here, and the record-level ones of src/codec/constants.ts, re-exported.
 * @module
 */

// The record-level numbers belong to the codec; this module gives them with the others.
export {
  FCGI_HEADER_LEN,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_MAXTYPE,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  RecordType,
} from "../codec/constants.ts";

/** BEGIN_REQUEST flags bit: the web server keeps the connection open after END_REQUEST. */
export const FCGI_KEEP_CONN = 1;
/** The listening socket a web server or spawn-fcgi hands the application (file descriptor 0). */
export { FCGI_LISTENSOCK_FILENO } from "../socket.ts";

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
