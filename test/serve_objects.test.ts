// The lightweight Request and Response behave like the standard ones where handlers can tell.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { InputBody } from "../src/app/body.ts";
import { cgiOutput } from "../src/app/cgi.ts";
import { FastCGIGlobalRequest, headersFromParams, LightRequest } from "../src/app/request.ts";
// Another test file in the same process (bun runs them all in one) may have installed the
// lightweight globals, so "the real one" is always the Response captured before that.
import { LightResponse, NativeResponse } from "../src/app/response.ts";
import { requestURL } from "../src/app/url.ts";

function params(map: Record<string, string>) {
  return {
    get: (name: string) => (Object.hasOwn(map, name) ? map[name] : undefined),
    entries: () => Object.entries(map)[Symbol.iterator]() as IterableIterator<[string, string]>,
  };
}

function light(init: { method?: string; url?: string; params?: Record<string, string>; body?: InputBody | null }): Request {
  return new LightRequest({
    method: init.method ?? "GET",
    url: init.url ?? "http://example.test/",
    params: params(init.params ?? {}),
    body: init.body ?? null,
  }) as unknown as Request;
}

function bodyOf(...chunks: string[]): InputBody {
  const body = new InputBody();
  for (const c of chunks) body.push(new TextEncoder().encode(c));
  body.end();
  return body;
}

const decoder = new TextDecoder();

test("a lightweight request passes instanceof Request and answers method, url and headers", () => {
  const request = light({ method: "PUT", url: "http://example.test/a?b=1", params: { HTTP_ACCEPT_LANGUAGE: "en", CONTENT_TYPE: "text/plain" } });
  assert.ok(request instanceof Request);
  assert.equal(request.method, "PUT");
  assert.equal(request.url, "http://example.test/a?b=1");
  assert.equal(request.headers.get("accept-language"), "en");
  assert.equal(request.headers.get("content-type"), "text/plain");
  assert.equal(request.body, null);
  assert.equal(request.bodyUsed, false);
});

test("members only a real Request knows are answered by one built on demand", () => {
  const request = light({});
  assert.equal(request.cache, "default");
  assert.equal(request.redirect, "follow");
  assert.equal(typeof request.mode, "string");
});

test("the body reads as text, json, bytes, arrayBuffer and stream, once", async () => {
  assert.equal(await light({ method: "POST", body: bodyOf("hel", "lo") }).text(), "hello");
  assert.deepEqual(await light({ method: "POST", body: bodyOf('{"a":', "1}") }).json(), { a: 1 });
  assert.deepEqual([...await light({ method: "POST", body: bodyOf("ab") }).bytes()], [97, 98]);
  assert.equal((await light({ method: "POST", body: bodyOf("abc") }).arrayBuffer()).byteLength, 3);
  const request = light({ method: "POST", body: bodyOf("x", "y") });
  const reader = request.body!.getReader();
  const parts: string[] = [];
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(decoder.decode(r.value));
  assert.deepEqual(parts, ["x", "y"]);
  assert.equal(request.bodyUsed, true);
  await assert.rejects(request.text(), TypeError);
  const twice = light({ method: "POST", body: bodyOf("z") });
  await twice.text();
  await assert.rejects(twice.text(), TypeError);
});

test("bytes() never exposes the rest of the socket chunk a body is a view of", async () => {
  const chunk = new TextEncoder().encode("SECRET-body-SECRET");
  const body = new InputBody();
  body.push(chunk.subarray(7, 11));
  body.end();
  const bytes = await light({ method: "POST", body }).bytes();
  assert.equal(decoder.decode(bytes), "body");
  assert.equal(bytes.buffer.byteLength, 4);
});

test("formData() parses a urlencoded body", async () => {
  const form = await light({ method: "POST", params: { CONTENT_TYPE: "application/x-www-form-urlencoded" }, body: bodyOf("a=1&b=two") }).formData();
  assert.equal(form.get("b"), "two");
});

test("clone() gives a real Request with a copy of the body, and both can be read", async () => {
  const request = light({ method: "POST", params: { HTTP_X_A: "1" }, body: bodyOf("data") });
  const copy = request.clone();
  assert.equal(copy.headers.get("x-a"), "1");
  assert.equal(await copy.text(), "data");
  assert.equal(await request.text(), "data");
});

test("the signal fires on abort, whether it was taken before or after", () => {
  const early = light({});
  const signal = early.signal;
  assert.equal(signal.aborted, false);
  LightRequest.abort(early as unknown as LightRequest, new Error("gone"));
  assert.equal(signal.aborted, true);
  const late = light({});
  LightRequest.abort(late as unknown as LightRequest, new Error("gone"));
  assert.equal(late.signal.aborted, true);
  assert.equal((late.signal.reason as Error).message, "gone");
});

test("new Request(lightweight request) works through the installed global Request", async () => {
  const request = light({ method: "POST", url: "http://example.test/x", params: { HTTP_X_B: "2" }, body: bodyOf("moved") });
  const copy = new FastCGIGlobalRequest(request as unknown as Request);
  assert.equal(copy.method, "POST");
  assert.equal(copy.url, "http://example.test/x");
  assert.equal(copy.headers.get("x-b"), "2");
  assert.equal(await copy.text(), "moved");
  assert.equal(request.bodyUsed, true);
  assert.ok(copy instanceof FastCGIGlobalRequest);
  assert.ok(new Request("http://a.test/") instanceof FastCGIGlobalRequest);
});

test("headers come from HTTP_* params, with CONTENT_TYPE and CONTENT_LENGTH, and odd names are skipped", () => {
  const headers = headersFromParams(params({
    HTTP_USER_AGENT: "curl",
    HTTP_X_FORWARDED_FOR: "10.0.0.1",
    HTTP_CONTENT_TYPE: "duplicate/ignored",
    CONTENT_TYPE: "application/json",
    CONTENT_LENGTH: "12",
    "HTTP_BAD NAME": "x",
    HTTP_BAD_VALUE: "a\nb",
    REMOTE_ADDR: "1.2.3.4",
  }));
  assert.deepEqual([...headers], [
    ["content-length", "12"],
    ["content-type", "application/json"],
    ["user-agent", "curl"],
    ["x-forwarded-for", "10.0.0.1"],
  ]);
});

test("the URL comes from HTTPS, HTTP_HOST and the raw REQUEST_URI, bytes >= 0x80 percent-encoded as they were", () => {
  assert.equal(requestURL(params({ HTTP_HOST: "example.test", REQUEST_URI: "/caf\xe9/x?q=\xe9" })), "http://example.test/caf%E9/x?q=%E9");
  assert.equal(requestURL(params({ HTTP_HOST: "example.test", REQUEST_URI: "/a%20b?c=%2F" })), "http://example.test/a%20b?c=%2F");
  assert.equal(requestURL(params({ HTTPS: "on", HTTP_HOST: "example.test:8443", REQUEST_URI: "/" })), "https://example.test:8443/");
  assert.equal(requestURL(params({ REQUEST_SCHEME: "https", SERVER_NAME: "srv.test", SERVER_PORT: "443", REQUEST_URI: "/" })), "https://srv.test/");
  assert.equal(requestURL(params({ SERVER_NAME: "srv.test", SERVER_PORT: "8080", REQUEST_URI: "/p" })), "http://srv.test:8080/p");
  assert.equal(requestURL(params({ HTTP_HOST: "[::1]:9", REQUEST_URI: "/" })), "http://[::1]:9/");
});

test("without REQUEST_URI the URL is SCRIPT_NAME + PATH_INFO + ? + QUERY_STRING, with ? and % in the path kept", () => {
  assert.equal(requestURL(params({ HTTP_HOST: "h.test", SCRIPT_NAME: "/app", PATH_INFO: "/a?b%c", QUERY_STRING: "x=1" })), "http://h.test/app/a%3Fb%25c?x=1");
  assert.equal(requestURL(params({ HTTP_HOST: "h.test" })), "http://h.test/");
});

test("a Host that would change what the URL means is not used", () => {
  assert.equal(requestURL(params({ HTTP_HOST: "evil.test/x", SERVER_NAME: "good.test", REQUEST_URI: "/" })), "http://good.test/");
  assert.equal(requestURL(params({ HTTP_HOST: "a@evil.test", SERVER_NAME: "good.test", REQUEST_URI: "/" })), "http://good.test/");
  assert.equal(requestURL(params({ REQUEST_URI: "/" })), "http://localhost/");
});

test("a request target with a fragment sign, a backslash or an absolute form keeps its path", () => {
  assert.equal(requestURL(params({ HTTP_HOST: "h.test", REQUEST_URI: "/a#b" })), "http://h.test/a%23b");
  assert.equal(requestURL(params({ HTTP_HOST: "h.test", REQUEST_URI: "/a\\b" })), "http://h.test/a%5Cb");
  assert.equal(requestURL(params({ HTTP_HOST: "h.test", REQUEST_URI: "http://other.test/p?q" })), "http://h.test/p?q");
  assert.equal(requestURL(params({ HTTP_HOST: "h.test", REQUEST_URI: "//x/y" })), "http://h.test//x/y");
});

test("a lightweight response passes instanceof Response and reads like a real one", async () => {
  const response = new LightResponse("hi", { status: 201, headers: { "x-a": "1" } }) as unknown as Response;
  assert.ok(response instanceof Response);
  assert.equal(response.status, 201);
  assert.equal(response.ok, true);
  assert.equal(response.statusText, "");
  assert.equal(response.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(await response.text(), "hi");
  assert.equal(response.bodyUsed, true);
  const streamed = new LightResponse("stream me") as unknown as Response;
  assert.equal(await new NativeResponse(streamed.body).text(), "stream me");
  const json = await (new LightResponse(new TextEncoder().encode('{"a":2}')) as unknown as Response).json();
  assert.deepEqual(json, { a: 2 });
  assert.ok(LightResponse.is(new LightResponse(null)));
  assert.ok(!LightResponse.is(new NativeResponse(null)));
});

test("a lightweight response refuses what Response refuses", () => {
  assert.throws(() => new LightResponse("x", { status: 99 }), RangeError);
  assert.throws(() => new LightResponse("x", { status: 600 }), RangeError);
  assert.throws(() => new LightResponse("x", { status: 204 }), TypeError);
  assert.throws(() => new LightResponse("x", { statusText: "a\nb" }), TypeError);
});

test("the CGI output of a response: Status line, headers, several Set-Cookie, Content-Length, body", () => {
  const headers = new Headers({ "x-a": "1" });
  headers.append("set-cookie", "a=1");
  headers.append("set-cookie", "b=2");
  const out = cgiOutput(new LightResponse("body", { status: 404, headers }) as unknown as Response, false);
  const head = decoder.decode(out.head);
  assert.match(head, /^Status: 404 Not Found\r\n/);
  assert.match(head, /\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n/);
  assert.match(head, /\r\ncontent-length: 4\r\n\r\n$/);
  assert.equal(decoder.decode(out.body as Uint8Array), "body");
  const native = cgiOutput(new NativeResponse("x", { status: 302, statusText: "Moved", headers: { location: "/there" } }), false);
  assert.match(decoder.decode(native.head), /^Status: 302 Moved\r\n(.*\r\n)*location: \/there\r\n/);
  assert.ok(native.body instanceof ReadableStream);
});

test("a header with CR, LF or NUL, or a bad name, is refused before anything is written", () => {
  for (const headers of [{ "x-a": "a\r\nInjected: 1" }, { "x-a": "a\0" }, { "bad name": "x" }, { "x-a": "\u0100" }] as Record<string, string>[]) {
    assert.throws(() => cgiOutput(new LightResponse("x", { headers }) as unknown as Response, false), /header/);
  }
  assert.throws(() => cgiOutput(new LightResponse("x", { headers: [["x-a", "1\n2"]] }) as unknown as Response, false), /header/);
  // Edge whitespace is trimmed, as Headers does.
  const ok = cgiOutput(new LightResponse("x", { headers: { "x-a": " v \r\n" } }) as unknown as Response, false);
  assert.match(decoder.decode(ok.head), /\r\nx-a: v\r\n/);
});

test("HEAD gets the headers and the length, not the body", () => {
  const out = cgiOutput(new LightResponse("12345") as unknown as Response, true);
  assert.match(decoder.decode(out.head), /content-length: 5/);
  assert.equal(out.body, null);
});
