// node:test as every test file here uses it, with what the three runners do not agree on made explicit:
// - A timeout on every test. Deno and Bun ignore a describe()'s `timeout` and apply only their own
//   (or none); a timeout given to each test is honoured by all three.
// - `setup()`: a before() whose failure each test of the suite reports on its own. Bun counts the
//   tests of a suite whose before() threw as passed; a test that first checks the setup cannot pass.
// - `skipUnless()`: a skip with its reason, decided when the test is declared (Deno counts a
//   `t.skip()` inside a test as a pass), and never a skip in CI, where every dependency must be there.
import * as nodeTest from "node:test";
import { inCI } from "./env.ts";

/** What a test gets when none is given: generous for a shared 2-core machine, short enough to catch a hang. */
export const TEST_TIMEOUT_MS = 30_000;

type TestFn = (context: nodeTest.TestContext) => unknown;
type TestOptions = nodeTest.TestOptions;

function declare(register: (name: string, options: TestOptions, fn: TestFn) => unknown, name: string, a?: TestOptions | TestFn, b?: TestFn): void {
  const [options, fn] = typeof a === "function" ? [{}, a] : [a ?? {}, b!];
  register(name, { timeout: TEST_TIMEOUT_MS, ...options }, fn);
}

/** node:test's `test`, with a timeout unless the options give one. */
export function test(name: string, options: TestOptions, fn: TestFn): void;
export function test(name: string, fn: TestFn): void;
export function test(name: string, a: TestOptions | TestFn, b?: TestFn): void {
  declare(nodeTest.test as never, name, a, b);
}

/** node:test's `it`, with a timeout unless the options give one. */
export function it(name: string, options: TestOptions, fn: TestFn): void;
export function it(name: string, fn: TestFn): void;
export function it(name: string, a: TestOptions | TestFn, b?: TestFn): void {
  declare(nodeTest.it as never, name, a, b);
}

/** node:test's `describe`. Its `timeout` is not honoured by Deno and Bun: give each test its own. */
export function describe(name: string, options: { skip?: string | boolean }, fn: () => void): void;
export function describe(name: string, fn: () => void): void;
export function describe(name: string, a: { skip?: string | boolean } | (() => void), b?: () => void): void {
  if (typeof a === "function") nodeTest.describe(name, a);
  else nodeTest.describe(name, a, b!);
}

export { after, afterEach, before, beforeEach } from "node:test";

/**
 * A before() for a suite whose tests all need what it starts. Returns a check that each test calls
 * first: it throws the setup's error when the setup failed or never ran, so every test fails on its
 * own, on every runner.
 */
export function setup(start: () => Promise<void> | void): () => void {
  let state: { ok: true } | { ok: false; error: unknown } = { ok: false, error: new Error("the suite's setup did not run") };
  nodeTest.before(async () => {
    try {
      await start();
      state = { ok: true };
    } catch (error) {
      state = { ok: false, error };
      throw error;
    }
  });
  return () => {
    if (!state.ok) throw new Error(`the suite's setup failed: ${(state.error as Error)?.stack ?? state.error}`);
  };
}

/**
 * The `skip` option of a test that needs something this machine may lack: the reason when `present`
 * is false outside CI, false otherwise. In CI the test runs, and must fail itself when the thing is
 * missing (see {@link requirePresent}).
 */
export function skipUnless(present: boolean, reason: string): string | false {
  return present || inCI ? false : `${reason} (skipped outside CI)`;
}

/** Fails the running test when `present` is false: in CI a missing dependency is a failure, never a pass. */
export function requirePresent(present: boolean, reason: string): void {
  if (!present) throw new Error(`${reason}; CI must run this test`);
}
