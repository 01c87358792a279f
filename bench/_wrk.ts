// wrk, run asynchronously so the harness keeps draining its servers' output pipes meanwhile.
// Shared by bench/nginx.ts and bench/proxy.ts.
import { spawn } from "node:child_process";

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
