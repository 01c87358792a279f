#!/usr/bin/env node
// The mutation check ("keep it this way"): applies each deliberate breakage of scripts/mutations.mjs,
// one at a time, to a temporary copy of the repository, runs the test files paired with it, and
// reports every breakage that no test catches. Not part of `npm test`: run it with `npm run mutate`.
//
// Usage: node scripts/mutate.mjs [--runtime bun|deno|node|all] [--only id1,id2] [--list]
//                                [--timeout SECONDS] [--head] [--write] [--verbose]
//   --runtime  where the tests run (default bun, the fastest; node runs the compiled dist/ copy)
//   --only     apply only these mutations
//   --list     check that every mutation still applies (its find string occurs exactly once) and list them
//   --timeout  seconds per test run (default 120); a run that times out counts as caught, shown as "timeout"
//   --head     copy the committed tree (git archive HEAD) instead of the working tree, so edits in
//              progress (a test half-rewritten, a breakage tried by hand) do not count
//   --write    (re)write test/MUTATIONS.md with the result
//   --verbose  print the output of every test run
// Exit status: 0 when every mutation was caught, 1 when one was MISSED (or something else failed).
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { mutations } from "./mutations.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUNTIMES = ["bun", "deno", "node"];
const GENERATED_WASM = "src/codec/wasm_module.generated.ts";
const REPORT = "test/MUTATIONS.md";

// ---- arguments ----------------------------------------------------------------------------------

function usage(message) {
  if (message) console.error(`mutate: ${message}`);
  console.error("usage: node scripts/mutate.mjs [--runtime bun|deno|node|all] [--only id1,id2] [--list] [--timeout SECONDS] [--head] [--write] [--verbose]");
  process.exit(2);
}

const options = { runtimes: ["bun"], only: null, list: false, timeoutMs: 120_000, write: false, verbose: false, head: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i] ?? usage(`${name} needs a value`);
    switch (name) {
      case "--runtime": {
        const v = value();
        options.runtimes = v === "all" ? [...RUNTIMES] : v.split(",");
        for (const r of options.runtimes) if (!RUNTIMES.includes(r)) usage(`unknown runtime ${r}`);
        break;
      }
      case "--only":
        options.only = value().split(",").map((s) => s.trim()).filter(Boolean);
        break;
      case "--list":
        options.list = true;
        break;
      case "--timeout": {
        const seconds = Number(value());
        if (!(seconds > 0)) usage("--timeout takes a number of seconds");
        options.timeoutMs = seconds * 1000;
        break;
      }
      case "--write":
        options.write = true;
        break;
      case "--head":
        options.head = true;
        break;
      case "--verbose":
        options.verbose = true;
        break;
      case "--help":
      case "-h":
        usage();
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
}

// ---- the list, checked against the source ------------------------------------------------------

function count(text, find) {
  let n = 0;
  for (let at = text.indexOf(find); at >= 0; at = text.indexOf(find, at + 1)) n++;
  return n;
}

/** Every problem with the list, each naming its mutation: the list must not go stale silently. */
function checkList(list, base) {
  const problems = [];
  const ids = new Set();
  for (const m of list) {
    const name = `mutation ${JSON.stringify(m.id)}`;
    if (typeof m.id !== "string" || m.id === "") problems.push(`a mutation without an id: ${JSON.stringify(m).slice(0, 120)}`);
    if (ids.has(m.id)) problems.push(`${name}: the id is used twice`);
    ids.add(m.id);
    if (typeof m.find !== "string" || m.find === "") problems.push(`${name}: find must be a non-empty string`);
    if (typeof m.replace !== "string") problems.push(`${name}: replace must be a string`);
    if (m.find === m.replace) problems.push(`${name}: replace is the same as find`);
    if (!Array.isArray(m.tests) || m.tests.length === 0) problems.push(`${name}: no tests paired with it`);
    if (m.build !== undefined && m.build !== "wasm") problems.push(`${name}: unknown build ${JSON.stringify(m.build)}`);
    for (const t of m.tests ?? []) if (!existsSync(join(base, t))) problems.push(`${name}: its test file ${t} does not exist`);
    const path = join(base, m.file ?? "");
    if (typeof m.file !== "string" || !existsSync(path)) {
      problems.push(`${name}: the file ${m.file} does not exist`);
      continue;
    }
    if (typeof m.find !== "string" || m.find === "") continue;
    const n = count(readFileSync(path, "utf8"), m.find);
    if (n === 0) problems.push(`${name}: its find string no longer occurs in ${m.file}: ${JSON.stringify(m.find)}`);
    else if (n > 1) problems.push(`${name}: its find string occurs ${n} times in ${m.file}, it must be once: ${JSON.stringify(m.find)}`);
  }
  return problems;
}

let selected = mutations;
if (options.only) {
  const unknown = options.only.filter((id) => !mutations.some((m) => m.id === id));
  if (unknown.length) usage(`no mutation named ${unknown.join(", ")} (see --list)`);
  selected = mutations.filter((m) => options.only.includes(m.id));
}

// ---- helpers ----------------------------------------------------------------------------------------

function shortTest(t) {
  return t.replace(/^test\//, "").replace(/\.test\.ts$/, "");
}

function table(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function stripAnsi(text) {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

function bin(name) {
  return join(root, "node_modules", ".bin", name);
}

function version(runtime) {
  if (runtime === "node") return process.version.replace(/^v/, "");
  const r = spawnSync(bin(runtime), ["--version"], { encoding: "utf8" });
  const out = (r.stdout ?? "").trim().split("\n")[0] ?? "";
  return out.replace(/^deno\s+/, "").replace(/\s.*$/, "") || "unknown";
}

// ---- the copy -----------------------------------------------------------------------------------------

/** What is not copied: dependencies (linked instead), history, build output, CI downloads. */
function copied(source) {
  const rel = relative(root, source);
  if (rel === "") return true;
  const top = rel.split(/[\\/]/)[0];
  if (["node_modules", ".git", "dist"].includes(top) || top.startsWith(".dist-")) return false;
  if (rel === join(".ci", "node24") || rel === join("wasm", "build") || rel.endsWith(".tgz")) return false;
  return true;
}

const work = mkdtempSync(join(tmpdir(), "fcgi-mutate-"));
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  rmSync(work, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    for (const child of running) killGroup(child);
    cleanup();
    process.exit(130);
  });
}

if (options.head) {
  // The committed tree, untouched by whatever is being edited in the working tree right now.
  const archive = spawnSync("git", ["-C", root, "archive", "--format=tar", "HEAD"], { maxBuffer: 1 << 30 });
  if (archive.status !== 0) {
    cleanup();
    throw new Error(`git archive HEAD failed: ${archive.stderr}`);
  }
  const untar = spawnSync("tar", ["-x", "-C", work], { input: archive.stdout });
  if (untar.status !== 0) {
    cleanup();
    throw new Error(`tar -x failed: ${untar.stderr}`);
  }
} else {
  for (const entry of readdirSync(root)) {
    const source = join(root, entry);
    if (copied(source)) cpSync(source, join(work, entry), { recursive: true, filter: copied });
  }
}
symlinkSync(join(root, "node_modules"), join(work, "node_modules"), "dir");

// The list is checked against the copy, which is what gets mutated.
{
  const problems = checkList(mutations, work);
  if (problems.length) {
    console.error(`mutate: scripts/mutations.mjs does not match the source${options.head ? " (HEAD)" : ""}:\n  ${problems.join("\n  ")}`);
    cleanup();
    process.exit(1);
  }
}
if (options.list) {
  const rows = selected.map((m) => [m.id, m.file, m.tests.map(shortTest).join(" "), m.why]);
  console.log(table(["id", "file", "tests", "why"], rows));
  console.log(`\n${selected.length} mutations; every find string occurs exactly once${options.head ? " in HEAD" : ""}.`);
  cleanup();
  process.exit(0);
}

// ---- running tests ------------------------------------------------------------------------------------

const running = new Set();

function killGroup(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** The runner's command; `bail`: stop at the first failure (one is all a mutation run needs). */
function command(runtime, tests, bail) {
  switch (runtime) {
    case "bun":
      return [join(work, "node_modules", ".bin", "bun"), ["test", "--timeout", "60000", ...(bail ? ["--bail"] : []), ...tests.map((t) => "./" + t)]];
    case "deno":
      return [join(work, "node_modules", ".bin", "deno"), ["test", "-A", "--no-check", ...(bail ? ["--fail-fast"] : []), ...tests]];
    case "node":
      return [process.execPath, ["--test", "--test-reporter=spec", ...tests.map((t) => join("dist", t.replace(/\.ts$/, ".js")))]];
  }
  throw new Error(`unknown runtime ${runtime}`);
}

/** Names of the failing tests in a runner's output, best effort. */
function failures(runtime, out) {
  const names = new Set();
  const text = stripAnsi(out);
  if (runtime === "bun") {
    for (const m of text.matchAll(/^\(fail\) (.+?)(?: \[[\d.]+m?s\])?$/gm)) names.add(m[1].trim());
  } else if (runtime === "deno") {
    const section = text.split(/^\s*ERRORS\s*$/m)[0];
    for (const m of section.matchAll(/^(.+?) \.\.\. FAILED\b/gm)) names.add(m[1].trim());
  } else {
    // Each file is a test of its own, named by its path: the names inside it are the ones that say something.
    for (const m of text.matchAll(/^\s*✖ (.+?) \([\d.]+m?s\)$/gm)) {
      if (!/^failing tests:?$/.test(m[1]) && !/\.test\.js$/.test(m[1])) names.add(m[1].trim());
    }
  }
  return [...names];
}

/** Runs the test files; resolves { status: "pass" | "fail" | "timeout", seconds, out, failed }. */
function runTests(runtime, tests, bail = false) {
  const [cmd, args] = command(runtime, tests, bail);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: work,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CI: "true", FORCE_COLOR: "0", NO_COLOR: "1" },
    });
    running.add(child);
    let out = "";
    let timedOut = false;
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, options.timeoutMs);
    child.on("error", (error) => (out += `\nmutate: could not start ${cmd}: ${error.message}\n`));
    child.on("close", (code) => {
      clearTimeout(timer);
      running.delete(child);
      // Whatever the tests started (web servers, PHP-FPM) goes with them.
      killGroup(child);
      const seconds = (Date.now() - started) / 1000;
      if (options.verbose) process.stdout.write(out);
      resolve({ status: timedOut ? "timeout" : code === 0 ? "pass" : "fail", seconds, out, failed: failures(runtime, out) });
    });
  });
}

// ---- applying a mutation -------------------------------------------------------------------------------

let typescript;
async function compileForNode(files) {
  // Node runs the compiled copy in dist/: recompile just the changed sources, as tsc would emit them.
  typescript ??= (await import(join(work, "node_modules", "typescript", "lib", "typescript.js"))).default;
  const config = typescript.readConfigFile(join(work, "tsconfig.json"), typescript.sys.readFile);
  const parsed = typescript.parseJsonConfigFileContent(config.config, typescript.sys, work);
  // One file alone cannot tell NodeNext that it is ESM (package.json "type"): say so, as tsc decides it.
  const compilerOptions = { ...parsed.options, module: typescript.ModuleKind.ESNext, moduleResolution: typescript.ModuleResolutionKind.Bundler };
  for (const file of files) {
    // Only what tsc compiles has a dist/ copy (wasm/ is compiled by asc into the generated module).
    if (!file.endsWith(".ts") || !existsSync(join(work, "dist", file.replace(/\.ts$/, ".js")))) continue;
    const source = readFileSync(join(work, file), "utf8");
    const result = typescript.transpileModule(source, { compilerOptions, fileName: join(work, file) });
    writeFileSync(join(work, "dist", file.replace(/\.ts$/, ".js")), result.outputText);
  }
}

function buildWasm() {
  const r = spawnSync(process.execPath, [join(work, "scripts", "build-wasm.mjs")], { cwd: work, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`the WASM build failed:\n${r.stdout}${r.stderr}`);
}

/** Applies `m` to the copy; returns a function that puts everything back. */
async function apply(m, runtime) {
  const path = join(work, m.file);
  const original = readFileSync(path, "utf8");
  if (count(original, m.find) !== 1) throw new Error(`mutation ${m.id}: its find string does not occur exactly once in ${m.file}`);
  const changed = [m.file];
  const saved = new Map([[m.file, original]]);
  writeFileSync(path, original.replace(m.find, () => m.replace));
  if (m.build === "wasm") {
    saved.set(GENERATED_WASM, readFileSync(join(work, GENERATED_WASM), "utf8"));
    buildWasm();
    changed.push(GENERATED_WASM);
  }
  if (runtime === "node") await compileForNode(changed);
  return async () => {
    for (const [file, text] of saved) writeFileSync(join(work, file), text);
    if (runtime === "node") await compileForNode(changed);
  };
}

// ---- the run -----------------------------------------------------------------------------------------

const exitCode = await (async () => {
  try {
    return await main();
  } catch (error) {
    console.error(`mutate: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    cleanup();
  }
})();
process.exit(exitCode);

async function main() {
  const versions = Object.fromEntries(options.runtimes.map((r) => [r, version(r)]));
  console.log(`mutate: ${selected.length} mutations, runtime ${options.runtimes.map((r) => `${r} ${versions[r]}`).join(", ")}, copy in ${work}`);
  const results = new Map(selected.map((m) => [m.id, {}]));
  const testFiles = [...new Set(selected.flatMap((m) => m.tests))].sort();

  for (const runtime of options.runtimes) {
    if (runtime === "node") {
      console.log("\n[node] building dist/ in the copy");
      const r = spawnSync(process.execPath, [join(work, "scripts", "build.mjs")], { cwd: work, encoding: "utf8" });
      if (!existsSync(join(work, "dist"))) throw new Error(`the build emitted nothing:\n${r.stdout}${r.stderr}`);
      if (r.status !== 0) console.log(`[node] tsc reported type errors (the build still emitted):\n${r.stdout}${r.stderr}`);
    }

    // The baseline: every paired test file must pass unmutated, or a failure would mean nothing.
    console.log(`\n[${runtime}] baseline: ${testFiles.length} test files, unmutated`);
    const broken = [];
    for (const t of testFiles) {
      const r = await runTests(runtime, [t]);
      console.log(`  ${r.status === "pass" ? "ok  " : "FAIL"} ${t} (${r.seconds.toFixed(1)} s)${r.status === "timeout" ? " timed out" : ""}`);
      if (r.status !== "pass") broken.push({ t, r });
    }
    if (broken.length) {
      for (const { t, r } of broken) console.error(`\n---- ${t} on ${runtime}, unmutated ----\n${stripAnsi(r.out).slice(-6000)}`);
      throw new Error(`the baseline fails on ${runtime} (${broken.map((b) => b.t).join(", ")}): fix that first, a mutation run means nothing otherwise`);
    }

    console.log(`\n[${runtime}] mutations`);
    for (const m of selected) {
      const restore = await apply(m, runtime);
      let r;
      try {
        r = await runTests(runtime, m.tests, true);
      } finally {
        await restore();
      }
      // A failed run in which no test failed by name did not load or crashed between tests: a
      // mutation that breaks loading proves nothing, so that is shown apart, with its output.
      const result = r.status === "pass" ? "MISSED" : r.status === "timeout" ? "timeout" : r.failed.length ? "caught" : "error";
      results.get(m.id)[runtime] = { result, seconds: r.seconds, failed: r.failed };
      const by = r.failed.length ? `  by: ${r.failed[0]}${r.failed.length > 1 ? ` (+${r.failed.length - 1})` : ""}` : "";
      console.log(`  ${result.padEnd(7)} ${m.id} (${r.seconds.toFixed(1)} s)${result === "caught" ? by : ""}`);
      if (result === "MISSED") console.log(`          ${m.why}${m.note ? `\n          known: ${m.note}` : ""}`);
      if (result === "error" && !options.verbose) console.log(stripAnsi(r.out).trim().split("\n").slice(-25).map((l) => `          | ${l}`).join("\n"));
    }
  }

  // ---- report -----------------------------------------------------------------------------------------
  const head = ["id", "file", "tests", ...options.runtimes.flatMap((r) => options.runtimes.length > 1 ? [r, "s"] : ["result", "seconds"])];
  const rows = selected.map((m) => [
    m.id,
    m.file,
    m.tests.map(shortTest).join(" "),
    ...options.runtimes.flatMap((r) => {
      const x = results.get(m.id)[r];
      return [x.result, x.seconds.toFixed(1)];
    }),
  ]);
  console.log(`\n${table(head, rows)}`);
  const missed = selected.filter((m) => options.runtimes.some((r) => results.get(m.id)[r].result === "MISSED"));
  const timeouts = selected.filter((m) => options.runtimes.some((r) => results.get(m.id)[r].result === "timeout"));
  const errors = selected.filter((m) => options.runtimes.some((r) => results.get(m.id)[r].result === "error"));
  console.log(`\n${selected.length - missed.length} of ${selected.length} caught${timeouts.length ? ` (${timeouts.length} by a timeout)` : ""}; ${missed.length} MISSED${missed.length ? `: ${missed.map((m) => m.id).join(", ")}` : ""}`);
  if (errors.length) console.log(`failed without a failing test (load error or a crash between tests; check by hand): ${errors.map((m) => m.id).join(", ")}`);

  if (options.write) {
    writeFileSync(join(root, REPORT), report({ versions, results, missed }));
    console.log(`wrote ${REPORT}`);
  }
  return missed.length ? 1 : 0;
}

function report({ versions, results, missed }) {
  const head = spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout?.trim() || "unknown";
  const cell = (s) => String(s).replaceAll("|", "\\|");
  const argv = process.argv.slice(2).filter((a) => a !== "--write" && a !== "--verbose");
  const runtimes = options.runtimes;
  const lines = [
    "# Mutation check: last result",
    "",
    "Written by `node scripts/mutate.mjs --write` (`npm run mutate -- --write`); do not edit by hand.",
    "Each mutation (scripts/mutations.mjs) is a deliberate breakage applied alone to a temporary copy of",
    "the repository; the test files paired with it must then fail. A MISSED one is a breakage no test",
    "catches. A timeout counts as caught (the run hung instead of passing); \"error\" means the run failed",
    "with no test failing by name (it did not load, or crashed between tests): caught, but to be checked.",
    "",
    `- date: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
    `- runtime: ${runtimes.map((r) => `${r} ${versions[r]}`).join(", ")}`,
    `- source: ${options.head ? `the commit ${head}` : `the working tree (at the commit ${head}, edits included)`}`,
    `- command: \`node scripts/mutate.mjs${argv.length ? " " + argv.join(" ") : ""}\` (CI=true, ${options.timeoutMs / 1000} s per run)`,
    `- result: ${selected.length - missed.length} of ${selected.length} caught, ${missed.length} MISSED`,
    "",
    `| id | file | tests | ${runtimes.map((r) => runtimes.length > 1 ? `${r} | s` : "result | seconds").join(" | ")} | caught by (first failing test) |`,
    `|---|---|---|${runtimes.map(() => "---|---:").join("|")}|---|`,
  ];
  for (const m of selected) {
    const x = results.get(m.id);
    const by = runtimes.map((r) => x[r].failed[0]).find(Boolean) ?? "";
    lines.push(`| ${m.id} | ${m.file} | ${m.tests.map(shortTest).join(", ")} | ${runtimes.map((r) => `${x[r].result === "MISSED" ? "**MISSED**" : x[r].result} | ${x[r].seconds.toFixed(1)}`).join(" | ")} | ${cell(by)} |`);
  }
  lines.push("", "## What each mutation breaks", "");
  for (const m of selected) lines.push(`- \`${m.id}\`: ${m.why}.`);
  if (missed.length) {
    lines.push("", "## MISSED", "", "No paired test failed with these applied:", "");
    for (const m of missed) lines.push(`- \`${m.id}\` (${m.file}; ${m.tests.join(", ")}): ${m.why}.${m.note ? ` Why the tests miss it: ${m.note}.` : ""}`);
  }
  lines.push("");
  return lines.join("\n");
}
