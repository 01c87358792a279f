// wrk, run asynchronously so the harness keeps draining its servers' output pipes meanwhile, and
// the few helpers every bench script shares (its options, medians, the versions it reports).
import { spawn, spawnSync } from "node:child_process";

/** The value of `--name VALUE` on the command line, or `fallback`. */
export function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The first line a program prints for its version flag, for the record of a run. */
export function version(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] || "unknown";
}

/** What one wrk run measured. */
export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  /** Non-2xx answers and socket errors: a run with any is not a fair number. */
  errors: string[];
}

/** One wrk thread, `connections` connections for `seconds`; `script` is a Lua file (-s). Killed if it overruns. */
export function wrk(url: string, connections: number, seconds: number, options: { script?: string; timeout?: string } = {}): Promise<WrkResult> {
  const args = ["-t", "1", "-c", String(connections), "-d", `${seconds}s`, "--timeout", options.timeout ?? "30s"];
  if (options.script) args.push("-s", options.script);
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", [...args, url], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 60) * 1000);
    child.once("error", reject);
    child.once("close", () => {
      clearTimeout(timer);
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      const total = /(\d+) requests in/.exec(out);
      if (!rps || !total) return reject(new Error(`wrk printed no Requests/sec:\n${out}`));
      const errors: string[] = [];
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      if (non2xx) errors.push(`${non2xx[1]} non-2xx answers from ${url}`);
      const socketErrors = /Socket errors: (.*)/.exec(out);
      if (socketErrors) errors.push(`socket errors from ${url}: ${socketErrors[1]}`);
      resolve({ requestsPerSecond: Number(rps[1]), requests: Number(total[1]), errors });
    });
  });
}
