// node:http apps behind a real nginx (examples/nginx.conf) through fcgi/node, on the runtime
// running the tests: Express 5, Express 4, Koa and Fastify, each started as its users start it
// (createServer(app).listen(), Fastify's serverFactory), plus `fcgi serve` with a module whose
// default export is a node:http server, alone and with --workers. Bodies (JSON, urlencoded,
// multipart), static files with ETag/304 and Range, redirects, cookies, a streamed response, an
// error handler's 500, and a request the client gives up: the app's request must end with
// `close`, which the app notes in a file (the side channel) for the test to read.
import { after, describe, it, setup } from "../_support/test.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, runtimeCommand, sourcePath } from "../_support/env.ts";
import {
  type Service,
  canConnect,
  fetchWithin,
  freePort,
  logsOf,
  makeTempDir,
  mustHave,
  renderExample,
  startNginx,
  startProcess,
  stopAll,
  waitFor,
  webServerBinary,
} from "./_servers.ts";

const nginxBinary = webServerBinary("nginx");
const FRAMEWORKS = ["express5", "express4", "koa", "fastify"] as const;
type Framework = (typeof FRAMEWORKS)[number];
/** The streamed response of node_apps.ts (STREAM_PIECES), kept apart so Deno need not type-check the frameworks here. */
const STREAMED = "one\ntwo\nthree\nfour\nfive\n";
const STATIC_TEXT = "0123456789abcdefghijklmnopqrstuvwxyz\n";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A file whose byte i is i % 251, as an upload. */
function uploadBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  return bytes;
}

/** An nginx site (the README snippet) in front of `upstream`. */
function site(name: string, upstream: string, port: number): string {
  return renderExample("nginx.conf", [
    ["fcgi_app", name],
    ["server 127.0.0.1:9000;", `server ${upstream};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
  ]);
}

/** One app under test: nginx's URL in front of it and the file its `close` notes go to. */
interface Target {
  base: string;
  events: string;
}

/** The notes the app wrote about request `id`. */
function notes(target: Target, id: string): Record<string, unknown>[] {
  if (!existsSync(target.events)) return [];
  return readFileSync(target.events, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>).filter((note) => note.id === id);
}

describe("Express, Koa and Fastify behind nginx through fcgi/node", { skip: nginxBinary.skip }, () => {
  let dir = "";
  const services: Service[] = [];
  const targets = new Map<string, Target>();

  const ready = setup(async () => {
    const binary = mustHave(nginxBinary.path, "nginx");
    dir = makeTempDir();
    const staticDir = join(dir, "public");
    mkdirSync(staticDir);
    writeFileSync(join(staticDir, "file.txt"), STATIC_TEXT);
    const sites: string[] = [];
    const ports: number[] = [];
    const add = async (name: string, start: (address: string, events: string) => Promise<Service>): Promise<void> => {
      const address = `127.0.0.1:${await freePort()}`;
      const events = join(dir, `${name}.events`);
      services.push(await start(address, events));
      const port = await freePort();
      sites.push(site(`fcgi_${name.replace(/\W/g, "_")}`, address, port));
      ports.push(port);
      targets.set(name, { base: `http://127.0.0.1:${port}`, events });
    };
    for (const framework of FRAMEWORKS) {
      await add(framework, (address, events) => {
        const [command, args] = runtimeCommand("test/interop/node_app_main.ts", [framework, "fcgi", address, staticDir]);
        return startProcess(`${framework} on fcgi/node`, command, args, () => canConnect(address), { env: { NODE_APP_EVENTS: events } });
      });
    }
    // `fcgi serve` with a module: Fastify's app.server alone, Express 4's http.createServer(app) in a pool.
    const serveModule = (framework: Framework, extra: string[]) => (address: string, events: string) => {
      const [command, args] = cliCommand(["serve", sourcePath("test/interop/node_app_module.ts"), "--listen", address, ...extra]);
      return startProcess(`fcgi serve ${framework} ${extra.join(" ")}`, command, args, () => canConnect(address), {
        env: { NODE_APP: framework, NODE_APP_STATIC: staticDir, NODE_APP_EVENTS: events },
      });
    };
    await add("fastify module", serveModule("fastify", []));
    await add("express4 workers", serveModule("express4", ["--workers", "2"]));
    services.push(await startNginx(binary, dir, sites.join("\n"), ports));
  });

  after(() => stopAll(services, dir));

  const why = () => logsOf(services);
  const target = (name: string): Target => targets.get(name)!;

  for (const framework of FRAMEWORKS) {
    it(`${framework}: a JSON body and an urlencoded form reach the app's body parser`, async () => {
      await ready();
      const { base } = target(framework);
      const json = await fetchWithin(`${base}/json`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "Zoë", list: [1, 2] }) });
      assert.equal(json.status, 200, why());
      assert.deepEqual(JSON.parse(json.text), { received: { name: "Zoë", list: [1, 2] } });
      const form = await fetchWithin(`${base}/form`, { method: "POST", body: new URLSearchParams({ a: "1", b: "x y&z" }) });
      assert.equal(form.status, 200, why());
      assert.deepEqual(JSON.parse(form.text), { received: { a: "1", b: "x y&z" } });
    });

    it(`${framework}: a multipart upload arrives whole`, async () => {
      await ready();
      const file = uploadBytes(300_000);
      const body = new FormData();
      body.append("title", "holiday");
      body.append("photo", new Blob([file], { type: "application/octet-stream" }), "photo.bin");
      const result = await fetchWithin(`${target(framework).base}/upload`, { method: "POST", body });
      assert.equal(result.status, 200, why());
      assert.deepEqual(JSON.parse(result.text), [
        { name: "title", size: 7, sha256: sha256(new TextEncoder().encode("holiday")) },
        { name: "photo", filename: "photo.bin", size: file.length, sha256: sha256(file) },
      ]);
    });

    it(`${framework}: a redirect, several cookies and an error handler's 500`, async () => {
      await ready();
      const { base } = target(framework);
      const redirect = await fetchWithin(`${base}/redirect`);
      assert.equal(redirect.status, 302, why());
      assert.equal(redirect.headers.get("location"), "/hello");
      const cookies = await fetchWithin(`${base}/cookies`);
      assert.equal(cookies.status, 200);
      const set = cookies.headers.getSetCookie();
      assert.ok(set.length >= 2, `set-cookie: ${JSON.stringify(set)}`);
      assert.match(set[0]!, /^first=1;/);
      assert.match(set[1]!, /^second=two;.*httponly/i);
      const failed = await fetchWithin(`${base}/error`);
      assert.equal(failed.status, 500);
      assert.match(failed.text, /boom/);
    });

    it(`${framework}: a streamed response arrives as written, without a length`, async () => {
      await ready();
      const result = await fetchWithin(`${target(framework).base}/stream`);
      assert.equal(result.status, 200, why());
      assert.equal(result.text, STREAMED);
      assert.equal(result.headers.get("content-length"), null);
    });

    it(`${framework}: a request the client gives up ends the app's request with 'close'`, async () => {
      await ready();
      const t = target(framework);
      const id = `${framework}-${Date.now()}`;
      const controller = new AbortController();
      const response = await fetch(`${t.base}/slow?id=${id}`, { signal: controller.signal });
      const reader = response.body!.getReader();
      const first = await reader.read();
      assert.match(new TextDecoder().decode(first.value), /waiting/);
      controller.abort();
      await reader.cancel().catch(() => {});
      await waitFor(`${framework} to note the close`, () => notes(t, id).length >= 2, 15_000).catch((error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(notes(t, id))}\n${why()}`);
      });
      const seen = notes(t, id);
      assert.deepEqual(seen.find((note) => note.event === "res close"), { id, event: "res close", writableEnded: false });
      assert.equal(seen.find((note) => note.event === "req close")?.event, "req close");
    });
  }

  for (const framework of ["express5", "express4"] as const) {
    it(`${framework}: express.static answers with an ETag, 304 to If-None-Match, and 206 to a Range`, async () => {
      await ready();
      const { base } = target(framework);
      const whole = await fetchWithin(`${base}/static/file.txt`);
      assert.equal(whole.status, 200, why());
      assert.equal(whole.text, STATIC_TEXT);
      const etag = whole.headers.get("etag");
      assert.ok(etag, "an ETag");
      // fetch() adds "cache-control: no-cache" to a conditional request unless one is given, and
      // no-cache makes `send` answer 200: give one that allows a cached copy.
      const again = await fetchWithin(`${base}/static/file.txt`, { headers: { "if-none-match": etag, "cache-control": "max-age=0" } });
      assert.equal(again.status, 304);
      assert.equal(again.text, "");
      const range = await fetchWithin(`${base}/static/file.txt`, { headers: { range: "bytes=10-15" } });
      assert.equal(range.status, 206);
      assert.equal(range.text, "abcdef");
      assert.equal(range.headers.get("content-range"), `bytes 10-15/${STATIC_TEXT.length}`);
    });

    it(`${framework}: req.ip and req.protocol come from REMOTE_ADDR and HTTPS`, async () => {
      await ready();
      const result = await fetchWithin(`${target(framework).base}/whoami`);
      assert.deepEqual(JSON.parse(result.text), { ip: "127.0.0.1", protocol: "http", secure: false, script: "/whoami" });
    });
  }

  for (const name of ["fastify module", "express4 workers"]) {
    it(`fcgi serve runs a node:http server module (${name})`, async () => {
      await ready();
      const { base } = target(name);
      for (let i = 0; i < 4; i++) {
        const hello = await fetchWithin(`${base}/hello`);
        assert.equal(hello.status, 200, why());
        assert.match(hello.text, /^hello from (fastify|express)$/);
      }
      const json = await fetchWithin(`${base}/json`, { method: "POST", headers: { "content-type": "application/json" }, body: "[1,2,3]" });
      assert.deepEqual(JSON.parse(json.text), { received: [1, 2, 3] });
      const stream = await fetchWithin(`${base}/stream`);
      assert.equal(stream.text, STREAMED);
    });
  }
});
