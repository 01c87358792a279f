// Differential fuzzer: runs seeded random cases (test/oracle/cases.ts, "fuzz" profile: bigger
// streams, more records, 64 KiB contents, large pair values) against the WASM codec and the oracle
// until time runs out, and stops at the first divergence with the seed and a shrunk case.
//
//   node scripts/run-ts.mjs bench/fuzz.ts [--seconds 60] [--seed S]   (npm run fuzz)
//   npx deno run -A bench/fuzz.ts [--seconds N] [--seed S]
//   npx bun bench/fuzz.ts [--seconds N] [--seed S]
//
// Without --seed it starts from a time-based seed, so every run explores new cases; the seed range
// it covered is printed, and any single case replays with --seed S --cases 1.
import process from "node:process";
import { RecordDecoder } from "../src/codec/decoder.ts";
import { PairDecoder } from "../src/codec/pairs.ts";
import { type Case, type CodecImpl, type Profile, checkCase, describeCase, makeCase, shrinkCase } from "../test/oracle/cases.ts";

const wasm: CodecImpl = {
  name: "wasm",
  newRecordDecoder: () => new RecordDecoder(),
  newPairDecoder: (limits) => new PairDecoder(limits),
};

function option(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isFinite(value)) {
    console.error(`--${name} needs a number`);
    process.exit(2);
  }
  return value;
}

const seconds = option("seconds", 60);
const firstSeed = option("seed", Date.now() % 0x7fff_0000);
const maxCases = option("cases", Infinity);
// Most cases use the big "fuzz" profile; every fourth the small "test" one, which cuts finer.
const profileOf = (seed: number): Profile => (seed % 4 === 3 ? "test" : "fuzz");

const started = Date.now();
const deadline = started + seconds * 1000;
const kinds: Record<string, number> = {};
let seed = firstSeed;
let lastReport = started;
console.log(`fuzz: WASM codec vs oracle for ${seconds} s from seed ${firstSeed}`);

function fail(c: Case, what: string): never {
  console.log(`\nDIVERGENCE at seed ${seed} (profile ${profileOf(seed)}); replay: --seed ${seed} --cases 1`);
  console.log(what);
  console.log(`seeds ${firstSeed}..${seed - 1} agreed before it`);
  console.log(`case (shrunk where possible): ${describeCase(c)}`);
  process.exit(1);
}

while (Date.now() < deadline && seed - firstSeed < maxCases) {
  const c = makeCase(seed, profileOf(seed));
  kinds[c.kind] = (kinds[c.kind] ?? 0) + 1;
  let diff: string | undefined;
  try {
    diff = checkCase(c, wasm);
  } catch (e) {
    // checkCase catches the WASM side's exceptions; this one came from the oracle or the harness.
    fail(c, `the oracle or the harness threw: ${e instanceof Error ? e.stack : String(e)}`);
  }
  if (diff !== undefined) {
    const small = shrinkCase(c, wasm);
    fail(small, checkCase(small, wasm) ?? diff);
  }
  seed++;
  const now = Date.now();
  if (now - lastReport >= 5000) {
    lastReport = now;
    const done = seed - firstSeed;
    console.log(`  ${((now - started) / 1000).toFixed(0)} s: ${done} cases (${Math.round(done / ((now - started) / 1000))}/s), at seed ${seed}`);
  }
}

const elapsed = (Date.now() - started) / 1000;
console.log(`fuzz: seeds ${firstSeed}..${seed - 1} (${seed - firstSeed} cases: ${JSON.stringify(kinds)}) in ${elapsed.toFixed(1)} s, no divergence`);
