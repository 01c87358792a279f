/**
 * FastCGI 1.0 record-level numbers, named as the specification names them: what every record
 * carries, whatever the request. (The protocol layer, src/protocol/constants.ts, adds roles,
 * statuses and flags, and re-exports these.)
 * @module
 */

// Version and header length are read by the WebAssembly scanner too, so they are defined with
// the numbers it shares with TypeScript.
export { FCGI_HEADER_LEN, FCGI_VERSION_1 } from "./wasm_interface.ts";

/** Largest content one record can carry (16-bit contentLength). */
export const FCGI_MAX_CONTENT_LENGTH = 65535;
/** requestId of management records. */
export const FCGI_NULL_REQUEST_ID = 0;

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
