// A node:http app as `fcgi serve` takes it: the default export is a server with `request`
// listeners, never listened. NODE_APP picks the framework, NODE_APP_STATIC the static folder.
import express5 from "express";
import express4 from "express4";
import { createServer } from "node:http";
import { expressApp, fastifyApp, type Framework, koaApp } from "./node_apps.ts";

const framework = (process.env.NODE_APP ?? "express4") as Framework;
const staticDir = process.env.NODE_APP_STATIC ?? ".";

async function server(): Promise<unknown> {
  if (framework === "fastify") {
    const app = fastifyApp();
    // Fastify adds its routes on ready(); its server already has its request listener.
    await app.ready();
    return app.server;
  }
  if (framework === "koa") return createServer(koaApp());
  return createServer(expressApp(framework === "express4" ? express4 : express5, staticDir));
}

const exported: unknown = await server();
export default exported;
