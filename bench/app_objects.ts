// Question: what do the Request and Response objects handed to and taken from handlers cost,
// real ones versus the lightweight ones of src/app/, per request, from params to CGI bytes?
// Run: node scripts/run-ts.mjs bench/app_objects.ts | deno run -A bench/app_objects.ts | bun bench/app_objects.ts
import { InputBody } from "../src/app/body.ts";
import { cgiOutput } from "../src/app/cgi.ts";
import { headersFromParams, LightRequest, nativeRequest } from "../src/app/request.ts";
import { LightResponse, NativeResponse } from "../src/app/response.ts";
import { requestURL } from "../src/app/url.ts";

const map: Record<string, string> = {
  GATEWAY_INTERFACE: "CGI/1.1",
  REQUEST_METHOD: "GET",
  REQUEST_URI: "/hello?name=world",
  SCRIPT_NAME: "/hello",
  QUERY_STRING: "name=world",
  SERVER_PROTOCOL: "HTTP/1.1",
  SERVER_NAME: "localhost",
  SERVER_PORT: "80",
  REMOTE_ADDR: "127.0.0.1",
  REMOTE_PORT: "51234",
  HTTP_HOST: "example.test",
  HTTP_USER_AGENT: "wrk/4",
  HTTP_ACCEPT: "*/*",
  HTTP_ACCEPT_ENCODING: "gzip",
};
const params = {
  get: (name: string) => (Object.hasOwn(map, name) ? map[name] : undefined),
  entries: () => Object.entries(map)[Symbol.iterator]() as IterableIterator<[string, string]>,
};
const postBody = new TextEncoder().encode("x".repeat(100));

function input(post: boolean): InputBody | null {
  if (!post) return null;
  const body = new InputBody();
  body.push(postBody);
  body.end();
  return body;
}

// Drains a CGI body the way the server does: bytes as they are, or a stream read to its end.
async function drain(body: Uint8Array | ReadableStream<Uint8Array> | null): Promise<number> {
  if (body === null) return 0;
  if (body instanceof Uint8Array) return body.byteLength;
  const reader = body.getReader();
  let n = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.byteLength;
  return n;
}

type Handler = (request: Request) => Response | Promise<Response>;

const getHandler = (make: (body: string, init: ResponseInit) => Response): Handler => (request) => {
  const ua = request.headers.get("user-agent") ?? "";
  return make(`hello ${ua} at ${request.url}`, { headers: { "content-type": "text/plain" } });
};
const postHandler = (make: (body: string, init: ResponseInit) => Response): Handler => async (request) => {
  const text = await request.text();
  return make(text, { status: 201, headers: { "content-type": "text/plain" } });
};

const makeNative = (body: string, init: ResponseInit) => new NativeResponse(body, init);
const makeLight = (body: string, init: ResponseInit) => new LightResponse(body, init) as unknown as Response;

async function oneNative(handler: Handler, post: boolean): Promise<number> {
  const controller = new AbortController();
  const body = input(post);
  const request = nativeRequest(post ? "POST" : "GET", requestURL(params), headersFromParams(params), body?.stream() ?? null, controller.signal);
  const response = await handler(request);
  const out = cgiOutput(response, false);
  return out.head.byteLength + (await drain(out.body));
}

async function oneLight(handler: Handler, post: boolean): Promise<number> {
  const request = new LightRequest({ method: post ? "POST" : "GET", url: requestURL(params), params, body: input(post) }) as unknown as Request;
  const response = await handler(request);
  const out = cgiOutput(response, false);
  return out.head.byteLength + (await drain(out.body));
}

async function measure(name: string, one: () => Promise<number>, ms = 1500): Promise<number> {
  for (let i = 0; i < 2000; i++) await one();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 500; i++) await one();
    n += 500;
    now = performance.now();
  }
  const rate = (n / (now - start)) * 1000;
  console.log(`${name.padEnd(44)} ${Math.round(rate).toLocaleString("en-US").padStart(10)} req/s`);
  return rate;
}

const runtime = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : `node ${process.version}`;
console.log(`app_objects on ${runtime}: params -> Request -> handler -> Response -> CGI bytes`);
const results: Record<string, number> = {};
results.getNative = await measure("GET, real Request + real Response", () => oneNative(getHandler(makeNative), false));
results.getLight = await measure("GET, lightweight Request + Response", () => oneLight(getHandler(makeLight), false));
results.postNative = await measure("POST 100 B text(), real objects", () => oneNative(postHandler(makeNative), true));
results.postLight = await measure("POST 100 B text(), lightweight objects", () => oneLight(postHandler(makeLight), true));
results.mixed = await measure("GET, lightweight Request + real Response", () => oneLight(getHandler(makeNative), false));
console.log(`speed-up: GET x${(results.getLight / results.getNative).toFixed(1)}, POST x${(results.postLight / results.postNative).toFixed(1)}`);
