/**
 * The demo application behind `npm run server` (examples/server.ts starts it), and an ordinary
 * fcgi app anywhere else:
 *
 * ```sh
 * fcgi serve examples/app.ts --listen 127.0.0.1:9000
 * ```
 *
 * Its page proves the round trip: it names the runtime and process that made it, the FastCGI
 * request that carried it (requestId, FCGI_KEEP_CONN, the socket) and every CGI param the web
 * server sent; a counter shows the process lives on between requests; a form POSTs a message
 * back (STDIN) and is answered with a 303 redirect (a Status and a Location header over STDOUT).
 *
 * - `GET /`: the page.
 * - `POST /`: a form field `message`, kept in memory (the last five); answers 303 to `/`.
 * - `GET /info.json`: the same facts as JSON, for scripts and tests.
 * @module
 */
import process from "node:process";
import { detectRuntime, Role, type RequestContext } from "../mod.ts";

/** The runtime as it names itself (navigator.userAgent: "Deno/2.9.6", "Bun/1.4.5"); Node 20 has no navigator. */
const runtime = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ??
  `${(await detectRuntime()).name} ${process.version}`;
const started = new Date();
/** Requests this process has answered: it keeps counting because the process outlives requests. */
let served = 0;
const messages: Array<{ text: string; from: string; at: string }> = [];
const MAX_FORM_BYTES = 4096;

/** What the page and /info.json show about one request. */
interface Facts {
  runtime: string;
  pid: number;
  started: string;
  served: number;
  requestId: number;
  role: string;
  keepConn: boolean;
  /** The FastCGI socket the request came on (a Unix socket path, or host:port). */
  socket: string;
  method: string;
  url: string;
  params: Array<[string, string]>;
  messages: typeof messages;
}

function factsOf(request: Request, context: RequestContext): Facts {
  const socket = context.socket.localPort === 0
    ? `unix:${context.socket.localAddress}`
    : `${context.socket.localAddress}:${context.socket.localPort}`;
  return {
    runtime,
    pid: process.pid,
    started: started.toISOString(),
    served,
    requestId: context.requestId,
    role: context.role === Role.RESPONDER ? "RESPONDER" : String(context.role),
    keepConn: context.keepConn,
    socket,
    method: request.method,
    url: request.url,
    params: [...context.params],
    messages,
  };
}

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
// Params carry request headers, which anyone can set: everything shown is escaped.
function html(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c]!);
}

function page(facts: Facts): string {
  const rows = facts.params.map(([name, value]) => `<tr><th>${html(name)}</th><td>${html(value)}</td></tr>`).join("\n");
  const said = facts.messages.length === 0
    ? "<p>No messages yet.</p>"
    : `<ol>${facts.messages.map((m) => `<li>${html(m.text)} <small>(${html(m.from)}, ${html(m.at)})</small></li>`).join("")}</ol>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fcgi: served over FastCGI</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
code, td, th { font-family: ui-monospace, monospace; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 2px 8px; border-bottom: 1px solid #eee; word-break: break-all; }
th { width: 14rem; color: #555; }
.facts td { font-family: system-ui, sans-serif; font-size: 15px; }
</style>
</head>
<body>
<h1>Served over FastCGI</h1>
<p>This page was made by <code>examples/app.ts</code>, running under <code>fcgi serve</code> on
<strong id="runtime">${html(facts.runtime)}</strong> in process <strong id="pid">${facts.pid}</strong>.
It reached your browser as FastCGI records over <code>${html(facts.socket)}</code>, read by the HTTP front
(<code>examples/server.ts</code>), a separate process.</p>
<table class="facts">
<tr><th>requests answered</th><td id="served">${facts.served} since ${html(facts.started)}</td></tr>
<tr><th>FastCGI requestId</th><td id="request-id">${facts.requestId}</td></tr>
<tr><th>role</th><td>${html(facts.role)}</td></tr>
<tr><th>FCGI_KEEP_CONN</th><td>${facts.keepConn ? "on: the connection is reused" : "off: one connection per request"}</td></tr>
<tr><th>request</th><td>${html(facts.method)} ${html(facts.url)}</td></tr>
</table>
<h2>Say something</h2>
<p>The form is POSTed to the app as FCGI_STDIN; it answers <code>303 See Other</code> back to this page.</p>
<form method="post" action="/">
<input name="message" maxlength="200" required placeholder="a message" autofocus>
<button>Send</button>
</form>
${said}
<h2>The params it got (${facts.params.length})</h2>
<table>
${rows}
</table>
<p>The same as JSON: <a href="/info.json">/info.json</a></p>
</body>
</html>
`;
}

async function post(request: Request, context: RequestContext): Promise<Response> {
  const length = Number(request.headers.get("content-length") ?? "NaN");
  if (!(length <= MAX_FORM_BYTES)) return new Response("the form is too large (or has no Content-Length)\n", { status: 413 });
  const text = new URLSearchParams(await request.text()).get("message")?.trim().slice(0, 200);
  if (!text) return new Response("the form needs a non-empty 'message'\n", { status: 400 });
  messages.unshift({ text, from: context.remoteAddress, at: new Date().toISOString() });
  messages.length = Math.min(messages.length, 5);
  // A 303 carries no body: what matters is that Status and Location make it back over STDOUT.
  return new Response(null, { status: 303, headers: { location: "/" } });
}

export default {
  async fetch(request: Request, context: RequestContext): Promise<Response> {
    served++;
    const path = new URL(request.url).pathname;
    if (path === "/" && request.method === "POST") return await post(request, context);
    if (path === "/" && (request.method === "GET" || request.method === "HEAD")) {
      return new Response(page(factsOf(request, context)), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (path === "/info.json" && request.method === "GET") {
      const facts = factsOf(request, context);
      return new Response(JSON.stringify({ ...facts, params: Object.fromEntries(facts.params) }, null, 2) + "\n", {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain" } });
  },
};
