/**
 * Sums a CPU profile (.cpuprofile: V8's from node --cpu-prof or bench/_cdp_profile.ts, JSC's from
 * bun --cpu-prof) by self time, into the categories of a proxy request, and lists the heaviest
 * functions. Samples are counted, not weighted by their time deltas: Bun's last sample carries the
 * whole shutdown, and the intervals are otherwise even.
 *
 * ```sh
 * node scripts/run-ts.mjs bench/profile_summary.ts PROFILE.cpuprofile [--top 20]
 * ```
 * @module
 */
import { readFileSync } from "node:fs";
import { option } from "./_wrk.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

/** Categories, first match wins; `own` is the sampled frame, `stack` its callers' urls and names. */
const RULES: Array<[string, (name: string, url: string, stack: string) => boolean]> = [
  ["idle (waiting in the event loop)", (n) => n === "(idle)"],
  ["outside JS: the runtime's native HTTP server, event loop, idle", (n, u, stack) => (n === "(program)" || n === "(root)" || n === "") && u === "" && stack === ""],
  ["outside JS (V8's '(program)': native code with no JS frame)", (n) => n === "(program)"],
  ["garbage collection", (n) => n === "(garbage collector)"],
  ["socket write: HTTP response", (n, u, stack) => /^(writeBuffer|writev|write|writeUtf8String|writeLatin1String|end|op_write)$/.test(n) && /node_http|_http_|deno_http/.test(stack)],
  ["socket write: FastCGI request", (n) => /^(writeBuffer|writev|write|writeUtf8String|op_write|writevGeneric)$/.test(n)],
  ["socket read", (n, u) => /^(onStreamRead|op_read|read)$/.test(n) && (u === "" || /net|stream_base/.test(u))],
  ["path lookups: realpath(3) and stat(2)", (n, u, stack) => /realpath|^stat|statSync|op_fs_|defineStatExtraProps|convertFileInfoToStats|getValidatedPath|toNamespacedPath/i.test(n) || /deno_node\/(fs|internal\/fs)/.test(u) || (u === "node:fs" && /statInside/.test(stack))],
  ["the runtime's HTTP server and Request/Response/Headers/AbortSignal objects", (n, u) =>
    /undici|node:_http|node:internal\/http|abort_controller|event_target|webstreams|js_transferable|node:events|ext:deno_(http|fetch|web|webidl|url)|node:internal\/url|node:url|node:internal\/streams/.test(u) ||
    (u === "" && /^(Response|Request|Headers|URL|requestIP|append|entries|get|set|DOMException|AbortSignal|addEventListener|removeEventListener|JSTransferable|makeTransferable|parse|decodeURIComponent|ReadableStream)$/.test(n))],
  ["our HTTP adapter (src/runtime/)", (_, u) => /src\/runtime\//.test(u)],
  ["gateway: routing and params (gateway.ts, params.ts)", (_, u) => /src\/client\/(gateway|params)\./.test(u)],
  ["FastCGI codec and protocol (src/codec, src/protocol, cgi_response.ts)", (_, u) => /src\/(codec|protocol|wasm)\/|cgi_response\./.test(u)],
  ["Client: pool, request, socket, body (src/client/, queue, bytes)", (_, u) => /src\/(client\/|queue\.|bytes\.|native\.|errors\.)/.test(u)],
  ["timers, microtasks, promises", (n, u) => /timers|task_queues|ext:core|00_infra/.test(u) || /^(runMicrotasks|queueMicrotask|setTimeout|clearTimeout|Promise|then|resolve)$/.test(n)],
];
const OTHER = "other (runtime internals, builtins)";

function main(): void {
  const file = process.argv.slice(2).find((a) => !a.startsWith("--") && !/^\d+$/.test(a));
  if (!file) throw new Error("usage: profile_summary.ts PROFILE.cpuprofile [--top N]");
  const top = Number(option("top", "20"));
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const counts = new Map<number, number>();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);

  const categories = new Map<string, number>();
  const functions = new Map<string, { count: number; category: string }>();
  let total = 0;
  for (const [id, count] of counts) {
    const node = byId.get(id)!;
    const { functionName: name, url, lineNumber } = node.callFrame;
    // The callers' names and urls, up to the root (the root itself excluded).
    const callers: string[] = [];
    for (let p = parent.get(id); p !== undefined && parent.get(p) !== undefined; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      callers.push(`${f.functionName} ${f.url}`);
    }
    const stack = callers.join(" < ");
    const category = RULES.find(([, test]) => test(name, url, stack))?.[0] ?? OTHER;
    categories.set(category, (categories.get(category) ?? 0) + count);
    const where = url === "" ? "native" : `${url.replace(/^.*\/(src\/)/, "$1").replace(/^file:\/\/.*\//, "")}:${lineNumber + 1}`;
    const key = `\`${name || "(anonymous)"}\` ${where}`;
    const entry = functions.get(key) ?? { count: 0, category };
    entry.count += count;
    functions.set(key, entry);
    total += count;
  }
  const pct = (n: number, of = total): string => `${((100 * n) / of).toFixed(1)} %`;
  // V8 marks the samples taken while waiting in the event loop; JSC does not (they are in "outside JS").
  const busy = total - (categories.get(RULES[0]![0]) ?? 0);
  console.log(`${file}: ${total} samples\n`);
  console.log("| category | self time | of the busy samples |\n|---|---:|---:|");
  for (const [name, count] of [...categories].sort((a, b) => b[1] - a[1])) console.log(`| ${name} | ${pct(count)} | ${name === RULES[0]![0] ? "" : pct(count, busy)} |`);
  console.log(`\n| function (self time) | | category |\n|---|---:|---|`);
  for (const [key, { count, category }] of [...functions].sort((a, b) => b[1].count - a[1].count).slice(0, top)) {
    console.log(`| ${key} | ${pct(count)} | ${category.split(":")[0]!.split(" (")[0]} |`);
  }
}

main();
