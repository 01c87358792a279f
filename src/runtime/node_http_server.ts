/**
 * A `node:http` server running a fetch handler through `toNodeHandler`: Node's HTTP server, and
 * Bun's when the request target must reach the handler as sent (Bun.serve keeps it nowhere).
 * @module
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { toNodeHandler } from "./node_http.ts";
import type { FetchHandler, NativeHttpServer } from "./types.ts";

/** Serves `handler` on a new `node:http` server at `hostname:port`; resolves once listening. */
export async function serveNodeHttp(handler: FetchHandler, address: { hostname: string; port: number; reusePort?: boolean }): Promise<NativeHttpServer> {
  const server = createServer(toNodeHandler(handler));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // reusePort: Node 22.12 / 23.1 and later, and Bun (older Node ignores it: the caller checks).
    server.listen({ port: address.port, host: address.hostname, ...(address.reusePort ? { reusePort: true } : {}) }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
    abort: () => server.closeAllConnections(),
  };
}
