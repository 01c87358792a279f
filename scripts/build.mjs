#!/usr/bin/env node
// Compiles the TypeScript sources to dist/ (JS + .d.ts) so Node 20 can run them, then marks the CLI
// executable. It builds into a fresh folder and swaps it in, so a test run reading dist/ meanwhile
// never sees it half-written and nothing stale from deleted sources survives.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, renameSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const fresh = join(root, `.dist-${process.pid}`);
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", fresh], { cwd: root, stdio: "inherit" });
const cli = join(fresh, "src", "cli.js");
if (existsSync(cli)) chmodSync(cli, 0o755);
if (existsSync(fresh)) {
  const old = join(root, `.dist-old-${process.pid}`);
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(fresh, dist);
  rmSync(old, { recursive: true, force: true });
}
// tsc emits even when it reports type errors; the exit code still says so.
process.exit(r.status ?? 1);
