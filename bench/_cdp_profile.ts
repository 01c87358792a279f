// A V8 CPU profile of a process started with --inspect, over the Chrome DevTools Protocol: Deno
// has no --cpu-prof, and this profiles only the window a bench measures. Runs on Deno (or any
// runtime with a global WebSocket):
//   deno run -A bench/_cdp_profile.ts HOST:PORT MILLISECONDS OUT.cpuprofile
import { writeFileSync } from "node:fs";
import process from "node:process";

const [inspector, ms, out] = process.argv.slice(2);
if (!inspector || !ms || !out) throw new Error("usage: _cdp_profile.ts HOST:PORT MILLISECONDS OUT.cpuprofile");
const targets = await (await fetch(`http://${inspector}/json/list`)).json() as { webSocketDebuggerUrl: string }[];
const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  socket.onopen = resolve;
  socket.onerror = reject;
});
let id = 0;
const waiting = new Map<number, (result: unknown) => void>();
socket.onmessage = (event) => {
  const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
  if (message.id !== undefined) waiting.get(message.id)?.(message.result);
};
const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
  new Promise((resolve) => {
    waiting.set(++id, resolve);
    socket.send(JSON.stringify({ id, method, params }));
  });
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 1000 });
await call("Profiler.start");
console.error("profiling");
await new Promise((resolve) => setTimeout(resolve, Number(ms)));
const { profile } = await call("Profiler.stop") as { profile: unknown };
writeFileSync(out, JSON.stringify(profile));
socket.close();
