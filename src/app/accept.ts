/**
 * The accept-loop form of serve(): `for await (const exchange of accept(...))`. A thin layer
 * over the same server: its handler hands each request out as an exchange and waits for
 * `respond()`.
 * @module
 */
import type { RoleName } from "../protocol/constants.ts";
import { HANDLER_OPTION } from "./options.ts";
import { serve } from "./serve.ts";
import type { Handler, RequestContext, ServeOptions, Server } from "./types.ts";

/** One request handed out by {@link accept}. */
export interface Exchange {
  /** The request. */
  readonly request: Request;
  /** Its context (params, role, stderr, ...). */
  readonly context: RequestContext;
  /** Sends the response (once; later calls are ignored). A rejected promise or a throw gives a 500. */
  respond(response: Response | Promise<Response>): void;
}

/** Options of {@link accept}: those of serve() without handlers, plus the roles to hand out. */
export interface AcceptOptions extends Omit<ServeOptions, "fetch" | "authorize" | "filter"> {
  /** Which roles' requests to hand out (default: the Responder only; others get UNKNOWN_ROLE). */
  roles?: readonly RoleName[];
}

/** The exchanges of a running server, to iterate with `for await`. */
export interface Exchanges extends AsyncIterableIterator<Exchange>, AsyncDisposable {
  /** The server, once it listens (rejects if it could not start). */
  readonly server: Promise<Server>;
  /** Closes the server gracefully; the iteration then ends. */
  close(): Promise<void>;
}

/**
 * Serves requests as a stream of exchanges. Breaking out of the loop closes the server.
 *
 * @example
 * ```ts
 * import { accept } from "fcgi";
 *
 * for await (const { request, respond } of accept({ listen: "127.0.0.1:9000" })) {
 *   respond(new Response(`you asked for ${request.url}`));
 * }
 * ```
 */
export function accept(options: AcceptOptions): Exchanges {
  const queue: Exchange[] = [];
  const takers: ((result: IteratorResult<Exchange>) => void)[] = [];
  let finished = false;

  const handler: Handler = (request, context) =>
    new Promise<Response>((resolve, reject) => {
      let answered = false;
      const exchange: Exchange = {
        request,
        context,
        respond(response) {
          if (answered) return;
          answered = true;
          Promise.resolve(response).then(resolve, reject);
        },
      };
      const take = takers.shift();
      if (take) take({ value: exchange, done: false });
      else queue.push(exchange);
    });

  const roles = new Set<string>(options.roles ?? ["responder"]);
  const serveOptions: ServeOptions = { ...options };
  delete (serveOptions as AcceptOptions).roles;
  for (const [name, option] of Object.entries(HANDLER_OPTION)) serveOptions[option] = roles.has(name) ? handler : undefined;
  const server = serve(serveOptions);

  const end = (): void => {
    finished = true;
    for (const take of takers.splice(0)) take({ value: undefined, done: true });
  };
  server.then((s) => s.finished.then(end), end);

  const close = async (): Promise<void> => {
    let s: Server;
    try {
      s = await server;
    } catch {
      end();
      return;
    }
    // Requests handed to nobody yet get an answer, so close() need not wait for closeTimeout.
    for (const exchange of queue.splice(0)) exchange.respond(new Response("the server is closing\n", { status: 503 }));
    await s.close();
    end();
  };

  const exchanges: Exchanges = {
    server,
    close,
    async next(): Promise<IteratorResult<Exchange>> {
      const ready = queue.shift();
      if (ready) return { value: ready, done: false };
      if (finished) return { value: undefined, done: true };
      await server;
      const arrived = queue.shift();
      if (arrived) return { value: arrived, done: false };
      return new Promise((resolve) => {
        if (finished) resolve({ value: undefined, done: true });
        else takers.push(resolve);
      });
    },
    async return(): Promise<IteratorResult<Exchange>> {
      await close();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return exchanges;
    },
    [Symbol.asyncDispose]() {
      return close();
    },
  };
  return exchanges;
}
