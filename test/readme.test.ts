// The README shows the web server configs the interop tests use; they must not drift apart.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./_support/env.ts";

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

for (const name of ["nginx.conf", "apache.conf", "apache-authnz.conf", "lighttpd.conf"]) {
  test(`the README shows examples/${name} as it is`, () => {
    const config = readFileSync(join(repoRoot, "examples", name), "utf8").trimEnd();
    assert.ok(readme.includes("```" + name.replace(/(-authnz)?\.conf$/, "") + "\n" + config + "\n```"), `README block for ${name} differs from examples/${name}`);
  });
}

test("the README starts with the demo command and the test command", () => {
  const firstBlock = readme.slice(readme.indexOf("```sh"), readme.indexOf("```", readme.indexOf("```sh") + 5));
  assert.match(firstBlock, /npm install && npm run server/);
  assert.match(firstBlock, /npm test/);
});
