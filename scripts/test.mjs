#!/usr/bin/env node
// Runs the one test suite on Node (compiled output), Deno and Bun (source, unbuilt),
// prints each runtime's pass/fail counts, and fails if any runtime fails.
// Usage: node scripts/test.mjs [node|deno|bun ...] [-- test/some.test.ts ...]
// With files after --, only those run (on Node, their compiled copies in dist/).
// The runtimes run at the same time (FCGI_TEST_JOBS=1 runs them one after another); each one's
// output is printed whole when it ends, so that the three never interleave.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join, relative } from "node:path";
import { readdirSync } from "node:fs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const argv = process.argv.slice(2);
const dash = argv.indexOf("--");
const wanted = (dash < 0 ? argv : argv.slice(0, dash)).filter(Boolean);
const files = dash < 0 ? [] : argv.slice(dash + 1);
const compiled = (f) => join("dist", f.replace(/\.ts$/, ".js"));
const runtimes = wanted.length ? wanted : ["node", "deno", "bun"];
// A runaway runtime must not hang CI: each gets a bounded time.
const limitMs = Number(process.env.FCGI_TEST_TIMEOUT_MS ?? 10 * 60_000);
// Each suite spends most of its time waiting on sockets and child processes: on two cores, three
// at once take about as long as the slowest alone.
const jobs = Math.max(1, Number(process.env.FCGI_TEST_JOBS ?? runtimes.length));

// tsc still emits when types are wrong, so the suite runs anyway and the type errors fail it at the end.
function build() {
  const r = spawnSync(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root, stdio: "inherit" });
  return r.status === 0;
}

// Node 20 runs a directory given to --test, Node 22+ takes only files and globs: list the files.
function compiledTests(dir = join(root, "dist", "test")) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? compiledTests(join(dir, entry.name))
    : entry.name.endsWith(".test.js") ? [relative(root, join(dir, entry.name))]
    : []
  ).sort();
}

const commands = {
  node: () => [process.execPath, ["--test", "--test-reporter=spec", ...(files.length ? files.map(compiled) : compiledTests())]],
  deno: () => [bin("deno"), ["test", "-A", "--no-check", ...(files.length ? files : ["test/"])]],
  bun: () => [bin("bun"), ["test", "--timeout", "60000", ...(files.length ? files.map((f) => "./" + f) : ["./test/"])]],
};

// Each runner prints its own closing counts; these pick them out of the output.
const counters = {
  node: (out) => [last(out, /^[ℹ#] pass (\d+)/gm), last(out, /^[ℹ#] fail (\d+)/gm)],
  deno: (out) => [last(out, /(\d+) passed/g), last(out, /(\d+) failed/g)],
  bun: (out) => [last(out, /^\s*(\d+) pass$/gm), last(out, /^\s*(\d+) fail$/gm)],
};
function last(text, re) {
  let value = null;
  for (const m of text.replace(/\x1b\[[0-9;]*m/g, "").matchAll(re)) value = Number(m[1]);
  return value;
}

function run(name, live) {
  const [cmd, args] = commands[name]();
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" } });
    let out = "";
    const take = (stream, sink) => stream.on("data", (d) => { out += d; if (live) sink.write(d); });
    take(child.stdout, process.stdout);
    take(child.stderr, process.stderr);
    const timer = setTimeout(() => { out += `\n${name}: timed out after ${limitMs} ms\n`; child.kill("SIGKILL"); }, limitMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const seconds = Math.round((Date.now() - started) / 1000);
      if (!live) process.stdout.write(`\n=== ${name} (${seconds} s) ===\n${out}`);
      const [passed, failed] = counters[name](out);
      resolve({ name, code, seconds, passed: passed ?? 0, failed: failed ?? (code === 0 ? 0 : 1) });
    });
  });
}

const typesOk = build();
for (const name of runtimes) if (!commands[name]) throw new Error(`unknown runtime ${name}`);
const results = [];
const queue = [...runtimes];
const live = jobs === 1 || runtimes.length === 1;
await Promise.all(Array.from({ length: Math.min(jobs, runtimes.length) }, async () => {
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    if (live) console.log(`\n=== ${name} ===`);
    results.push(await run(name, live));
  }
}));
results.sort((a, b) => runtimes.indexOf(a.name) - runtimes.indexOf(b.name));
console.log("\n=== summary ===");
let ok = true;
for (const r of results) {
  const good = r.code === 0 && r.failed === 0 && r.passed > 0;
  ok &&= good;
  console.log(`${r.name}: ${r.passed} passed, ${r.failed} failed in ${r.seconds} s${good ? "" : `  (exit ${r.code})`}`);
}
if (!typesOk) {
  ok = false;
  console.log("typecheck: tsc reported errors (see above)");
}
const total = results.reduce((a, r) => [a[0] + r.passed, a[1] + r.failed], [0, 0]);
console.log(`all: ${total[0]} passed, ${total[1]} failed`);
process.exit(ok ? 0 : 1);
