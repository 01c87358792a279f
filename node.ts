/**
 * fcgi/node: node:http apps (Express, Koa, Fastify, any `(req, res)` listener) over FastCGI.
 *
 * `createServer()` is node:http's, with the same listener and the same `listen()`; the web server
 * in front (nginx, Apache, lighttpd) speaks HTTP, and each FastCGI request reaches the listener
 * as `req` and `res` that behave as `http.IncomingMessage` and `http.ServerResponse`. What the web
 * server sends that HTTP has no header for (SCRIPT_NAME, PATH_INFO, DOCUMENT_ROOT, an authorizer's
 * Variable-* values) is in `req.fastcgi.params`. Nothing is patched: node:http stays as it is.
 *
 * @example
 * ```ts
 * import express from "express";
 * import { createServer } from "fcgi/node";   // Deno: "jsr:@fcgi/fcgi/node"
 *
 * const app = express();
 * app.get("/", (_req, res) => res.send("hello over FastCGI"));
 * createServer(app).listen(9000, "127.0.0.1", () => console.log("nginx: fastcgi_pass 127.0.0.1:9000;"));
 * ```
 *
 * @module
 */
export { createServer, FastCGIServer, isRequestEmitter, nodeHandlers, requestContext } from "./src/node/server.ts";
export type {
  AddressInfo,
  CreateServerOptions,
  ListenOptions,
  NodeExchangeOptions,
  RequestEmitter,
  RequestListener,
} from "./src/node/server.ts";
export { FastCGIIncomingMessage } from "./src/node/incoming.ts";
export type { IncomingHttpHeaders } from "./src/node/incoming.ts";
export { FastCGIServerResponse } from "./src/node/response.ts";
export type { OutgoingHeaderValue, ResponseLimits, ResponseSink } from "./src/node/response.ts";
export { FastCGIRequestSocket } from "./src/node/socket.ts";
// The types the options and the request context name, so that fcgi/node documents itself alone.
export { Role } from "./src/protocol/constants.ts";
export type { RoleName } from "./src/protocol/constants.ts";
export type { Params } from "./src/codec/pairs.ts";
export type { AccessEntry } from "./src/app/access_log.ts";
export type { AccessLogSink, Handler, Limits, ListenAddress, Logger, ObservabilityOptions, RequestContext, ServeOptions, Server, SocketInfo, StderrWriter } from "./src/app/types.ts";
export type { Runtime } from "./src/runtime/types.ts";
export type { Connection, ConnectionHandlers, Listener, ListenOptions as SocketListenOptions, SocketAddress } from "./src/socket.ts";
export type { PoolStatus, ProcessStatus, RestartCause } from "./src/status/types.ts";
