// The layer rules are written once, in the README's Layout table; this test reads that table and
// fails when a module imports past it, when a source file lies outside every layer, or when
// anything outside src/runtime/ asks which runtime it is on.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { repoRoot } from "./_support/env.ts";

/** The README's table: each name (`src/app/`, `src/*.ts` for the top files, `mod.ts`) → its row. */
interface Layers {
  /** A name → its row's first name: the names in one row (`src/cli/` and `src/cli.ts`) are one layer. */
  id: Map<string, string>;
  /** A layer → the layers (and single files) it may import. */
  allowed: Map<string, Set<string>>;
}

function parseLayout(readme: string): Layers {
  const start = readme.indexOf("\n## Layout");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 5));
  const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  const rows = section.split("\n").map((line) => line.split("|").map((cell) => cell.trim()))
    .filter((cells) => cells.length >= 5 && cells[1]!.startsWith("`"))
    .map((cells) => ({ layers: names(cells[1]!), allowed: names(cells[3]!) }));
  const id = new Map(rows.flatMap((row) => row.layers.map((name) => [name, row.layers[0]!] as const)));
  const allowed = new Map(rows.map((row) => [row.layers[0]!, new Set(row.allowed.map((name) => id.get(name) ?? name))] as const));
  return { id, allowed };
}

function layerOf(file: string, layers: Layers): string | undefined {
  for (const name of [file, dirname(file) + "/", dirname(file) + "/*.ts"]) {
    const layer = layers.id.get(name);
    if (layer !== undefined) return layer;
  }
  return undefined;
}

// Static imports and re-exports (`import … from`, `export … from`, `import "…"`) and dynamic `import("…")`.
function importsOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [
    ...code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/g),
    ...code.matchAll(/(?:^|\n)\s*import\s*["']([^"']+)["']/g),
    ...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]!);
}

/** Every import of these files that their layers do not allow, as a readable line. */
function breaches(sources: { file: string; text: string }[], layers: Layers): string[] {
  const found: string[] = [];
  for (const { file, text } of sources) {
    const from = layerOf(file, layers);
    if (from === undefined) continue;
    for (const specifier of importsOf(text)) {
      if (!specifier.startsWith(".")) continue; // node:… and the like are the runtime's, not a layer
      // AssemblyScript imports leave out the extension.
      const target = normalize(join(dirname(file), specifier)).replace(/(?<!\.ts)$/, ".ts");
      const to = layerOf(target, layers);
      if (to === from) continue;
      const allowed = layers.allowed.get(from)!;
      if (to === undefined || !(allowed.has(to) || allowed.has(target))) found.push(`${file} imports ${target} (${from} → ${to ?? "no layer"})`);
    }
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  );
}

const layers = parseLayout(readFileSync(join(repoRoot, "README.md"), "utf8"));
const files = ["mod.ts", "node.ts", ...sourceFiles("src"), ...sourceFiles("wasm")];
const sources = files.map((file) => ({ file, text: readFileSync(join(repoRoot, file), "utf8") }));

test("the README's Layout table has a row for each layer", () => {
  for (const name of ["wasm/", "src/*.ts", "src/codec/", "src/protocol/", "src/runtime/", "src/app/", "src/client/", "src/manager/", "src/node/", "src/cli/", "src/cli.ts", "mod.ts", "node.ts"]) {
    assert.ok(layers.id.has(name), `README Layout has no row for ${name}`);
  }
});

test("every source file belongs to a layer of the README's Layout table", () => {
  assert.deepEqual(files.filter((file) => layerOf(file, layers) === undefined), [], "add a row to the README's Layout table for these");
});

test("no module imports a layer its row in the README's Layout table does not allow", () => {
  assert.deepEqual(breaches(sources, layers), []);
});

test("an import across the layers is found: the app importing the client, the codec the protocol, the manager the app", () => {
  const bad = [
    { file: "src/app/x.ts", text: `import type { Client } from "../client/client.ts";\n` },
    { file: "src/codec/x.ts", text: `export { Role } from "../protocol/constants.ts";\n` },
    { file: "src/runtime/x.ts", text: `const m = await import("../app/serve.ts");\n` },
    { file: "src/protocol/x.ts", text: `import { concatBytes } from "../bytes.ts";\nimport { decodeLatin1 } from "../codec/latin1.ts";\n` },
    { file: "src/manager/x.ts", text: `import { serve } from "../app/serve.ts";\n` },
  ];
  assert.deepEqual(breaches(bad, layers), [
    "src/app/x.ts imports src/client/client.ts (src/app/ → src/client/)",
    "src/codec/x.ts imports src/protocol/constants.ts (src/codec/ → src/protocol/)",
    "src/runtime/x.ts imports src/app/serve.ts (src/runtime/ → src/app/)",
    "src/manager/x.ts imports src/app/serve.ts (src/manager/ → src/app/)",
  ]);
});

test("the allowed imports between layers form no cycle, so no two folders import each other", () => {
  const done = new Set<string>();
  const visit = (layer: string, path: string[]): void => {
    if (done.has(layer)) return;
    assert.ok(!path.includes(layer), `layer cycle: ${[...path, layer].join(" → ")}`);
    for (const next of layers.allowed.get(layer) ?? []) visit(next, [...path, layer]);
    done.add(layer);
  };
  for (const layer of layers.allowed.keys()) visit(layer, []);
});

test("only src/runtime/ asks which runtime it is on", () => {
  const asks = /typeof\s+(?:Deno|Bun)\b|globalThis\.(?:Deno|Bun)\b|process\.(?:versions|release|env)\b|navigator\.userAgent/;
  const found = sources
    .filter(({ file }) => file.startsWith("src/") && !file.startsWith("src/runtime/"))
    .filter(({ text }) => asks.test(text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "")))
    .map(({ file }) => file);
  assert.deepEqual(found, []);
});

test("the import scanner sees static, re-export, side-effect and dynamic imports, and skips comments", () => {
  const text = `import { a } from "./a.ts";\nimport type {\n  B,\n} from "../b.ts";\nexport { c } from "./c.ts";\nimport "./d.ts";\nconst e = await import("./e.ts");\n// import { f } from "./f.ts";\n/* import { g } from "./g.ts"; */\n`;
  assert.deepEqual(importsOf(text).sort(), ["../b.ts", "./a.ts", "./c.ts", "./d.ts", "./e.ts"]);
});
