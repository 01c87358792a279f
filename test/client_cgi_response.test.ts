// The CGI response parser: header blocks cut anywhere by STDOUT records, the status rules
// (Status, Location → 302), repeated headers, the size limit and every kind of bad header line.
import { describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { CgiResponseParser, type CgiHead } from "../src/client/cgi_response.ts";
import { FastCGIError } from "../src/errors.ts";

const enc = new TextEncoder();

/** Parses `output` cut into pieces at `cuts`; returns the head and the body bytes that came with it and after. */
function parse(output: Uint8Array | string, cuts: number[] = [], max?: number): { head: CgiHead; body: Uint8Array } {
  const bytes = typeof output === "string" ? enc.encode(output) : output;
  const parser = new CgiResponseParser(max);
  const bounds = [0, ...cuts, bytes.length];
  const body: number[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const piece = bytes.slice(bounds[i], bounds[i + 1]);
    if (parser.done) {
      body.push(...piece);
      continue;
    }
    const rest = parser.push(piece);
    if (rest !== null) body.push(...rest);
  }
  parser.end();
  return { head: parser.head!, body: new Uint8Array(body) };
}

function fails(output: string, code: string, message: RegExp, max?: number): void {
  assert.throws(() => parse(output, [], max), (e: unknown) => e instanceof FastCGIError && e.code === code && message.test(e.message));
}

describe("CGI response parser", () => {
  it("reads status, reason, headers and the body after the blank line", () => {
    const { head, body } = parse("Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A:  spaced value \t\r\n\r\nbody\r\n\r\nmore");
    assert.equal(head.status, 404);
    assert.equal(head.statusText, "Not Found");
    assert.equal(head.headers.get("content-type"), "text/plain");
    assert.equal(head.headers.get("x-a"), "spaced value");
    assert.equal(head.headers.has("status"), false, "Status is not passed on as a header");
    assert.equal(new TextDecoder().decode(body), "body\r\n\r\nmore");
  });

  it("a status without a reason phrase; 200 when there is no Status", () => {
    assert.equal(parse("Status: 201\r\n\r\n").head.status, 201);
    assert.equal(parse("Status: 201\r\n\r\n").head.statusText, "");
    assert.equal(parse("Content-Type: text/html\r\n\r\n").head.status, 200);
  });

  it("Location without Status is a 302; with Status the Status wins", () => {
    const redirect = parse("Location: /elsewhere\r\n\r\n").head;
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get("location"), "/elsewhere");
    assert.equal(parse("Status: 301 Moved Permanently\r\nLocation: /x\r\n\r\n").head.status, 301);
  });

  it("several Set-Cookie lines stay separate", () => {
    const { head } = parse("Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2, c=3\r\nSet-Cookie: d=4\r\n\r\n");
    assert.deepEqual(head.headers.getSetCookie(), ["a=1; Path=/", "b=2, c=3", "d=4"]);
  });

  it("LF-only line ends, and a mix of CRLF and LF, are accepted", () => {
    assert.equal(parse("Status: 418 Teapot\nX: y\n\nbody").head.status, 418);
    const mixed = parse("Status: 418\r\nX: y\n\r\nbody");
    assert.equal(mixed.head.headers.get("x"), "y");
    assert.equal(new TextDecoder().decode(mixed.body), "body");
  });

  it("an empty header block (output starting with the blank line) is a 200 with no headers", () => {
    for (const output of ["\r\nbody", "\nbody"]) {
      const { head, body } = parse(output);
      assert.equal(head.status, 200);
      assert.equal([...head.headers].length, 0);
      assert.equal(new TextDecoder().decode(body), "body");
    }
  });

  it("the header block may be cut anywhere by STDOUT records, with the same result", () => {
    const output = "Status: 503 Busy\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nthe body";
    const whole = parse(output);
    for (let a = 1; a < output.length; a++) {
      for (const b of [a + 1, a + 3, output.length - 1]) {
        if (b <= a || b >= output.length) continue;
        const cut = parse(output, [a, b]);
        assert.equal(cut.head.status, 503);
        assert.equal(cut.head.statusText, "Busy");
        assert.deepEqual([...cut.head.headers], [...whole.head.headers]);
        assert.equal(new TextDecoder().decode(cut.body), "the body", `cuts at ${a}, ${b}`);
      }
    }
  });

  it("every cut of a blank line made of LF CR LF is found", () => {
    const output = "A: b\n\r\nrest";
    for (let a = 1; a < output.length; a++) {
      const { head, body } = parse(output, [a]);
      assert.equal(head.headers.get("a"), "b");
      assert.equal(new TextDecoder().decode(body), "rest");
    }
  });

  it("header bytes are kept as latin1 (a UTF-8 value straddling records survives byte for byte)", () => {
    const value = enc.encode("X-Name: Zoë ☃\r\n\r\n");
    for (let cut = 1; cut < value.length; cut++) {
      const { head } = parse(value, [cut]);
      const got = head.headers.get("x-name")!;
      assert.deepEqual(Uint8Array.from(got, (c) => c.charCodeAt(0)), enc.encode("Zoë ☃"));
    }
  });

  it("every byte from 0x80 to 0xFF in a header value comes back as the character of that code", () => {
    const high = Uint8Array.from({ length: 128 }, (_, i) => 0x80 + i);
    const { head } = parse(new Uint8Array([...enc.encode("X-High: a"), ...high, ...enc.encode("z\r\n\r\n")]));
    assert.deepEqual(Uint8Array.from(head.headers.get("x-high")!, (c) => c.charCodeAt(0)), new Uint8Array([0x61, ...high, 0x7a]));
  });

  it("the body is handed out as a view of the piece in the common case (no copy)", () => {
    const piece = enc.encode("Status: 200\r\n\r\nbody");
    const parser = new CgiResponseParser();
    const body = parser.push(piece)!;
    assert.equal(body.buffer, piece.buffer);
    assert.equal(body.length, 4);
  });

  it("a header block over the limit is refused, whole or cut into many pieces", () => {
    const big = "X-Big: " + "a".repeat(70 * 1024) + "\r\n\r\n";
    fails(big, "LIMIT_EXCEEDED", /larger than 65536 bytes/);
    const parser = new CgiResponseParser(1024);
    const line = enc.encode("X-Line: " + "b".repeat(90) + "\r\n");
    assert.throws(() => {
      for (let i = 0; i < 100; i++) parser.push(line);
    }, (e: unknown) => e instanceof FastCGIError && e.limit === "maxHeaderBytes");
    // Exactly at the limit is fine.
    const exact = "X: " + "c".repeat(1024 - 3 - 4) + "\r\n\r\n";
    assert.equal(enc.encode(exact).length, 1024);
    assert.equal(parse(exact, [], 1024).head.headers.get("x")!.length, 1024 - 7);
  });

  it("output that ends before the blank line is an error, never a silent empty response", () => {
    fails("Content-Type: text/plain\r\n", "BAD_RESPONSE", /ended before its CGI header block did: 26 bytes/);
    fails("", "BAD_RESPONSE", /no output at all/);
    fails("Content-Type: text/plain\r\n\r", "BAD_RESPONSE", /without the blank line/);
  });

  it("bad header lines are refused", () => {
    fails("X-A: a\0b\r\n\r\n", "BAD_RESPONSE", /contains NUL/);
    fails("X-A: a\rb\r\n\r\n", "BAD_RESPONSE", /bare CR/);
    fails("no colon here\r\n\r\n", "BAD_RESPONSE", /has no colon/);
    fails("HTTP/1.1 200 OK\r\n\r\n", "BAD_RESPONSE", /has no colon|not a valid token/);
    fails("Bad Name: x\r\n\r\n", "BAD_RESPONSE", /not a valid token/);
    fails(": empty name\r\n\r\n", "BAD_RESPONSE", /not a valid token/);
    fails("X-A: a\r\n  folded\r\n\r\n", "BAD_RESPONSE", /continuation line/);
  });

  it("a Status that is not a 3-digit code in 200..599 is refused", () => {
    for (const status of ["abc", "99", "1000", "100 Continue", "600 Nope", "20x", ""]) {
      fails(`Status: ${status}\r\n\r\n`, "BAD_RESPONSE", /Status header is not a status code/);
    }
  });

  it("push after the header block is a programming error", () => {
    const parser = new CgiResponseParser();
    parser.push(enc.encode("\r\n"));
    assert.throws(() => parser.push(enc.encode("x")), /after the header block ended/);
  });
});
