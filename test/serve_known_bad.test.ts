// Known-bad inputs from ../shared/fastcgi.md, sent to serve() over a real socket, where the lower
// layers' own tests (protocol_app_badinput, codec_known_bad) cannot show what the server does:
// a response body that fails midway, a handler that never settles, lengths near 2^31 under
// serve()'s own limits, a second BEGIN_REQUEST for a live id, and the 127/128/65535 boundaries.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import type { Handler } from "../src/app/types.ts";
import { encodeBeginRequest } from "../src/codec/encode.ts";
import { ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import { captureLogger, fcgiRequest, httpParams, parseCgi, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";
import { waitFor } from "./_support/poll.ts";

const encoder = new TextEncoder();

test("a response body that fails after the head went out: STDERR says so, appStatus 1, one log line, and the server goes on", async () => {
  const fetch: Handler = (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/ok") return new Response("fine");
    return new Response(new ReadableStream<unknown>({
      async start(controller) {
        controller.enqueue(encoder.encode("part;"));
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (path === "/error") controller.error(new Error("the database went away"));
        else controller.enqueue({ not: "bytes" }); // a chunk that is not a Uint8Array
      },
    }) as ReadableStream<Uint8Array>);
  };
  // A server per case: log lines are rate-limited per kind, and each case must log its own.
  for (const [path, message] of [["/error", /the database went away/], ["/object", /not a Uint8Array/]] as const) {
    const { lines, logger } = captureLogger();
    await withServer({ fetch, logger }, async (port) => {
      const result = await fcgiRequest(port, { params: httpParams(path) });
      const cgi = parseCgi(result.stdout);
      assert.equal(cgi.status, 200, "the head went out before the body failed");
      assert.equal(cgi.text, "part;");
      assert.match(result.stderr, /response body failed/);
      assert.match(result.stderr, message);
      assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      assert.equal(result.appStatus, 1, "a failed body must not look like a complete response");
      const logged = lines.filter((l) => l.includes("response body failed"));
      assert.equal(logged.length, 1, lines.join("\n"));
      assert.match(logged[0]!, message);
      assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ok") })).stdout).text, "fine");
    });
  }
});

test("a handler that never settles: ABORT_REQUEST or a lost connection ends it at once and frees its maxRequests slot", async () => {
  const signals: AbortSignal[] = [];
  const fetch: Handler = (request) => {
    if (new URL(request.url).pathname === "/ok") return new Response("fine");
    signals.push(request.signal);
    return new Promise<Response>(() => {}); // ignores its signal, never answers
  };
  await withServer({ fetch, maxRequests: 1 }, async (port, server) => {
    // ABORT_REQUEST: END_REQUEST follows at once though the handler is still pending.
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/hang"), keepConn: true });
      await waitFor(() => server.activeRequests === 1, 2000, "the hanging request to run");
      client.abort(1);
      const result = await client.response(1);
      assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      assert.equal(signals[0]!.aborted, true);
      assert.equal(server.activeRequests, 0);
      // The slot is free again: this is served, not OVERLOADED.
      const next = await fcgiRequest(port, { params: httpParams("/ok") });
      assert.equal(next.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
      assert.equal(parseCgi(next.stdout).text, "fine");
    } finally {
      client.destroy();
    }
    // A web server that goes away while the handler hangs frees the slot too.
    const gone = await RecordClient.connect(port);
    gone.send(1, { params: httpParams("/hang"), keepConn: true });
    await waitFor(() => server.activeRequests === 1, 2000, "the second hanging request to run");
    gone.destroy();
    await waitFor(() => server.activeRequests === 0, 2000, "the slot to be freed after the connection was lost");
    assert.equal(signals[1]!.aborted, true);
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/ok") })).stdout).text, "fine");
  });
});

/** A 4-byte FastCGI length (high bit set). */
const long = (n: number): Uint8Array => Uint8Array.of(0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);

test("a pair length near 2^31 under serve()'s limits: END_REQUEST at once, the kept connection still serves", async () => {
  const { lines, logger } = captureLogger();
  let calls = 0;
  const fetch: Handler = () => {
    calls++;
    return new Response("hello");
  };
  await withServer({ fetch, logger }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      let id = 1;
      for (const content of [
        Uint8Array.of(1, ...long(0x7fffffff), 0x41), // value length 2^31-1
        Uint8Array.of(...long(0x7fffffff), 1, 0x41), // name length 2^31-1
        Uint8Array.of(...long(0x7ffffff8), ...long(0x7ffffff8)), // both: the sum overflows 32 bits
      ]) {
        client.begin(id, Role.RESPONDER, true);
        client.record(RecordType.PARAMS, id, content);
        // Nothing more is sent for this request: the answer must not wait for 2 GiB that never come.
        const result = await client.response(id, 2000);
        assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
        assert.notEqual(result.appStatus, 0);
        id++;
      }
      assert.equal(calls, 0, "the handler never ran for them");
      client.send(id, { params: httpParams("/"), keepConn: true });
      assert.equal(parseCgi((await client.response(id)).stdout).text, "hello");
      assert.ok(lines.some((l) => /PARAMS|maxParamsBytes|too long|TOO_LONG|TOO_LARGE/i.test(l)), lines.join("\n"));
    } finally {
      client.destroy();
    }
  });
});

test("with maxParamsBytes: Infinity, a 2^31 length waits for bytes that never come, and paramsTimeout closes it", async () => {
  const paramsTimeout = 300;
  await withServer({ fetch: () => new Response("hello"), maxParamsBytes: Infinity, paramsTimeout }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      const sent = performance.now();
      client.begin(1);
      client.record(RecordType.PARAMS, 1, Uint8Array.of(1, ...long(0x7fffffff), 0x41, 0x42));
      await client.waitClosed(3000);
      const waited = performance.now() - sent;
      // No limit refused the pair: the server waited for the value, and only the timeout ended it.
      assert.deepEqual(client.pending.map((r) => r.type), [], "no record (no END_REQUEST) came before the close");
      // A few ms of slack for timer and clock granularity; a refusal would come within a few ms.
      assert.ok(waited >= paramsTimeout - 20, `closed after ${waited.toFixed(0)} ms, before the ${paramsTimeout} ms paramsTimeout`);
    } finally {
      client.destroy();
    }
    assert.equal(parseCgi((await fcgiRequest(port, { params: httpParams("/") })).stdout).text, "hello");
  });
});

test("a second BEGIN_REQUEST for a live id is ignored: the handler runs once, gets all of STDIN, one END_REQUEST", async () => {
  for (const multiplex of [true, false]) {
    const bodies: string[] = [];
    const fetch: Handler = async (request) => {
      const text = await request.text();
      bodies.push(text);
      return new Response(`got ${text}`);
    };
    await withServer({ fetch, multiplex }, async (port) => {
      const client = await RecordClient.connect(port);
      try {
        client.begin(1, Role.RESPONDER, true);
        client.params(1, httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4" }));
        client.stdin(1, "ab");
        client.write(encodeBeginRequest(1, Role.FILTER, 0)); // the duplicate, another role, no KEEP_CONN
        client.stdin(1, "cd");
        client.stdinEnd(1);
        const result = await client.response(1);
        assert.equal(result.protocolStatus, ProtocolStatus.REQUEST_COMPLETE, `multiplex ${multiplex}: never CANT_MPX_CONN`);
        assert.equal(parseCgi(result.stdout).text, "got abcd");
        assert.deepEqual(bodies, ["abcd"]);
        // No second END_REQUEST, and the duplicate's missing KEEP_CONN did not close the connection.
        client.send(2, { params: httpParams("/"), keepConn: true });
        const next = await client.response(2);
        assert.equal(parseCgi(next.stdout).text, "got ");
        assert.equal(client.pending.filter((r) => r.type === RecordType.END_REQUEST).length, 0);
      } finally {
        client.destroy();
      }
    });
  }
});

test("names and values of 127 and 128 bytes, and a 65536-byte value split over two PARAMS records, arrive exact", async () => {
  const name127 = "HTTP_" + "N".repeat(122);
  const name128 = "HTTP_" + "M".repeat(123);
  const sent: Record<string, string> = {
    [name127]: "v".repeat(128),
    [name128]: "w".repeat(127),
    HTTP_X_127: "a".repeat(127),
    HTTP_X_128: "b".repeat(128),
    HTTP_X_BIG: "c".repeat(65535) + "d",
  };
  let seen: Record<string, string | undefined> = {};
  let header: string | null = null;
  const fetch: Handler = (request, context) => {
    seen = Object.fromEntries(Object.keys(sent).map((name) => [name, context.params.get(name)]));
    header = request.headers.get("x-big");
    return new Response("ok");
  };
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/", sent) });
      const result = await client.response(1);
      assert.equal(parseCgi(result.stdout).text, "ok");
    } finally {
      client.destroy();
    }
  });
  for (const [name, value] of Object.entries(sent)) assert.equal(seen[name], value, `${name.length}-byte name`);
  assert.equal(header, sent.HTTP_X_BIG);
});
