/**
 * The runtime's own Request and Response, captured when fcgi loads: `serve()` may replace the
 * globals with lightweight subclasses (its `overrideGlobalObjects` option), and what goes to
 * `Bun.serve`, `Deno.serve` or a caller of the Client must be the real thing.
 * @module
 */

/** The Request class the runtime started with. */
export const NativeRequest: typeof Request = globalThis.Request;

/** The Response class the runtime started with. */
export const NativeResponse: typeof Response = globalThis.Response;
