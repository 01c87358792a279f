// The command line the live fuzzers share (bench/fuzz_server.ts, bench/fuzz_client.ts): which
// runtimes, how long, from which seed, and how to name each runtime's version in a report.
import process from "node:process";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../test/_support/env.ts";

/** What a fuzzer was asked to do. */
export interface FuzzArgs {
  /** --runtimes a,b (or --runtime a); default node,deno,bun. */
  readonly runtimes: string[];
  /** --seconds: how long each run lasts (default 60). */
  readonly seconds: number;
  /** --seed: the first seed (default: from the clock). */
  readonly firstSeed: number;
  /** --cases: at most this many cases (default Infinity). */
  readonly maxCases: number;
  readonly verbose: boolean;
  /** The arguments as given. */
  readonly args: readonly string[];
}

/** Reads the fuzzer's options from `args`; exits 2 on a value that is not a number. */
export function fuzzArgs(args: readonly string[] = process.argv.slice(2)): FuzzArgs {
  const option = (name: string, fallback: string): string => {
    const i = args.findIndex((a) => a === `--${name}`);
    return i < 0 ? fallback : (args[i + 1] ?? fallback);
  };
  const number = (name: string, fallback: number): number => {
    const value = Number(option(name, String(fallback)));
    if (!Number.isFinite(value) && value !== Infinity) {
      console.error(`--${name} needs a number`);
      process.exit(2);
    }
    return value;
  };
  return {
    runtimes: option("runtimes", option("runtime", "node,deno,bun")).split(",").filter(Boolean),
    seconds: number("seconds", 60),
    firstSeed: number("seed", Date.now() % 0x7fff_0000),
    maxCases: number("cases", Infinity),
    verbose: args.includes("--verbose"),
    args,
  };
}

/** The Deno or Bun binary the project installs (devDependencies). */
export function runtimeBin(name: string): string {
  return join(repoRoot, "node_modules", ".bin", name);
}

/** "node 20.20.2", "deno 2.9.6 (…)", "bun 1.4.5": for a report's first line. */
export function runtimeVersion(runtime: string): string {
  if (runtime === "node") return `node ${process.versions.node}`;
  return execFileSync(runtimeBin(runtime), ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim().replace(/^(\d)/, `${runtime} $1`);
}
