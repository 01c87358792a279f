/**
 * The HTTP answer to a request whose PARAMS broke a limit, sent as CGI output ahead of the core's
 * END_REQUEST, so that the web server answers its client with the cause (431, 414, 400) instead of
 * "upstream prematurely closed" and a 502.
 * @module
 */
import type { FastCGIError } from "../errors.ts";
import { errorOutput, REASON } from "./cgi.ts";

/** The CGI variables a request's target fills: too long, they make a 414. */
const URI_PARAMS = new Set(["REQUEST_URI", "QUERY_STRING", "DOCUMENT_URI", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "SCRIPT_FILENAME"]);

/**
 * The status for a params limit hit: 431 for a header (an HTTP_ pair, or a name too long to be
 * anything else: the client chooses only header names), 414 for what the request target fills,
 * 400 for the rest (a CGI variable the web server made too large, or a pair not identified).
 */
export function refusalStatus(limit: string | undefined, param: string | undefined): 400 | 414 | 431 {
  if (param === undefined) return limit === "maxNameLength" ? 431 : 400;
  if (param.startsWith("HTTP_")) return 431;
  return URI_PARAMS.has(param) ? 414 : 400;
}

/** The CGI output for a params refusal: fcgi's error answer, its one-line body the status and reason. */
export function refusalOutput(refusal: FastCGIError): Uint8Array {
  const status = refusalStatus(refusal.limit, refusal.param);
  return errorOutput(status, `${status} ${REASON[status]}`);
}
