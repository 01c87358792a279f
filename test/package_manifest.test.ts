// The npm and JSR manifests describe one package: same version, same entry points.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./_support/env.ts";
import { VERSION } from "../src/cli.ts";

const npm = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
const jsr = JSON.parse(readFileSync(join(repoRoot, "deno.json"), "utf8"));

test("package.json and deno.json export the same entry points", () => {
  const npmEntries = Object.keys(npm.exports).filter((k) => k !== "./package.json").sort();
  assert.deepEqual(npmEntries, Object.keys(jsr.exports).sort());
  for (const [entry, source] of Object.entries<string>(jsr.exports)) {
    const compiled = "./dist/" + source.replace(/^\.\//, "").replace(/\.ts$/, "");
    assert.equal(npm.exports[entry].default, compiled + ".js", `npm ${entry} default`);
    assert.equal(npm.exports[entry].types, compiled + ".d.ts", `npm ${entry} types`);
    assert.equal(Object.keys(npm.exports[entry])[0], "types", `npm ${entry}: types must come first`);
  }
});

test("the npm bin is the compiled CLI of the JSR ./cli export", () => {
  assert.equal(npm.bin.fcgi, npm.exports["./cli"].default);
});

test("npm, JSR and the CLI report one version", () => {
  assert.equal(npm.version, jsr.version);
  assert.equal(VERSION, npm.version);
});

test("the package has no runtime dependencies", () => {
  assert.equal(npm.dependencies, undefined);
  assert.equal(jsr.imports, undefined);
});
