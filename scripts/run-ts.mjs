#!/usr/bin/env node
// Runs one of the project's TypeScript entry points with the machine's Node: straight from source
// where Node strips types itself (>= 22.18), else from the compiled copy in dist/, rebuilt first
// when any source is newer than it. SIGINT and SIGTERM are passed on to the program.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [entry, ...args] = process.argv.slice(2);
const [major, minor] = process.versions.node.split(".").map(Number);
const stripsTypes = major > 22 || (major === 22 && minor >= 18);

function newestSource(dir, newest = 0) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = newestSource(path, newest);
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

let file = join(root, entry);
if (!stripsTypes) {
  file = join(root, "dist", entry.replace(/\.ts$/, ".js"));
  const stamp = join(root, "dist", "mod.js");
  const sources = Math.max(statSync(join(root, "mod.ts")).mtimeMs, ...["src", "examples", "bench", "test"].map((d) => newestSource(join(root, d))));
  if (!existsSync(file) || !existsSync(stamp) || statSync(stamp).mtimeMs < sources) {
    const b = spawnSync(process.execPath, [join(root, "scripts", "build.mjs")], { stdio: "inherit" });
    if (!existsSync(file)) process.exit(b.status || 1);
  }
}
// The program gets its own process group, so a Ctrl-C reaches it once, through us, not twice
// (a second SIGINT means "stop now" to fcgi's commands).
const child = spawn(process.execPath, [file, ...args], { stdio: "inherit", detached: true });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
