// The Express app bench/express.ts measures, as a process of its own, written as its users write
// it; only the server line differs between the contenders:
//   _express_app.ts fcgi <socket>           fcgi/node's createServer (Node, Deno, Bun)
//   _express_app.ts node-fastcgi <socket>   node-fastcgi 2.0.0's createServer (Node only)
//   _express_app.ts http <port>             plain node:http on 127.0.0.1, no web server in front
// Prints "listening" when ready.
import express from "express";
import { unlinkSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createRequire } from "node:module";
import { createServer } from "../node.ts";

const [mode, address] = process.argv.slice(2) as ["fcgi" | "node-fastcgi" | "http", string];

const app = express();
app.get("/hello", (_req, res) => {
  res.type("text/plain").send("Hello, World!");
});
app.get("/json", (_req, res) => {
  res.json({ message: "Hello, World!" });
});

const ready = () => console.log("listening");
if (mode === "http") {
  createHttpServer(app).listen(Number(address), "127.0.0.1", ready);
} else if (mode === "node-fastcgi") {
  // node-fastcgi ships no types, and leaves a stale socket file in the way of listen().
  const fastcgi = createRequire(import.meta.url)("node-fastcgi") as { createServer(listener: RequestListener): { listen(path: string, callback: () => void): unknown } };
  try {
    unlinkSync(address);
  } catch {
    // none yet
  }
  fastcgi.createServer(app).listen(address, ready);
} else {
  createServer(app).listen(address, ready);
}
