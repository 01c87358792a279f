// How fast does the record codec decode what web servers send? Compares the WASM codec
// (src/codec/) with the plain-TypeScript oracle (test/oracle/) in the same process:
//   (a) nginx-like requests (BEGIN_REQUEST, 25 PARAMS, empty PARAMS, empty STDIN) in 64 KiB chunks,
//       decoded to Params that can be read -> requests/s and MB/s;
//   (b) a 64 MiB STDIN body in 65535-byte records -> GB/s.
// Run: node scripts/run-ts.mjs bench/codec.ts | npx deno run -A bench/codec.ts | npx bun bench/codec.ts
// Options: --runs N (default 7), --quick (fewer bytes, for a smoke run).
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { encodeBeginRequest, encodeParams, encodeRecord, encodeStreamEnd } from "../src/codec/encode.ts";
import type { RecordHandler } from "../src/codec/types.ts";
import { FCGI_KEEP_CONN, RecordType, Role } from "../src/protocol/constants.ts";
import { OracleRecordDecoder } from "../test/oracle/decoder.ts";
import { OraclePairDecoder } from "../test/oracle/pairs.ts";
import { concatBytes } from "../src/bytes.ts";

declare const Deno: { version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const runs = Number(args[args.indexOf("--runs") + 1]) || (quick ? 3 : 7);

interface Decoders {
  name: string;
  records: () => { decode(chunk: Uint8Array, onRecord: RecordHandler): void };
  pairs: () => { push(piece: Uint8Array): void; end(): { get(name: string): string | undefined } };
}
const wasm: Decoders = { name: "wasm", records: () => new RecordDecoder(), pairs: () => new PairDecoder() };
const oracle: Decoders = { name: "oracle", records: () => new OracleRecordDecoder(), pairs: () => new OraclePairDecoder() };

// ---- workload (a): what nginx sends for a GET, with fastcgi_params and typical browser headers ----
function nginxParams(i: number): [string, string][] {
  const uri = `/index.php/articles/${i}?page=${i % 17}&sort=date`;
  return [
    ["QUERY_STRING", `page=${i % 17}&sort=date`],
    ["REQUEST_METHOD", "GET"],
    ["CONTENT_TYPE", ""],
    ["CONTENT_LENGTH", ""],
    ["SCRIPT_NAME", "/index.php"],
    ["REQUEST_URI", uri],
    ["DOCUMENT_URI", "/index.php"],
    ["DOCUMENT_ROOT", "/var/www/html"],
    ["SERVER_PROTOCOL", "HTTP/1.1"],
    ["REQUEST_SCHEME", "https"],
    ["HTTPS", "on"],
    ["GATEWAY_INTERFACE", "CGI/1.1"],
    ["SERVER_SOFTWARE", "nginx/1.26.3"],
    ["REMOTE_ADDR", `203.0.113.${i % 250}`],
    ["REMOTE_PORT", String(40000 + (i % 20000))],
    ["SERVER_ADDR", "192.0.2.10"],
    ["SERVER_PORT", "443"],
    ["SERVER_NAME", "example.com"],
    ["REDIRECT_STATUS", "200"],
    ["SCRIPT_FILENAME", "/var/www/html/index.php"],
    ["HTTP_HOST", "example.com"],
    ["HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"],
    ["HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
    ["HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"],
    ["HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"],
  ];
}

// Socket reads are separate buffers, so the chunks are copies, not views of one big array.
function chunked(stream: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < stream.length; at += size) chunks.push(stream.slice(at, at + size));
  return chunks;
}

const REQUESTS = quick ? 5_000 : 50_000;
const requestStream = concatBytes(
  Array.from({ length: REQUESTS }, (_, i) =>
    concatBytes([
      encodeBeginRequest(1, Role.RESPONDER, FCGI_KEEP_CONN),
      encodeParams(1, nginxParams(i)),
      encodeStreamEnd(RecordType.STDIN, 1),
    ])
  ),
);
const requestChunks = chunked(requestStream, 64 * 1024);

/** Decodes every request to readable Params; reads REQUEST_URI of every 64th (or `readAll`: 4 params of each). */
function decodeRequests(d: Decoders, chunks: Uint8Array[], readAll: boolean): number {
  const decoder = d.records();
  let pairs = d.pairs();
  let requests = 0;
  let check = 0;
  const onRecord: RecordHandler = (type, _requestId, content, _flags) => {
    if (type === RecordType.PARAMS) {
      if (content.length > 0) pairs.push(content);
      else {
        const params = pairs.end();
        if (readAll) {
          check += params.get("REQUEST_METHOD")!.length + params.get("REQUEST_URI")!.length +
            params.get("QUERY_STRING")!.length + params.get("HTTP_HOST")!.length;
        } else if ((requests & 63) === 0) check += params.get("REQUEST_URI")!.length;
      }
    } else if (type === RecordType.BEGIN_REQUEST) {
      pairs = d.pairs();
    } else if (type === RecordType.STDIN && content.length === 0) {
      requests++;
    }
  };
  for (const chunk of chunks) decoder.decode(chunk, onRecord);
  if (requests !== REQUESTS || check === 0) throw new Error(`decoded ${requests} requests, expected ${REQUESTS}`);
  return requests;
}

// ---- workload (b): a 64 MiB body in 65535-byte STDIN records (padded to 8), then the empty STDIN ----
const BODY = (quick ? 8 : 64) * 1024 * 1024;
const bodyStream = (() => {
  const parts: Uint8Array[] = [];
  const record = new Uint8Array(65535);
  for (let i = 0; i < record.length; i++) record[i] = (i * 31) & 0xff;
  for (let left = BODY; left > 0; left -= 65535) {
    parts.push(encodeRecord(RecordType.STDIN, 1, left >= 65535 ? record : record.subarray(0, left)));
  }
  parts.push(encodeStreamEnd(RecordType.STDIN, 1));
  return concatBytes(parts);
})();
const bodyChunks64k = chunked(bodyStream, 64 * 1024);
const bodyChunks1m = chunked(bodyStream, 1024 * 1024);

/**
 * The decoder never touches body bytes, so one pass over 64 MiB takes well under a millisecond:
 * each timed run decodes the body BODY_PASSES times (with a fresh decoder each time), so that
 * timer resolution and a stray GC pause do not decide the result.
 */
const BODY_PASSES = 16;

function decodeBody(d: Decoders, chunks: Uint8Array[]): number {
  let bytes = 0;
  const onRecord: RecordHandler = (_type, _requestId, content) => {
    bytes += content.length;
  };
  for (let pass = 0; pass < BODY_PASSES; pass++) {
    const decoder = d.records();
    for (const chunk of chunks) decoder.decode(chunk, onRecord);
  }
  if (bytes !== BODY * BODY_PASSES) throw new Error(`decoded ${bytes} body bytes, expected ${BODY * BODY_PASSES}`);
  return bytes;
}

// ---- measurement ----
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const WARMUP_MS = quick ? 50 : 500;

/**
 * Median seconds per call of each function over `runs` rounds, after WARMUP_MS of warm-up calls each. The
 * functions take turns within each round, so a load that drifts (a shared machine) hits both alike.
 */
function timeTogether(fns: (() => unknown)[]): number[] {
  // Warm up for a while, not a fixed two calls: JavaScriptCore (Bun) reaches its top tier later
  // than V8, and a server measures in steady state.
  for (const fn of fns) {
    const until = performance.now() + WARMUP_MS;
    do fn(); while (performance.now() < until);
  }
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < runs; r++) {
    fns.forEach((fn, i) => {
      const t0 = performance.now();
      fn();
      times[i].push((performance.now() - t0) / 1000);
    });
  }
  return times.map(median);
}

const runtime = typeof Deno !== "undefined"
  ? `deno ${Deno.version.deno}`
  : typeof Bun !== "undefined"
  ? `bun ${Bun.version}`
  : `node ${process.version}`;

interface Row {
  workload: string;
  unit: string;
  wasm: number;
  oracle: number;
}
const rows: Row[] = [];
function measure(workload: string, unit: string, amount: number, fn: (d: Decoders) => unknown): void {
  const [w, o] = timeTogether([() => fn(wasm), () => fn(oracle)]);
  rows.push({ workload, unit, wasm: amount / w, oracle: amount / o });
}

const mb = requestStream.length / 1e6;
console.log(`${runtime}: ${REQUESTS} requests (${mb.toFixed(1)} MB, ${(requestStream.length / REQUESTS).toFixed(0)} B each), body ${BODY / 1048576} MiB, median of ${runs} runs`);
measure("(a) requests, 64 KiB chunks", "requests/s", REQUESTS, (d) => decodeRequests(d, requestChunks, false));
rows.push({ workload: "(a) same, in MB/s", unit: "MB/s", wasm: rows[0].wasm * mb / REQUESTS, oracle: rows[0].oracle * mb / REQUESTS });
measure("(a') requests, 4 params read each", "requests/s", REQUESTS, (d) => decodeRequests(d, requestChunks, true));
measure("(b) 64 MiB STDIN body, 64 KiB chunks", "GB/s", BODY_PASSES * BODY / 1e9, (d) => decodeBody(d, bodyChunks64k));
measure("(b') 64 MiB STDIN body, 1 MiB chunks", "GB/s", BODY_PASSES * BODY / 1e9, (d) => decodeBody(d, bodyChunks1m));

const fmt = (x: number, unit: string): string => unit === "GB/s" ? x.toFixed(2) : unit === "MB/s" ? x.toFixed(0) : `${(x / 1e6).toFixed(3)} M`;
console.log(`| workload | unit | wasm | oracle | wasm/oracle |`);
console.log(`|---|---|---:|---:|---:|`);
for (const r of rows) {
  console.log(`| ${r.workload} | ${r.unit} | ${fmt(r.wasm, r.unit)} | ${fmt(r.oracle, r.unit)} | ${(r.wasm / r.oracle).toFixed(2)}× |`);
}
