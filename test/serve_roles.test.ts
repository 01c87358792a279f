// The Authorizer and Filter roles, GET_VALUES and multiplexing refusals, over loopback sockets.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import type { Handler, RequestContext } from "../src/app/types.ts";
import { ProtocolStatus, RecordType, Role } from "../src/protocol/constants.ts";
import { deferred, fcgiRequest, httpParams, parseCgi, parseValues, RecordClient } from "./_support/records.ts";
import { withServer } from "./_support/serve.ts";

const authorize: Handler = (request) => {
  if (request.headers.get("authorization") === "Bearer good") {
    return new Response(null, { status: 200, headers: { "Variable-User": "alice", "Variable-Role": "admin" } });
  }
  return new Response("go away", { status: 401, headers: { "www-authenticate": "Bearer" } });
};

test("an Authorizer allows with 200 and passes Variable-* headers on", async () => {
  await withServer({ authorize }, async (port) => {
    const result = await fcgiRequest(port, { role: Role.AUTHORIZER, params: httpParams("/private", { HTTP_AUTHORIZATION: "Bearer good" }) });
    assert.equal(result.protocolStatus, 0);
    const response = parseCgi(result.stdout);
    assert.equal(response.status, 200);
    assert.equal(response.header("Variable-User"), "alice");
    assert.equal(response.header("Variable-Role"), "admin");
  });
});

test("an Authorizer denies with any other status, which is the client's answer", async () => {
  await withServer({ authorize }, async (port) => {
    const result = await fcgiRequest(port, { role: Role.AUTHORIZER, params: httpParams("/private", { HTTP_AUTHORIZATION: "Bearer bad" }) });
    const response = parseCgi(result.stdout);
    assert.equal(response.status, 401);
    assert.equal(response.header("www-authenticate"), "Bearer");
    assert.equal(response.text, "go away");
  });
});

test("an Authorizer request has no body and needs no STDIN", async () => {
  let body: ReadableStream | null | undefined;
  await withServer({ authorize: (request) => ((body = request.body), new Response(null)) }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.begin(1, Role.AUTHORIZER);
      client.params(1, httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "10" }));
      const result = await client.response(1);
      assert.equal(parseCgi(result.stdout).status, 200);
      assert.equal(body, null);
    } finally {
      client.destroy();
    }
  });
});

test("a Filter reads STDIN and the DATA stream, with FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD", async () => {
  let seen: { stdin: string; data: string; length: number | undefined; modified: number | undefined; role: number } | undefined;
  const filter = async (request: Request, context: RequestContext) => {
    const stdin = await request.text();
    const data = await new Response(context.data).text();
    seen = { stdin, data, length: context.dataLength, modified: context.dataLastModified?.getTime(), role: context.role };
    return new Response(data.toUpperCase(), { headers: { "content-type": "text/html" } });
  };
  await withServer({ filter }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.begin(1, Role.FILTER);
      client.params(1, httpParams("/page.html", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4", FCGI_DATA_LENGTH: "11", FCGI_DATA_LAST_MOD: "1700000000" }));
      client.stdin(1, "form");
      client.stdinEnd(1);
      client.data(1, "<p>hi");
      client.data(1, "</p>\n");
      client.dataEnd(1);
      const result = await client.response(1);
      assert.equal(parseCgi(result.stdout).text, "<P>HI</P>\n");
      assert.deepEqual(seen, { stdin: "form", data: "<p>hi</p>\n", length: 11, modified: 1700000000_000, role: Role.FILTER });
    } finally {
      client.destroy();
    }
  });
});

test("a Filter that reads DATA without reading STDIN is not stalled by its unread STDIN", async () => {
  const filter = async (_request: Request, context: RequestContext) => new Response(await new Response(context.data).text());
  await withServer({ filter, maxBufferedBytes: 64 * 1024 }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.begin(1, Role.FILTER);
      client.params(1, httpParams("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(40_000) }));
      client.stdin(1, new Uint8Array(40_000));
      client.stdinEnd(1);
      client.data(1, "the file");
      client.dataEnd(1);
      const result = await client.response(1);
      assert.equal(parseCgi(result.stdout).text, "the file");
    } finally {
      client.destroy();
    }
  });
});

test("roles without a handler get UNKNOWN_ROLE, and so does an unknown role number", async () => {
  await withServer({ fetch: () => new Response("ok") }, async (port) => {
    for (const role of [Role.AUTHORIZER, Role.FILTER, 9]) {
      const result = await fcgiRequest(port, { role, params: httpParams("/") });
      assert.equal(result.protocolStatus, ProtocolStatus.UNKNOWN_ROLE, `role ${role}`);
    }
  });
});

test("GET_VALUES is answered with the configured limits and the multiplexing setting", async () => {
  for (const multiplex of [true, false]) {
    await withServer({ fetch: () => new Response("ok"), maxConnections: 7, maxRequests: 13, multiplex }, async (port) => {
      const client = await RecordClient.connect(port);
      try {
        client.getValues(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "UNKNOWN_NAME"]);
        const record = await client.next();
        assert.equal(record.type, RecordType.GET_VALUES_RESULT);
        assert.equal(record.requestId, 0);
        assert.deepEqual([...parseValues(record.content)], [["FCGI_MAX_CONNS", "7"], ["FCGI_MAX_REQS", "13"], ["FCGI_MPXS_CONNS", multiplex ? "1" : "0"]]);
      } finally {
        client.destroy();
      }
    });
  }
});

test("an unknown management record gets UNKNOWN_TYPE and the connection goes on", async () => {
  await withServer({ fetch: () => new Response("ok") }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.record(42, 0, new Uint8Array(3));
      const record = await client.next();
      assert.equal(record.type, RecordType.UNKNOWN_TYPE);
      assert.equal(record.content[0], 42);
      client.send(1, { params: httpParams("/") });
      assert.equal(parseCgi((await client.response(1)).stdout).text, "ok");
    } finally {
      client.destroy();
    }
  });
});

test("with multiplexing off, a second request on a busy connection gets CANT_MPX_CONN; the first completes", async () => {
  const release = deferred();
  const fetch: Handler = async () => {
    await release.promise;
    return new Response("first");
  };
  await withServer({ fetch, multiplex: false }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/"), keepConn: true });
      await new Promise((r) => setTimeout(r, 50));
      client.send(2, { params: httpParams("/"), keepConn: true });
      const refused = await client.response(2);
      assert.equal(refused.protocolStatus, ProtocolStatus.CANT_MPX_CONN);
      release.resolve();
      const first = await client.response(1);
      assert.equal(parseCgi(first.stdout).text, "first");
    } finally {
      client.destroy();
    }
  });
});

test("with multiplexing on, several requests run at once on one connection and finish in any order", async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>([["/a", deferred()], ["/b", deferred()]]);
  const fetch: Handler = async (request) => {
    const path = new URL(request.url).pathname;
    await gates.get(path)!.promise;
    return new Response(path);
  };
  await withServer({ fetch }, async (port) => {
    const client = await RecordClient.connect(port);
    try {
      client.send(1, { params: httpParams("/a"), keepConn: true });
      client.send(2, { params: httpParams("/b"), keepConn: true });
      gates.get("/b")!.resolve(undefined);
      assert.equal(parseCgi((await client.response(2)).stdout).text, "/b");
      gates.get("/a")!.resolve(undefined);
      assert.equal(parseCgi((await client.response(1)).stdout).text, "/a");
    } finally {
      client.destroy();
    }
  });
});
