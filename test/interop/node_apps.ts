// The node:http apps the fcgi/node interop tests serve: the same routes written the way each
// framework is used (Express 5 and 4, Koa, Fastify), with nothing FastCGI-specific in them. Each
// builder returns a plain node:http request listener. What an app sees of a request the client
// gave up (its `close`) goes to the file named by NODE_APP_EVENTS, one JSON line each: the side
// channel the abort tests read. Not a test file itself: importing it has no side effects.
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { Express } from "express";
import Koa from "koa";
import Fastify, { type FastifyInstance, type FastifyServerFactory } from "fastify";

/** The frameworks these apps are written for. */
export type Framework = "express5" | "express4" | "koa" | "fastify";

/** The pieces of the streamed response, 20 ms apart. */
export const STREAM_PIECES: readonly string[] = ["one\n", "two\n", "three\n", "four\n", "five\n"];

/** A part of a multipart/form-data body. */
export interface Part {
  name: string;
  filename: string | undefined;
  size: number;
  sha256: string;
}

/** Parses multipart/form-data by hand (RFC 7578): the parts' names, file names, sizes and hashes. */
export function parseMultipart(body: Buffer, contentType: string): Part[] {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) throw new Error("no multipart boundary");
  const delimiter = Buffer.from(`\r\n--${boundary[1] ?? boundary[2]}`);
  const parts: Part[] = [];
  // The first delimiter has no CRLF before it: parse as if it had.
  const text = Buffer.concat([Buffer.from("\r\n"), body]);
  let at = text.indexOf(delimiter);
  while (at >= 0 && parts.length < 100) {
    const start = at + delimiter.length;
    if (text.subarray(start, start + 2).toString() === "--") break;
    const next = text.indexOf(delimiter, start);
    if (next < 0) throw new Error("a multipart part has no end");
    const part = text.subarray(start + 2, next);
    const headEnd = part.indexOf("\r\n\r\n");
    const head = part.subarray(0, headEnd).toString("latin1");
    const content = part.subarray(headEnd + 4);
    const disposition = /content-disposition:[^\r\n]*?\bname="([^"]*)"(?:; filename="([^"]*)")?/i.exec(head);
    parts.push({ name: disposition?.[1] ?? "", filename: disposition?.[2], size: content.length, sha256: createHash("sha256").update(content).digest("hex") });
    at = next;
  }
  return parts;
}

/** Notes what happened to a request the client may have left, in the side-channel file. */
function note(id: string, event: string, detail: Record<string, unknown> = {}): void {
  const file = process.env.NODE_APP_EVENTS;
  if (file) appendFileSync(file, JSON.stringify({ id, event, ...detail }) + "\n");
}

/** Answers a head and one piece, then waits for the client to go away and notes the `close` events. */
function watchAbort(id: string, req: IncomingMessage, res: ServerResponse): void {
  req.on("close", () => note(id, "req close", { aborted: req.aborted }));
  res.on("close", () => note(id, "res close", { writableEnded: res.writableEnded }));
  res.writeHead(200, { "content-type": "text/plain" });
  res.write("waiting for you to leave\n");
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function piecesStream(): Readable {
  let i = 0;
  return new Readable({
    read() {
      setTimeout(() => this.push(i < STREAM_PIECES.length ? STREAM_PIECES[i++] : null), 20);
    },
  });
}

/** Express 5 or 4 (`express` is the module's default export): every case, static files included. */
export function expressApp(express: typeof import("express"), staticDir: string): Express {
  const app = express();
  app.get("/hello", (_req, res) => {
    res.send("hello from express");
  });
  app.post("/json", express.json(), (req, res) => {
    res.json({ received: req.body });
  });
  app.post("/form", express.urlencoded({ extended: false }), (req, res) => {
    res.json({ received: req.body });
  });
  app.post("/upload", express.raw({ type: "multipart/form-data", limit: "20mb" }), (req, res) => {
    res.json(parseMultipart(req.body as Buffer, req.get("content-type") ?? ""));
  });
  app.use("/static", express.static(staticDir));
  app.get("/redirect", (_req, res) => res.redirect("/hello"));
  app.get("/moved", (_req, res) => res.redirect(301, "/hello"));
  app.get("/cookies", (_req, res) => {
    res.cookie("first", "1", { path: "/" });
    res.cookie("second", "two", { httpOnly: true });
    res.append("Set-Cookie", "third=3; Path=/x");
    res.send("three cookies");
  });
  app.get("/stream", (_req, res) => {
    res.type("text/plain");
    let i = 0;
    const next = (): void => {
      if (i === STREAM_PIECES.length) {
        res.end();
        return;
      }
      res.write(STREAM_PIECES[i++]);
      setTimeout(next, 20);
    };
    next();
  });
  app.get("/error", (_req, _res, next) => next(new Error("boom")));
  app.get("/slow", (req, res) => watchAbort(String(req.query.id), req, res));
  app.get("/whoami", (req, res) => {
    res.json({ ip: req.ip, protocol: req.protocol, secure: req.secure, script: (req as unknown as { fastcgi?: { params: { get(n: string): string | undefined } } }).fastcgi?.params.get("SCRIPT_NAME") });
  });
  app.use((error: Error, _req: unknown, res: import("express").Response, _next: unknown) => {
    res.status(500).json({ error: error.message });
  });
  return app;
}

/** Koa 3: bodies read from the request stream by hand (Koa has no body parser of its own). */
export function koaApp(): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      ctx.status = 500;
      ctx.body = { error: (error as Error).message };
    }
  });
  app.use(async (ctx) => {
    const { method, path } = ctx;
    if (method === "GET" && path === "/hello") ctx.body = "hello from koa";
    else if (method === "POST" && path === "/json") ctx.body = { received: JSON.parse((await readAll(ctx.req)).toString()) };
    else if (method === "POST" && path === "/form") ctx.body = { received: Object.fromEntries(new URLSearchParams((await readAll(ctx.req)).toString())) };
    else if (method === "POST" && path === "/upload") ctx.body = parseMultipart(await readAll(ctx.req), ctx.get("content-type"));
    else if (path === "/redirect") ctx.redirect("/hello");
    else if (path === "/cookies") {
      ctx.cookies.set("first", "1");
      ctx.cookies.set("second", "two", { httpOnly: true });
      ctx.body = "two cookies";
    } else if (path === "/stream") {
      ctx.type = "text/plain";
      ctx.body = piecesStream();
    } else if (path === "/error") throw new Error("boom");
    else if (path === "/slow") {
      ctx.respond = false;
      watchAbort(String(ctx.query.id), ctx.req, ctx.res);
    } else if (path === "/whoami") ctx.body = { ip: ctx.ip, protocol: ctx.protocol, secure: ctx.secure };
  });
  return app.callback();
}

/** Fastify 5 on the server `serverFactory` makes (fcgi/node's createServer, or node:http's). */
export function fastifyApp(serverFactory?: FastifyServerFactory): FastifyInstance {
  const app = Fastify(serverFactory ? { serverFactory } : {});
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.addContentTypeParser("multipart/form-data", { parseAs: "buffer", bodyLimit: 20 * 1024 * 1024 }, (req, body, done) => {
    done(null, parseMultipart(body as Buffer, req.headers["content-type"] ?? ""));
  });
  app.get("/hello", async () => "hello from fastify");
  app.post("/json", async (req) => ({ received: req.body }));
  app.post("/form", async (req) => ({ received: req.body }));
  app.post("/upload", async (req) => req.body);
  app.get("/redirect", async (_req, reply) => reply.redirect("/hello"));
  app.get("/cookies", async (_req, reply) => {
    reply.header("set-cookie", ["first=1; Path=/", "second=two; HttpOnly"]);
    return "two cookies";
  });
  app.get("/stream", async (_req, reply) => reply.type("text/plain").send(piecesStream()));
  app.get("/error", async () => {
    throw new Error("boom");
  });
  app.get("/slow", (req, reply) => {
    reply.hijack();
    watchAbort(String((req.query as { id?: string }).id), req.raw, reply.raw);
  });
  app.get("/whoami", async (req) => ({ ip: req.ip, protocol: req.protocol }));
  return app;
}
