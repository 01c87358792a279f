#!/usr/bin/env node
// Compiles the TypeScript sources to dist/ (JS + .d.ts) so Node 20 can run them, then marks the CLI executable.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { cwd: root, stdio: "inherit" });
const cli = join(root, "dist", "src", "cli.js");
if (existsSync(cli)) chmodSync(cli, 0o755);
// tsc emits even when it reports type errors; the exit code still says so.
process.exit(r.status ?? 1);
