/**
 * A tiny FastCGI application for `fcgi serve`:
 *
 * ```sh
 * fcgi serve examples/hello.ts --listen 127.0.0.1:9000
 * ```
 *
 * GET / greets; POST /echo sends the body back; anything else is 404.
 * @module
 */
export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/") {
      return new Response(`hello from fcgi, ${request.headers.get("user-agent") ?? "stranger"}\n`);
    }
    if (url.pathname === "/echo" && request.method === "POST") {
      return new Response(await request.text(), { headers: { "content-type": request.headers.get("content-type") ?? "text/plain" } });
    }
    return new Response("not found\n", { status: 404 });
  },
};
