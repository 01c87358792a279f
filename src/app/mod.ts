/**
 * The application side of fcgi: serve() and accept(), and the types handlers see.
 * @module
 */
export { serve } from "./serve.ts";
export { accept } from "./accept.ts";
export type { Exchange, Exchanges, AcceptOptions } from "./accept.ts";
export { DEFAULT_LIMITS } from "./options.ts";
export { AccessLog, formatAccessLine } from "./access_log.ts";
export type { AccessEntry, AccessLogFormat } from "./access_log.ts";
export type {
  AccessLogSink,
  Handler,
  Limits,
  ListenAddress,
  Logger,
  ObservabilityOptions,
  RequestContext,
  ServeOptions,
  Server,
  SocketInfo,
  StderrWriter,
} from "./types.ts";
