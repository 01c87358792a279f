// The CGI params the client builds from a Request: URL parts, script location, headers as
// HTTP_*, the ones never copied (Proxy: httpoxy), and caller params overriding all.
import { describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { requestParams } from "../src/client/params.ts";

/** The params as an object of strings (bytes decoded as UTF-8), plus the names in order. */
function build(request: Request, options: Parameters<typeof requestParams>[1] = {}, length: number | null = null) {
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
    assert.equal(values.CONTENT_LENGTH, undefined, "no body, no CONTENT_LENGTH");
    assert.equal(values.PATH_INFO, undefined);
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

  it("headers become HTTP_*; Content-Type and Content-Length become CONTENT_*", () => {
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
    assert.equal(values.HTTP_CONTENT_TYPE, undefined);
    assert.equal(values.HTTP_CONTENT_LENGTH, undefined);
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

  it("caller params may be given as pairs, the last of a name winning", () => {
    const { values } = build(new Request("http://h/"), { params: [["X", "1"], ["X", "2"]] });
    assert.equal(values.X, "2");
  });
});
