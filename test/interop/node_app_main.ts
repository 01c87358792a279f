// Starts one of the apps of node_apps.ts as a process of its own, the way its users start it:
//   node_app_main.ts <express5|express4|koa|fastify> <fcgi|http> <host:port> <static dir>
// "fcgi" serves it with fcgi/node's createServer (Fastify: through its serverFactory option),
// "http" with node:http's (the differential test's reference). Prints "listening" when ready.
import express5 from "express";
import express4 from "express4";
import { createServer as createHttpServer } from "node:http";
import { createServer, type RequestListener } from "../../node.ts";
import { expressApp, fastifyApp, type Framework, koaApp } from "./node_apps.ts";

const [framework, mode, address, staticDir] = process.argv.slice(2) as [Framework, "fcgi" | "http", string, string];
const host = address.slice(0, address.lastIndexOf(":"));
const port = Number(address.slice(address.lastIndexOf(":") + 1));
type Listener = RequestListener;
const create = (listener: Listener): { listen(port: number, host: string, callback: () => void): unknown } =>
  mode === "fcgi" ? createServer(listener) : createHttpServer(listener);

if (framework === "fastify") {
  // Fastify's documented way to run on another server: serverFactory, then its own listen().
  const app = fastifyApp((handler) => create(handler) as ReturnType<typeof createHttpServer>);
  await app.listen({ port, host });
  console.log("listening");
} else {
  const listener = framework === "koa" ? koaApp() : expressApp(framework === "express4" ? express4 : express5, staticDir);
  create(listener).listen(port, host, () => console.log("listening"));
}
