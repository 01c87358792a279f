// The live server fuzzer's short slice (#13): a fixed range of seeds from test/_support/fuzz_server.ts
// (the generator and checks `npm run fuzz:server` runs for minutes) against `fcgi serve` on this
// runtime. After every case the server must be alive, answer a fresh /hello within 5 s, and keep
// its RSS within 128 MiB of its post-start baseline.
import { describe, it, setup, after } from "./_support/test.ts";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, runtimeName } from "./_support/env.ts";
import { FUZZ_APP, FUZZ_SERVE_FLAGS, describeServerCase, fuzzServer, makeServerCase, serverCaseKind } from "./_support/fuzz_server.ts";
import { freePort, makeTempDir, removeDir } from "./interop/_servers.ts";

/** Seeds 59..74: 16 cases, every kind among them (records, requests, early close, the four floods), a few seconds per runtime. */
const FIRST_SEED = 59;
const CASES = 16;

describe("fcgi serve under the live fuzzer (a fixed slice of seeds)", () => {
  let dir = "";
  let app = "";
  const ready = setup(() => {
    dir = makeTempDir("fcgi-fuzz-server-");
    app = join(dir, "app.mjs");
    writeFileSync(app, FUZZ_APP);
  });
  after(() => {
    if (dir) removeDir(dir);
  });

  it("the slice covers every kind of case", () => {
    const kinds = new Set(Array.from({ length: CASES }, (_, i) => serverCaseKind(FIRST_SEED + i)));
    assert.deepEqual([...kinds].sort(), ["early-close", "flood-connections", "flood-records", "flood-requests", "flood-values", "records", "requests"]);
  });

  it(`seeds ${FIRST_SEED}..${FIRST_SEED + CASES - 1}: alive, /hello answered and RSS bounded after each`, { timeout: 120_000 }, async () => {
    ready();
    const report = await fuzzServer({
      command: (port) => cliCommand(["serve", app, "--listen", `127.0.0.1:${port}`, ...FUZZ_SERVE_FLAGS]),
      freePort,
      cwd: dir,
      firstSeed: FIRST_SEED,
      maxCases: CASES,
      deadline: Infinity,
    });
    const failure = report.failures[0];
    assert.equal(failure, undefined, failure &&
      `seed ${failure.seed} failed: ${failure.what}\n  case: ${describeServerCase(makeServerCase(failure.seed))}\n` +
      `  replay: npm run fuzz:server -- --runtime ${runtimeName} --seed ${failure.seed} --cases 1 (this server ran seeds ${failure.serverFirstSeed}..${failure.seed})\n` +
      `  server output:\n${failure.serverOutput}`);
    assert.equal(report.cases, CASES);
    assert.deepEqual(report.suspectLines, [], "the server logged what looks like an internal error");
  });
});
