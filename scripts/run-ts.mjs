#!/usr/bin/env node
// Runs one of the project's TypeScript entry points with the machine's Node: straight from source
// where Node strips types itself (>= 22.18), else from the compiled copy in dist/ (built on demand).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [entry, ...args] = process.argv.slice(2);
const [major, minor] = process.versions.node.split(".").map(Number);
const stripsTypes = major > 22 || (major === 22 && minor >= 18);
let file = join(root, entry);
if (!stripsTypes) {
  file = join(root, "dist", entry.replace(/\.ts$/, ".js"));
  if (!existsSync(file)) {
    const b = spawnSync(process.execPath, [join(root, "scripts", "build.mjs")], { stdio: "inherit" });
    if (b.status !== 0) process.exit(b.status ?? 1);
  }
}
const r = spawnSync(process.execPath, [file, ...args], { stdio: "inherit" });
process.exit(r.status ?? (r.signal ? 1 : 0));
