// fcgi serve started by the real spawn-fcgi (Debian: spawn-fcgi), the classic FastCGI spawner: it
// opens the socket and starts the app with it on fd 0. One process on loopback TCP (-n: spawn-fcgi
// execs in place, so this test sees the exit status), and four children sharing one Unix socket
// (-F 4) behind real nginx (examples/nginx.conf): several of them serve, and SIGTERM ends each cleanly.
import { after, describe, it } from "../_support/test.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, sourcePath } from "../_support/env.ts";
import { within } from "../_support/poll.ts";
import { fcgiRequest, httpParams, parseCgi } from "../_support/records.ts";
import {
  canConnect,
  fetchWithin,
  findBinary,
  freePort,
  isRunning,
  makeTempDir,
  mustHave,
  removeDir,
  renderExample,
  type Service,
  spawnWatched,
  startNginx,
  waitFor,
  webServerBinary,
} from "./_servers.ts";

const spawnFcgi = webServerBinary("spawn-fcgi", findBinary("spawn-fcgi"));
const nginxBinary = webServerBinary("nginx");
const APP = sourcePath("test/interop/spawner_app.ts");

describe("fcgi serve under spawn-fcgi", { skip: spawnFcgi.skip || nginxBinary.skip }, () => {
  const dir = makeTempDir("fcgi-spawn-fcgi-");
  const services: Service[] = [];
  const children: number[] = [];
  after(async () => {
    for (const service of services) await service.stop();
    for (const pid of children) if (isRunning(pid)) process.kill(pid, "SIGKILL");
    removeDir(dir);
  });

  it("serves one process on loopback TCP (-p -a) and exits 0 on SIGTERM", { timeout: 40_000 }, async () => {
    const binary = mustHave(spawnFcgi.path, "spawn-fcgi");
    const port = await freePort();
    const [command, args] = cliCommand(["serve", APP]);
    const watched = spawnWatched(binary, ["-n", "-a", "127.0.0.1", "-p", String(port), "--", command, ...args]);
    try {
      // The socket exists before the app runs; the first request waits in the backlog until it accepts.
      await waitFor("spawn-fcgi to listen", () => canConnect(`127.0.0.1:${port}`), 20_000);
      const response = parseCgi((await fcgiRequest(port, { params: httpParams("/tcp") }, 20_000)).stdout);
      assert.equal(response.status, 200, watched.output());
      assert.equal(JSON.parse(response.text).pid, watched.pid, "spawn-fcgi -n execs the app: its pid answers");
      await waitFor("the listening line", () => /fcgi: listening on 127\.0\.0\.1:\d+/.test(watched.output()), 5000);
      process.kill(watched.pid, "SIGTERM");
      const end = await within(watched.exited, 15_000, "fcgi serve to exit after SIGTERM");
      assert.deepEqual(end, { code: 0, signal: null }, watched.output());
      assert.match(watched.output(), /fcgi: stopped/);
    } finally {
      watched.kill();
    }
  });

  it("-F 4: four children on one Unix socket behind nginx; several serve, and SIGTERM ends each cleanly", { timeout: 60_000 }, async () => {
    const binary = mustHave(spawnFcgi.path, "spawn-fcgi");
    const socket = join(dir, "app.sock");
    const log = join(dir, "children.log");
    const [command, args] = cliCommand(["serve", APP]);
    // spawn-fcgi detaches its children from its stdout and stderr: each appends its stderr to a
    // file through sh, which execs the app (same pid), so the test can read how each one stopped.
    const started = spawnWatched(binary, ["-s", socket, "-F", "4", "--", "/bin/sh", "-c", `exec "$0" "$@" 2>>'${log}'`, command, ...args]);
    const end = await within(started.exited, 20_000, "spawn-fcgi to start its children");
    for (const m of started.output().matchAll(/child spawned successfully: PID: (\d+)/g)) children.push(Number(m[1]));
    assert.equal(end.code, 0, started.output());
    assert.equal(children.length, 4, started.output());

    const port = await freePort();
    const site = renderExample("nginx.conf", [
      ["server 127.0.0.1:9000;", `server unix:${socket};`],
      ["listen 8080;", `listen 127.0.0.1:${port};`],
    ]);
    const nginx = await startNginx(mustHave(nginxBinary.path, "nginx"), dir, site, [port]);
    services.push(nginx);
    const logs = () => `${started.output()}\n--- children\n${readText(log)}\n--- nginx\n${nginx.logs()}`;

    // All four must listen before the requests (a child still loading its module serves none) and
    // before SIGTERM (one still loading has no handler yet and dies of it).
    await waitFor("all four children to listen", () => count(readText(log), /fcgi: listening on fd:0/g) === 4, 20_000);

    // Concurrent requests, in bounded rounds, until at least two of the children have answered.
    const servedBy = new Set<number>();
    let requests = 0;
    for (let round = 0; round < 10 && servedBy.size < 2; round++) {
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => fetchWithin(`${nginx.urls[0]}/r${round}-${i}`, {}, 20_000)));
      for (const answer of answers) {
        assert.equal(answer.status, 200, `${answer.text}\n${logs()}`);
        servedBy.add(JSON.parse(answer.text).pid);
        requests++;
      }
    }
    assert.ok(servedBy.size >= 2, `only pid(s) ${[...servedBy]} answered ${requests} requests\n${logs()}`);
    for (const pid of servedBy) assert.ok(children.includes(pid), `pid ${pid} is not one of spawn-fcgi's children ${children}`);

    for (const pid of children) process.kill(pid, "SIGTERM");
    await waitFor("every child to exit after SIGTERM", () => children.every((pid) => !isRunning(pid)), 15_000);
    const text = readText(log);
    assert.equal(count(text, /fcgi: listening on fd:0/g), 4, text);
    assert.equal(count(text, /fcgi: SIGTERM: closing/g), 4, text);
    assert.equal(count(text, /fcgi: stopped/g), 4, `each child closes gracefully and exits 0\n${text}`);
  });
});

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(pattern)].length;
}
