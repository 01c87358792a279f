// The README shows the web server configs the interop tests use; they must not drift apart.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./_support/env.ts";

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

// Each example file the interop tests run, and the language its README block is marked with.
const shown: Record<string, string> = {
  "nginx.conf": "nginx",
  "nginx-status.conf": "nginx",
  "prometheus.yml": "yaml",
  "apache.conf": "apache",
  "apache-authnz.conf": "apache",
  "lighttpd.conf": "lighttpd",
  "caddy.conf": "caddyfile",
  "h2o.conf": "yaml",
  "haproxy.conf": "haproxy",
  "nginx-upstream.conf": "nginx",
  "haproxy-hosts.conf": "haproxy",
  "haproxy-tls.conf": "haproxy",
  "fcgid.conf": "apache",
  "fcgid.htaccess": "apache",
  "app.fcgi": "sh",
  "fcgi.socket": "ini",
  "fcgi.service": "ini",
};
for (const [name, language] of Object.entries(shown)) {
  test(`the README shows examples/${name} as it is`, () => {
    const config = readFileSync(join(repoRoot, "examples", name), "utf8").trimEnd();
    assert.ok(readme.includes("```" + language + "\n" + config + "\n```"), `README block for ${name} differs from examples/${name}`);
  });
}

test("the README starts with the demo command and the test command", () => {
  const firstBlock = readme.slice(readme.indexOf("```sh"), readme.indexOf("```", readme.indexOf("```sh") + 5));
  assert.match(firstBlock, /npm install && npm run server/);
  assert.match(firstBlock, /npm test/);
});
