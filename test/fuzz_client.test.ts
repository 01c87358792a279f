// The hostile-backend fuzzer's short slice (#11): a fixed range of seeds from test/_support/fuzz_client.ts
// (the cases `npm run fuzz:client` runs for minutes) against fcgi's Client on this runtime, with the
// fake backend of test/_support/hostile_backend.ts in the same process. Every request must fail
// only with a FastCGIError, end within its timeouts, and never carry another request's bytes; after
// every case a fresh request succeeds, close() resolves and the RSS stays bounded.
import { describe, it } from "./_support/test.ts";
import assert from "node:assert/strict";
import { runtimeName } from "./_support/env.ts";
import { clientCaseKind, fuzzClient, makeClientCase } from "./_support/fuzz_client.ts";

/** Seeds 40..47: 8 cases, clean and hostile, every kind of answer among their requests, one stall. */
const FIRST_SEED = 40;
const CASES = 8;
const ANSWER_KINDS = [
  "bad-head", "close", "giant-body", "giant-head", "oracle", "random-records", "refuse", "reset", "split", "stall", "stderr-flood", "truncate", "unknown-ids", "valid", "wrong-id",
];

describe("Client against the hostile-backend fuzzer (a fixed slice of seeds)", () => {
  it("the slice covers both kinds of case and every kind of answer", () => {
    const seeds = Array.from({ length: CASES }, (_, i) => FIRST_SEED + i);
    assert.deepEqual([...new Set(seeds.map(clientCaseKind))].sort(), ["clean", "hostile"]);
    const kinds = new Set(seeds.flatMap((seed) => makeClientCase(seed).requests.map((r) => r.plan.kind)));
    assert.deepEqual([...kinds].sort(), ANSWER_KINDS);
  });

  it(`seeds ${FIRST_SEED}..${FIRST_SEED + CASES - 1}: typed errors only, no hang, no crossed bytes, healthy after each`, { timeout: 120_000 }, async () => {
    const report = await fuzzClient({ firstSeed: FIRST_SEED, maxCases: CASES, deadline: Infinity });
    const failure = report.failures[0];
    assert.equal(failure, undefined, failure &&
      `seed ${failure.seed} failed:\n  ${failure.what.split("\n").join("\n  ")}\n  case: ${failure.case}\n` +
      `  replay: npm run fuzz:client -- --runtime ${runtimeName} --seed ${failure.seed} --cases 1`);
    assert.equal(report.cases, CASES);
  });
});
