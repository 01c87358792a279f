#!/usr/bin/env node
// Packs the npm tarball, installs it into an empty directory and imports it there with this Node
// (Node 20 in CI): the shipped package must work without TypeScript support or a build step.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "fcgi-pack-"));
try {
  const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], root))[0];
  console.log(`packed ${packed.filename}: ${packed.entryCount} files, ${packed.size} bytes`);
  const leaked = packed.files.map((f) => f.path).filter((p) => /^(test|bench|wasm|src|examples)\/|dist\/(test|bench|examples)\//.test(p));
  if (leaked.length) throw new Error(`the tarball ships files it should not: ${leaked.join(", ")}`);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "pack-check", private: true, type: "module" }));
  npm(["install", "--no-audit", "--no-fund", "--offline", join(dir, packed.filename)], dir);
  const script = `const m = await import("fcgi"); const keys = Object.keys(m);
    if (!keys.includes("FastCGIError")) throw new Error("missing exports: " + keys.join(","));
    await import("fcgi/cli");
    const node = await import("fcgi/node");
    if (typeof node.createServer !== "function") throw new Error("fcgi/node has no createServer");
    console.log("import('fcgi') works on node " + process.version + ": " + keys.length + " exports");`;
  console.log(execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: dir, encoding: "utf8" }).trim());
  console.log(execFileSync(join(dir, "node_modules", ".bin", "fcgi"), ["--version"], { cwd: dir, encoding: "utf8" }).trim());
} finally {
  rmSync(dir, { recursive: true, force: true });
}
