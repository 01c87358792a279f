// The committed src/codec/wasm_module.generated.ts must be exactly what wasm/ compiles to with the
// pinned assemblyscript: rebuilt here in memory (asc's JS API runs on Node, Deno and Bun alike) and
// compared byte for byte, so an edit to wasm/ without `npm run build:wasm` fails the suite.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "./_support/env.ts";
import { WASM_MODULE_BASE64 } from "../src/codec/wasm_module.generated.ts";

interface BuildScript {
  GENERATED_PATH: string;
  generateWasmModule(): Promise<{ wasm: Uint8Array; source: string }>;
}

test("the committed WASM module is what wasm/ compiles to (else run npm run build:wasm)", { timeout: 180_000 }, async () => {
  const script = pathToFileURL(join(repoRoot, "scripts", "build-wasm.mjs")).href;
  const build = (await import(script)) as BuildScript;
  const { wasm, source } = await build.generateWasmModule();
  const committed = readFileSync(join(repoRoot, build.GENERATED_PATH), "utf8");
  // A plain equality check: a diff of two base64 blobs would only bury the message.
  assert.ok(committed === source, `${build.GENERATED_PATH} is stale: run npm run build:wasm and commit the result`);
  // And the module the codec actually loads is that file's.
  const embedded = Uint8Array.from(atob(WASM_MODULE_BASE64), (ch) => ch.charCodeAt(0));
  assert.deepEqual(embedded, Uint8Array.from(wasm));
  assert.ok(WebAssembly.validate(embedded));
});
