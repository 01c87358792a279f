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
export { FastCGIError, RequestRefusedError } from "./src/errors.ts";
export type { FastCGIErrorCode, FastCGIErrorDetails } from "./src/errors.ts";

// The codec: record and name-value decoders (WASM), encoders.
export * from "./src/codec/types.ts";
export { RecordDecoder } from "./src/codec/decoder.ts";
export { PairDecoder, Params } from "./src/codec/pairs.ts";
export {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodePairs,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeStreamEnd,
  encodeUnknownType,
} from "./src/codec/encode.ts";

// The sans-IO protocol core.
export { AppConnection, CORE_REJECT_APP_STATUS } from "./src/protocol/app_connection.ts";
export type { AppConnectionOptions, AppEvent } from "./src/protocol/app_connection.ts";

// The sans-IO client core: what a web server says to a FastCGI application.
export { ClientConnection } from "./src/protocol/client_connection.ts";
export type { BeginRequestOptions, ClientEvent } from "./src/protocol/client_connection.ts";

// The application side: serve(), accept().
export * from "./src/app/mod.ts";

// The web-server side: a pooled Client for PHP-FPM or any FastCGI application.
export { Client } from "./src/client/client.ts";
export type { BackendAddress, BackendLimits, BackendStats, BalanceMode, ClientOptions, ClientStats, FetchOptions, PoolStats, StderrInfo } from "./src/client/client.ts";
export type { ParamsOptions } from "./src/client/params.ts";
export { CgiResponseParser } from "./src/client/cgi_response.ts";
export { gateway, safeSegments } from "./src/client/gateway.ts";
export type { Gateway, GatewayOptions } from "./src/client/gateway.ts";
export { toNodeHandler } from "./src/runtime/node_http.ts";
export type { NodeHandlerOptions, NodeRequestListener } from "./src/runtime/node_http.ts";
export { listenHttp } from "./src/runtime/http.ts";
export type { HttpListenOptions, HttpServer } from "./src/runtime/http.ts";
export type { CgiHead } from "./src/client/cgi_response.ts";

// The status page: the pool's counters and its processes, in PHP-FPM's fields and formats.
export { formatStatus, statusQuery } from "./src/status/format.ts";
export type { FormatOptions, FormattedStatus, StatusFormat, StatusQuery } from "./src/status/format.ts";
export type { PoolStatus, ProcessStatus, RestartCause } from "./src/status/types.ts";

// The process manager: a pool of `fcgi serve` workers on one socket.
export { runPool } from "./src/manager/pool.ts";
export type { Pool, PoolOptions } from "./src/manager/pool.ts";

// Sockets: the runtime adapters and address parsing.
export { detectRuntime, getRuntime } from "./src/runtime/index.ts";
export type { RuntimeName } from "./src/runtime/index.ts";
export { AllowList, formatAddress, parseAddress, parseAllowList } from "./src/address.ts";
export type { ConnectOptions, FetchHandler, HttpConnInfo, Pem, Runtime, RuntimeListener, RuntimeListenOptions, TlsClientOptions, TlsServerOptions } from "./src/runtime/types.ts";
export type { Connection, ConnectionHandlers, Listener, ListenOptions, SocketAddress } from "./src/socket.ts";
