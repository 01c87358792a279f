// Question: how many requests per second does fcgi's Client get out of PHP-FPM, against npm
// fastcgi-client, the same PHP-FPM and the same hello.php, at the same concurrency?
// Run: node scripts/run-ts.mjs bench/client.ts [--requests N] [--concurrency C] [--runs R] [--listen unix|tcp]
//      (also: deno run -A bench/client.ts …, bun bench/client.ts …)
// Both clients send the same params; each of C workers sends its next request when the last one's
// body was read to the end. PHP-FPM runs pm = static with C workers. The runs alternate which
// client goes first; the table shows medians.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatAddress } from "../src/address.ts";
import { Client } from "../src/client/client.ts";
import { startPhpFpm } from "../test/_support/phpfpm.ts";

declare const Deno: { version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

interface FcgiRequest {
  stdin: { end(): void };
  stdout: { on(event: "data", f: (chunk: Uint8Array) => void): void; on(event: "end", f: () => void): void };
  stderr: { on(event: "data", f: (chunk: Uint8Array) => void): void };
}
interface FcgiClient {
  on(event: "ready", f: () => void): void;
  on(event: "error", f: (error: Error) => void): void;
  request(params: Record<string, string>, cb: (error: Error | null, request: FcgiRequest) => void): void;
}
type Connector = (options: Record<string, unknown>) => FcgiClient;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const requests = flag("requests", 20_000);
const concurrency = flag("concurrency", 8);
const runs = flag("runs", 5);
const listenAt = process.argv.indexOf("--listen");
const listen = listenAt > 0 && process.argv[listenAt + 1] === "tcp" ? "tcp" : "unix";

const runtime = typeof Deno !== "undefined" ? `Deno ${Deno.version.deno}` : typeof Bun !== "undefined" ? `Bun ${Bun.version}` : `Node ${process.versions.node}`;
const connector = createRequire(import.meta.url)("fastcgi-client") as Connector;

const root = mkdtempSync(join(tmpdir(), "fcgi-bench-client-"));
writeFileSync(join(root, "hello.php"), `<?php echo "hello";`);
const script = join(root, "hello.php");
const fpm = await startPhpFpm({ listen, root, maxChildren: concurrency });

/** The params fcgi's Client sends for GET /hello.php, which fastcgi-client gets too. */
function params(): Record<string, string> {
  return {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: "fcgi",
    SERVER_PROTOCOL: "HTTP/1.1",
    REQUEST_SCHEME: "http",
    REQUEST_METHOD: "GET",
    REQUEST_URI: "/hello.php",
    QUERY_STRING: "",
    SCRIPT_NAME: "/hello.php",
    SCRIPT_FILENAME: script,
    DOCUMENT_ROOT: root,
    SERVER_NAME: "localhost",
    SERVER_PORT: "80",
    REMOTE_ADDR: "127.0.0.1",
  };
}

/** Runs `count` requests through `one` with `concurrency` workers; resolves to requests per second. */
async function measure(count: number, one: () => Promise<string>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next++;
      const body = await one();
      if (body !== "hello") throw new Error(`unexpected body ${JSON.stringify(body.slice(0, 200))}`);
    }
  }));
  return count / ((performance.now() - started) / 1000);
}

// A fresh Client per measurement (its connects and GET_VALUES counted in): kept connections hold
// PHP-FPM workers, and fastcgi-client must find them all free when its turn comes.
let client = new Client({ address: fpm.address, maxConnections: concurrency });
const decoder = new TextDecoder();
async function fresh(): Promise<void> {
  await client.close();
  client = new Client({ address: fpm.address, maxConnections: concurrency });
}
// fetch(url), the way to send a plain GET; fetch(new Request(...)) costs the Request object on top.
const ours = async (): Promise<string> => {
  const response = await client.fetch("http://localhost/hello.php", { documentRoot: root });
  return await response.text();
};
const oursWithRequest = async (): Promise<string> => {
  const response = await client.fetch(new Request("http://localhost/hello.php"), { documentRoot: root });
  return await response.text();
};

const theirClient = await new Promise<FcgiClient>((resolve, reject) => {
  const c = connector(fpm.address.transport === "unix"
    ? { sockFile: fpm.address.path, skipCheckServer: true, maxConns: concurrency, maxReqs: concurrency, mpxsConns: false }
    : { host: "127.0.0.1", port: (fpm.address as { port: number }).port, skipCheckServer: true, maxConns: concurrency, maxReqs: concurrency, mpxsConns: false });
  c.on("ready", () => resolve(c));
  c.on("error", reject);
});
const theirs = (): Promise<string> =>
  new Promise((resolve, reject) => {
    theirClient.request(params(), (error, request) => {
      if (error) return reject(error);
      let body = "";
      request.stdout.on("data", (chunk) => (body += decoder.decode(chunk)));
      request.stdout.on("end", () => {
        // fastcgi-client hands over raw CGI output: drop the headers as a caller would.
        const at = body.indexOf("\r\n\r\n");
        resolve(at >= 0 ? body.slice(at + 4) : body);
      });
      request.stderr.on("data", () => {});
      request.stdin.end();
    });
  });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const contenders: Array<{ name: string; ours: boolean; one: () => Promise<string>; rates: number[] }> = [
  { name: "fcgi Client, fetch(url)", ours: true, one: ours, rates: [] },
  { name: "fcgi Client, fetch(new Request(url))", ours: true, one: oursWithRequest, rates: [] },
  { name: "fastcgi-client 0.2.0", ours: false, one: theirs, rates: [] },
];

try {
  console.log(`${runtime}, PHP-FPM over ${formatAddress(fpm.address)} (pm static, ${concurrency} workers), ${requests} requests × ${runs} runs, concurrency ${concurrency}`);
  for (const c of contenders) {
    if (c.ours) await fresh();
    await measure(Math.min(2000, requests), c.one);
    await client.close();
  }
  for (let run = 0; run < runs; run++) {
    // Each run rotates who goes first, so that a busy moment of the machine does not always hit the same one.
    const order = contenders.map((_, i) => contenders[(i + run) % contenders.length]!);
    for (const c of order) {
      if (c.ours) await fresh();
      c.rates.push(await measure(requests, c.one));
      await client.close();
    }
    console.log(`run ${run + 1}: ${contenders.map((c) => `${c.name} ${c.rates[run]!.toFixed(0)}`).join(", ")} req/s`);
  }
  const base = median(contenders[2]!.rates);
  console.log("");
  console.log(`| client (${runtime}) | req/s, median | runs | vs fastcgi-client |`);
  console.log("|---|---:|---|---:|");
  for (const c of contenders) {
    const m = median(c.rates);
    console.log(`| ${c.name} | ${m.toFixed(0)} | ${c.rates.map((x) => x.toFixed(0)).join(", ")} | ${c.ours ? "**" : ""}${(m / base).toFixed(2)}×${c.ours ? "**" : ""} |`);
  }
} finally {
  await client.close();
  await fpm.stop();
  rmSync(root, { recursive: true, force: true });
}
