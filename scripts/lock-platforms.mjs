#!/usr/bin/env node
// The npm registry this project installs from has only the Linux x64 build of Deno's platform
// packages, so `npm install` leaves Deno's other optional platform packages out of
// package-lock.json, and `npm ci` then refuses the lock as out of sync. This adds lock entries for
// them (platform-gated, never fetched on Linux x64). Run it after any `npm install` that rewrites
// the lock: node scripts/lock-platforms.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const path = join(dirname(fileURLToPath(import.meta.url)), "..", "package-lock.json");
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;
let added = 0;
for (const [key, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const at = `node_modules/${name}`;
    if (packages[at]) continue;
    const [os, cpu] = name.split("/")[1].split("-");
    packages[at] = { version, cpu: [cpu], dev: entry.dev ?? false, license: entry.license, optional: true, os: [os] };
    added++;
    console.log(`locked ${name}@${version} (${os}/${cpu}) for ${key}`);
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)));
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`${added} entries added`);
