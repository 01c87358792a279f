// The CGI params the client builds from a Request: what nginx sends with Debian's PHP site, in its
// order and with empty values (test/gateway_nginx_differential.test.ts checks them against nginx
// itself): URL parts, script location, headers as HTTP_*, the ones never copied (Proxy: httpoxy),
// and caller params overriding in place.
import { describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { requestParams } from "../src/client/params.ts";

/** The params as an object of strings (bytes decoded as UTF-8), plus the names in order. */
function build(request: Parameters<typeof requestParams>[0], options: Parameters<typeof requestParams>[1] = {}, length: number | null = null) {
  const pairs = requestParams(request, options, length);
  const names = pairs.map(([name]) => name);
  const values: Record<string, string> = {};
  for (const [name, value] of pairs) values[name] = typeof value === "string" ? value : new TextDecoder().decode(value);
  return { names, values, pairs };
}

describe("request params", () => {
  it("a GET with a query: method, URI, query, script, server name and port", () => {
    const { values } = build(new Request("http://example.com:8080/app/index.php?a=1&b=%20x"), { documentRoot: "/srv/www/" });
    assert.equal(values.REQUEST_METHOD, "GET");
    assert.equal(values.REQUEST_URI, "/app/index.php?a=1&b=%20x");
    assert.equal(values.QUERY_STRING, "a=1&b=%20x");
    assert.equal(values.SCRIPT_NAME, "/app/index.php");
    assert.equal(values.SCRIPT_FILENAME, "/srv/www/app/index.php");
    assert.equal(values.DOCUMENT_ROOT, "/srv/www/");
    assert.equal(values.SERVER_NAME, "example.com");
    assert.equal(values.SERVER_PORT, "8080");
    assert.equal(values.SERVER_PROTOCOL, "HTTP/1.1");
    assert.equal(values.GATEWAY_INTERFACE, "CGI/1.1");
    assert.equal(values.REQUEST_SCHEME, "http");
    assert.equal(values.REMOTE_ADDR, "127.0.0.1");
    assert.equal(values.HTTPS, undefined);
    assert.equal(values.CONTENT_LENGTH, "", "no body: empty, as nginx's $content_length");
    assert.equal(values.CONTENT_TYPE, "");
    assert.equal(values.PATH_INFO, "");
    assert.equal(values.DOCUMENT_URI, "/app/index.php");
    assert.equal(values.REDIRECT_STATUS, "200");
    assert.equal(values.REMOTE_USER, "");
    assert.equal(values.REMOTE_PORT, "");
    assert.equal(values.SERVER_ADDR, "127.0.0.1");
  });

  it("every param nginx's Debian PHP site sends, in its order, the headers last", () => {
    const { names } = build(new Request("http://h/index.php", { headers: { Accept: "*/*" } }), { documentRoot: "/srv" });
    assert.deepEqual(names, [
      "PATH_INFO", "SCRIPT_FILENAME", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH",
      "SCRIPT_NAME", "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
      "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "SERVER_ADDR",
      "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "HTTP_ACCEPT",
    ]);
    const https = build(new Request("https://h/index.php"), { documentRoot: "/srv" }).names;
    assert.equal(https[https.indexOf("REQUEST_SCHEME") + 1], "HTTPS", "HTTPS where fastcgi.conf has it");
  });

  it("CONTENT_LENGTH: the header's, or the length of a body sent without one, or empty", () => {
    const post = (headers: Record<string, string>, length: number) => build(new Request("http://h/", { method: "POST", body: "x".repeat(length), headers }), {}, length).values;
    assert.equal(post({ "Content-Length": "0" }, 0).CONTENT_LENGTH, "0");
    assert.equal(post({}, 0).CONTENT_LENGTH, "", "an empty body without the header, as nginx");
    assert.equal(post({}, 5).CONTENT_LENGTH, "5", "a body counted, as nginx counts a chunked one");
    assert.equal(post({ "Transfer-Encoding": "chunked" }, 0).CONTENT_LENGTH, "0", "an empty chunked body, counted");
  });

  it("REMOTE_USER is a Basic Authorization header's user, checked by no one, as nginx's $remote_user", () => {
    const user = (authorization: string) => build(new Request("http://h/", { headers: { Authorization: authorization } })).values.REMOTE_USER;
    assert.equal(user("Basic " + btoa("alice:s3cret")), "alice");
    assert.equal(user("basic   " + btoa("bob:")), "bob");
    assert.equal(user("Basic " + btoa(String.fromCharCode(...new TextEncoder().encode("ünï:x")))), "ünï", "the user's bytes as sent");
    assert.equal(user("Basic " + btoa(":nouser")), "");
    assert.equal(user("Basic " + btoa("nocolon")), "");
    assert.equal(user("Basic !!!"), "");
    assert.equal(user("Bearer " + btoa("alice:s3cret")), "");
  });

  it("REQUEST_URI and QUERY_STRING as the URL string has them, without a fragment", () => {
    const { values } = build({ method: "GET", url: "http://h/a.php?q='x'&h=<a>#frag", headers: null });
    assert.equal(values.REQUEST_URI, "/a.php?q='x'&h=<a>");
    assert.equal(values.QUERY_STRING, "q='x'&h=<a>");
    assert.equal(build({ method: "GET", url: "http://h/a.php?", headers: null }).values.REQUEST_URI, "/a.php?");
  });

  it("https: HTTPS=on, REQUEST_SCHEME, default port 443; IPv6 host without brackets", () => {
    const { values } = build(new Request("https://[::1]/"));
    assert.equal(values.HTTPS, "on");
    assert.equal(values.REQUEST_SCHEME, "https");
    assert.equal(values.SERVER_PORT, "443");
    assert.equal(values.SERVER_NAME, "::1");
    assert.equal(values.QUERY_STRING, "");
  });

  it("PATH_INFO is cut from SCRIPT_NAME; an explicit scriptFilename wins over documentRoot", () => {
    const { values } = build(new Request("http://h/index.php/users/7"), { pathInfo: "/users/7", documentRoot: "/srv", scriptFilename: "/opt/app/front.php" });
    assert.equal(values.SCRIPT_NAME, "/index.php");
    assert.equal(values.PATH_INFO, "/users/7");
    assert.equal(values.SCRIPT_FILENAME, "/opt/app/front.php");
  });

  it("SCRIPT_NAME is the decoded path, and non-ASCII paths are sent as UTF-8 bytes", () => {
    const { values, pairs } = build(new Request("http://h/caf%C3%A9.php"), { documentRoot: "/srv" });
    assert.equal(values.SCRIPT_NAME, "/café.php");
    assert.equal(values.SCRIPT_FILENAME, "/srv/café.php");
    const raw = pairs.find(([name]) => name === "SCRIPT_FILENAME")![1];
    assert.deepEqual(raw, new TextEncoder().encode("/srv/café.php"));
    assert.equal(values.REQUEST_URI, "/caf%C3%A9.php", "REQUEST_URI stays as sent");
  });

  it("headers become HTTP_*; Content-Type and Content-Length become CONTENT_* too", () => {
    const request = new Request("http://h/", {
      method: "POST",
      body: "abc",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "10.0.0.1", Cookie: "a=1; b=2", Accept: "*/*" },
    });
    const { values } = build(request, {}, 3);
    assert.equal(values.CONTENT_TYPE, "application/x-www-form-urlencoded");
    assert.equal(values.CONTENT_LENGTH, "3");
    assert.equal(values.HTTP_X_FORWARDED_FOR, "10.0.0.1");
    assert.equal(values.HTTP_COOKIE, "a=1; b=2");
    assert.equal(values.HTTP_ACCEPT, "*/*");
    // nginx passes every header on, these two included.
    assert.equal(values.HTTP_CONTENT_TYPE, "application/x-www-form-urlencoded");
    assert.equal(values.HTTP_CONTENT_LENGTH, undefined, "no Content-Length header in the Request");
  });

  it("httpoxy: a Proxy header never becomes the HTTP_PROXY param the backend might put in its environment, and names with _ are dropped", () => {
    const { values, names } = build(new Request("http://h/", { headers: { Proxy: "http://evil:8080", "X_Real_IP": "1.2.3.4", "X-Real-IP": "5.6.7.8" } }));
    assert.equal(values.HTTP_PROXY, undefined);
    assert.ok(!names.includes("HTTP_PROXY"));
    assert.equal(values.HTTP_X_REAL_IP, "5.6.7.8");
    assert.equal(names.filter((n) => n === "HTTP_X_REAL_IP").length, 1);
  });

  it("caller params override every built param, appear once, and may be bytes", () => {
    const bytes = new Uint8Array([0xff, 0x00, 0x41]);
    const { values, names, pairs } = build(new Request("http://h/x.php", { headers: { Host: "h" } }), {
      params: { REMOTE_ADDR: "203.0.113.9", REMOTE_PORT: "51234", SERVER_NAME: "front.example", HTTPS: "on", RAW: bytes, NOTE: "ünï" },
    });
    assert.equal(values.REMOTE_ADDR, "203.0.113.9");
    assert.equal(values.REMOTE_PORT, "51234");
    assert.equal(values.SERVER_NAME, "front.example");
    assert.equal(values.HTTPS, "on");
    assert.equal(names.filter((n) => n === "REMOTE_ADDR").length, 1);
    assert.equal(names.filter((n) => n === "SERVER_NAME").length, 1);
    assert.equal(pairs.find(([n]) => n === "RAW")![1], bytes);
    assert.deepEqual(pairs.find(([n]) => n === "NOTE")![1], new TextEncoder().encode("ünï"), "strings are sent as UTF-8");
  });

  it("a caller param replaces a built one where it stands; other names come last", () => {
    const { names } = build(new Request("http://h/x.php"), { params: { EXTRA: "1", SERVER_NAME: "front.example", REMOTE_PORT: "5" } });
    assert.equal(names.indexOf("SERVER_NAME"), names.indexOf("SERVER_PORT") + 1);
    assert.equal(names.indexOf("REMOTE_PORT"), names.indexOf("REMOTE_ADDR") + 1);
    assert.equal(names.at(-1), "EXTRA");
  });

  it("caller params may be given as pairs, the last of a name winning", () => {
    const { values } = build(new Request("http://h/"), { params: [["X", "1"], ["X", "2"]] });
    assert.equal(values.X, "2");
  });
});
