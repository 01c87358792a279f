/**
 * fcgi: FastCGI for Deno, Bun and Node.
 *
 * - `serve()` runs Web-standard `Request → Response` handlers behind nginx, Apache or lighttpd,
 *   in the responder, authorizer and filter roles.
 * - `Client` talks to PHP-FPM or any FastCGI application; `gateway()` is an HTTP front for it.
 * - The record codec (WASM) and the sans-IO protocol core are exported for those who build their own.
 *
 * @module
 */
export * from "./src/protocol/constants.ts";
export { FastCGIError } from "./src/errors.ts";
export type { FastCGIErrorCode, FastCGIErrorDetails } from "./src/errors.ts";
export * from "./src/codec/types.ts";
