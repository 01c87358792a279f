// systemd socket activation: `fcgi serve` without --listen takes the sockets systemd passes from
// fd 3 (LISTEN_FDS, LISTEN_PID) and removes those variables, as sd_listen_fds(unset=1) does. The
// real systemd-socket-activate (Debian: systemd) plays systemd, with the ExecStart line and the
// ListenStream of examples/fcgi.service and examples/fcgi.socket, on loopback TCP and a Unix socket.
import { after, describe, it } from "../_support/test.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { cliCommand, sourcePath, startCli } from "../_support/env.ts";
import { within } from "../_support/poll.ts";
import { fcgiRequest, httpParams, parseCgi, type Target } from "../_support/records.ts";
import {
  canConnect,
  findSystemdSocketActivate,
  freePort,
  isRunning,
  makeTempDir,
  mustHave,
  removeDir,
  renderExample,
  spawnWatched,
  waitFor,
  webServerBinary,
} from "./_servers.ts";

const activator = webServerBinary("systemd-socket-activate", findSystemdSocketActivate());
const APP = sourcePath("test/interop/spawner_app.ts");
/** What examples/fcgi.service runs, replaced by this runtime's `fcgi serve` of the test app. */
const EXAMPLE_COMMAND = "/usr/bin/node node_modules/fcgi/dist/src/cli.js serve app.js";

/** The ExecStart of examples/fcgi.service as argv, serving the test app; `single` drops its --workers. */
function execStart(single: boolean): string[] {
  const [command, args] = cliCommand(["serve", APP]);
  const unit = renderExample("fcgi.service", [[EXAMPLE_COMMAND, "@COMMAND@"]]);
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="));
  assert.ok(line, "examples/fcgi.service has no ExecStart= line");
  let rest = line.slice("ExecStart=".length).replace("@COMMAND@", "").trim().split(/\s+/).filter(Boolean);
  assert.ok(rest.includes("--workers"), "the example unit runs a pool");
  if (single) rest = rest.filter((word, i) => word !== "--workers" && rest[i - 1] !== "--workers");
  return [command, ...args, ...rest];
}

/** The ListenStream of examples/fcgi.socket, moved to `listen` (the test's loopback address or socket path). */
function listenStream(listen: string): string {
  const unit = renderExample("fcgi.socket", [["ListenStream=/run/fcgi-app.sock", `ListenStream=${listen}`]]);
  return unit.split("\n").find((l) => l.startsWith("ListenStream="))!.slice("ListenStream=".length);
}

async function request(target: Target): Promise<{ pid: number; listenFds: string | null; listenPid: string | null }> {
  const result = await fcgiRequest(target, { params: httpParams("/activated") }, 20_000);
  const response = parseCgi(result.stdout);
  assert.equal(response.status, 200, response.text);
  return JSON.parse(response.text);
}

describe("fcgi serve under systemd socket activation (systemd-socket-activate)", { skip: activator.skip }, () => {
  const dir = makeTempDir("fcgi-systemd-");
  after(() => removeDir(dir));

  for (const [transport, single] of [["tcp", true], ["unix", true], ["tcp", false], ["unix", false]] as const) {
    const how = single ? "one process" : "the unit's pool (--workers 2)";
    it(`${how} serves on the ${transport === "tcp" ? "loopback TCP" : "Unix"} socket systemd passes as fd 3, and exits 0 on SIGTERM`, { timeout: 45_000 }, async () => {
      const binary = mustHave(activator.path, "systemd-socket-activate");
      const address = transport === "tcp" ? `127.0.0.1:${await freePort()}` : join(dir, `app-${single}.sock`);
      const argv = execStart(single);
      const watched = spawnWatched(binary, ["-l", listenStream(address), "--", ...argv]);
      try {
        await waitFor("systemd-socket-activate to listen", () => canConnect(address), 20_000);
        // The connection above made systemd-socket-activate start the app; requests wait in the backlog meanwhile.
        const target: Target = transport === "tcp" ? Number(address.split(":")[1]) : { path: address };
        const first = await request(target);
        const second = await request(target);
        assert.equal(first.listenFds, null, "LISTEN_FDS is removed once fcgi serve took the sockets");
        assert.equal(first.listenPid, null, "LISTEN_PID is removed too");
        if (single) {
          // systemd-socket-activate execs the app: the pid it started is the one that answers.
          assert.equal(first.pid, watched.pid, watched.output());
          assert.equal(second.pid, watched.pid);
          assert.match(watched.output(), transport === "tcp" ? new RegExp(`fcgi: listening on ${address.replace(/\./g, "\\.")}`) : /fcgi: listening on fd:3\b/);
        } else {
          // The manager took fd 3 and handed it to its workers: a worker answers, never the manager.
          assert.notEqual(first.pid, watched.pid, watched.output());
          assert.match(watched.output(), /fcgi manager: pid \d+, 2 workers on the inherited socket fd:3\b/);
          assert.equal((watched.output().match(/started worker \d+ \(pid \d+\)/g) ?? []).length >= 2, true, watched.output());
        }
        process.kill(watched.pid, "SIGTERM");
        const end = await within(watched.exited, 15_000, "fcgi serve to exit after SIGTERM");
        assert.deepEqual(end, { code: 0, signal: null }, watched.output());
        assert.match(watched.output(), /fcgi: stopped/);
        await waitFor("every process that answered to end", () => !isRunning(first.pid) && !isRunning(second.pid), 5000);
      } finally {
        watched.kill();
      }
    });
  }

  it("leaves LISTEN_FDS alone when LISTEN_PID names another process, and uses fd 0 as before", { timeout: 30_000 }, async () => {
    const [command, args] = cliCommand(["serve", APP]);
    // fd 3 is not open here: taking LISTEN_FDS would fail on it; fd 0 (no socket either) gives the fd 0 error.
    const watched = spawnWatched(command, args, { LISTEN_FDS: "1", LISTEN_PID: "1" });
    try {
      const end = await within(watched.exited, 20_000, "fcgi serve to exit");
      assert.equal(end.code, 1, watched.output());
      assert.match(watched.output(), /file descriptor 0 is not a listening socket/);
    } finally {
      watched.kill();
    }
  });

  it("refuses a LISTEN_FDS that is not a count, when LISTEN_PID is its own", { timeout: 30_000 }, async () => {
    // Through sh, so that LISTEN_PID can name the very process that runs fcgi serve ($$ survives exec).
    const [command, args] = cliCommand(["serve", APP]);
    const script = `LISTEN_PID=$$ LISTEN_FDS=many exec "$@"`;
    const watched = spawnWatched("/bin/sh", ["-c", script, "sh", command, ...args]);
    try {
      const end = await within(watched.exited, 20_000, "fcgi serve to exit");
      assert.notEqual(end.code, 0, watched.output());
      assert.match(watched.output(), /LISTEN_FDS="many" is not a number of sockets/);
    } finally {
      watched.kill();
    }
  });
});
