// A serve() on a free loopback port for the length of one test body, closed (gracefully) after it.
import type { ServeOptions, Server } from "../../src/app/types.ts";
import { serve } from "../../src/app/serve.ts";
import { within } from "./poll.ts";
import { getRuntime } from "../../src/runtime/index.ts";
import type { Runtime } from "../../src/runtime/types.ts";

/** Runs `body` with a server on 127.0.0.1 (silent unless `options.logger` says otherwise), then closes it. */
export async function withServer(options: Partial<ServeOptions>, body: (port: number, server: Server) => Promise<void>): Promise<void> {
  const server = await serve({ listen: "127.0.0.1:0", logger: null, ...options } as ServeOptions);
  try {
    const address = server.addresses[0]!;
    if (address.transport !== "tcp") throw new Error(`expected a TCP address, got ${address.transport}`);
    await body(address.port, server);
  } finally {
    await within(server.close(), 10_000, "server.close()");
  }
}

/**
 * Node's runtime with a listener whose close takes `ms`, as a runtime's may: what it accepts
 * meanwhile reaches the server after close() began (the path of a pool's shared accept queue).
 * `listened()` says whether serve() listened through it.
 */
export async function slowClosingRuntime(ms: number): Promise<Runtime & { listened(): boolean }> {
  const real = await getRuntime("node");
  let listened = false;
  return {
    name: real.name,
    connect: real.connect,
    listen: async (address, accept, options) => {
      listened = true;
      const listener = await real.listen(address, accept, options);
      return {
        address: listener.address,
        close: async () => {
          await new Promise((resolve) => setTimeout(resolve, ms));
          await listener.close();
        },
      };
    },
    listened: () => listened,
  };
}
