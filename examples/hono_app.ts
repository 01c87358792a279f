/**
 * A Hono app, written as any Hono app is, served over FastCGI unchanged:
 *
 * ```sh
 * npx fcgi serve examples/hono_app.ts --listen 127.0.0.1:9000          # Node
 * deno run -A jsr:@fcgi/fcgi/cli serve examples/hono_app.ts --listen 127.0.0.1:9000
 * bunx fcgi serve examples/hono_app.ts --listen 127.0.0.1:9000
 * ```
 * with nginx in front (examples/nginx.conf). test/interop/hono.test.ts runs exactly this.
 * @module
 */
import { Hono } from "hono";

// The annotation is only for this repository's isolatedDeclarations setting; Hono needs none.
const app: Hono = new Hono();

app.get("/", (c) => c.text("Hello from Hono over FastCGI"));

app.get("/greet/:name", (c) => {
  const greeting = c.req.query("greeting") ?? "Hello";
  c.header("X-Powered-By", "Hono");
  return c.json({ message: `${greeting}, ${c.req.param("name")}!` });
});

app.post("/todos", async (c) => {
  const todo = await c.req.json<{ title?: unknown }>();
  if (typeof todo.title !== "string" || todo.title === "") {
    return c.json({ error: "title is required" }, 400);
  }
  return c.json({ id: 1, title: todo.title, done: false }, 201);
});

app.notFound((c) => c.text("Not here", 404));

export default app;
