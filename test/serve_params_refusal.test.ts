// Params over a limit (#13): the web server gets an HTTP answer on STDOUT before END_REQUEST
// (appStatus 1), so that its client sees 431, 414 or 400 and why, not a 502 after "upstream
// prematurely closed". The handler never runs; the log line names the limit, the param and the
// answer; the connection goes on serving. A large value within the limits is served.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { refusalStatus } from "../src/app/refusal.ts";
import { ProtocolStatus } from "../src/protocol/constants.ts";
import { captureLogger, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** One request's answer from a server with the default limits, and what the handler and the log saw. */
async function refused(params: Record<string, string | Uint8Array>): Promise<{ status: number; text: string; appStatus: number; calls: number; log: string }> {
  const { lines, logger } = captureLogger();
  let calls = 0;
  let answer: { status: number; text: string; appStatus: number } | undefined;
  await withServer({ logger, fetch: () => (calls++, new Response("app")) }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params, keepConn: true });
      const result = await client.response(1, 10_000);
      assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      const cgi = parseCgi(result.stdout);
      answer = { status: cgi.status, text: cgi.text, appStatus: result.appStatus };
      assert.equal(cgi.header("content-type"), "text/plain;charset=UTF-8");
      // The same connection serves the next request.
      client.send(2, { params: httpParams("/next"), keepConn: true });
      assert.equal(parseCgi((await client.response(2)).stdout).text, "app");
    } finally {
      client.destroy();
    }
  });
  return { ...answer!, calls: calls - 1, log: lines.join("\n") };
}

test("an 8 KiB header name (over maxNameLength) is a 431", async () => {
  const name = "HTTP_X_" + "A".repeat(8 * KiB);
  const answer = await refused(httpParams("/", { [name]: "1" }));
  assert.deepEqual([answer.status, answer.text, answer.appStatus, answer.calls], [431, "431 Request Header Fields Too Large\n", 1, 0]);
  assert.match(answer.log, /refused: PARAMS refused \(NAME_TOO_LONG\).* \(at param "HTTP_X_A{57}"\): answered 431/);
});

test("a 60 KiB CGI variable name (a web server's fastcgi_param) is a 400", async () => {
  const answer = await refused(httpParams("/", { ["V".repeat(60 * KiB)]: "1" }));
  assert.deepEqual([answer.status, answer.appStatus, answer.calls], [400, 1, 0]);
  assert.match(answer.log, /NAME_TOO_LONG.*: answered 400/);
});

test("2 MiB of headers (over maxParamsBytes) is a 431, naming the header at the limit", async () => {
  const headers: Record<string, string> = {};
  for (let i = 0; i < 32; i++) headers[`HTTP_X_FILL_${i}`] = "f".repeat(64 * KiB);
  const answer = await refused(httpParams("/", headers));
  assert.deepEqual([answer.status, answer.appStatus, answer.calls], [431, 1, 0]);
  assert.match(answer.log, /PARAMS_TOO_LARGE.* \(at param "HTTP_X_FILL_\d+"\): answered 431/);
});

test("a 2 MiB request target (a value over maxValueLength) is a 414", async () => {
  const answer = await refused(httpParams("/x?" + "q".repeat(2 * MiB)));
  assert.deepEqual([answer.status, answer.text, answer.appStatus, answer.calls], [414, "414 URI Too Long\n", 1, 0]);
  assert.match(answer.log, /refused: PARAMS refused \(VALUE_TOO_LONG\).* \(at param "REQUEST_URI"\): answered 414/);
});

test("a 512 KiB header value, within the limits, is served", async () => {
  let seen = 0;
  await withServer({ fetch: (request) => (seen = request.headers.get("x-big")?.length ?? 0, new Response("ok")) }, async (port) => {
    const result = await fcgiRequest(port, { params: httpParams("/", { HTTP_X_BIG: "b".repeat(512 * KiB) }) }, 10_000);
    assert.equal(result.appStatus, 0);
    assert.equal(parseCgi(result.stdout).status, 200);
  });
  assert.equal(seen, 512 * KiB);
});

test("the status for each limit and param: headers 431, the request target 414, other CGI variables 400", () => {
  assert.equal(refusalStatus("maxTotalBytes", "HTTP_COOKIE"), 431);
  assert.equal(refusalStatus("maxValueLength", "HTTP_X"), 431);
  assert.equal(refusalStatus("maxNameLength", undefined), 431);
  for (const name of ["REQUEST_URI", "QUERY_STRING", "DOCUMENT_URI", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "SCRIPT_FILENAME"]) {
    assert.equal(refusalStatus("maxTotalBytes", name), 414, name);
  }
  assert.equal(refusalStatus("maxTotalBytes", "REQUEST_URI_X"), 400);
  assert.equal(refusalStatus("maxTotalBytes", "SERVER_NAME"), 400);
  assert.equal(refusalStatus("maxTotalBytes", undefined), 400);
  assert.equal(refusalStatus("maxValueLength", undefined), 400);
});
