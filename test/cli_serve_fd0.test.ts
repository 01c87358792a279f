// The classic FastCGI start: the web server (or spawn-fcgi) opens the listening socket and starts
// the application with it on file descriptor 0. A small python3 wrapper plays spawn-fcgi here.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cliCommand, inCI, repoRoot, sourcePath } from "./_support/env.ts";
import { fcgiRequest, httpParams, parseCgi } from "./_support/records.ts";
import { within } from "./_support/poll.ts";

const SPAWN_FCGI = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
sys.stdout.write("%d\\n" % s.getsockname()[1])
sys.stdout.flush()
os.dup2(s.fileno(), 0)
s.close()
os.execvp(sys.argv[1], sys.argv[1:])
`;

const hasPython = spawnSync("python3", ["--version"]).status === 0;
const skip = !hasPython && !inCI ? "python3 is not installed (it plays spawn-fcgi)" : false;

test("without --listen, fcgi serve accepts on the listening socket inherited on fd 0", { skip }, async () => {
  const [command, args] = cliCommand(["serve", sourcePath("examples/hello.ts")]);
  const child = spawn("python3", ["-c", SPAWN_FCGI, command, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  try {
    const deadline = Date.now() + 20_000;
    while (!/listening/.test(err)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.match(err, /fcgi: listening on (fd:0|127\.0\.0\.1:\d+)/);
    const port = Number(out.trim());
    const response = parseCgi((await fcgiRequest(port, { params: httpParams("/", { HTTP_USER_AGENT: "fd0" }) })).stdout);
    assert.equal(response.text, "hello from fcgi, fd0\n");
  } finally {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGTERM");
    const code = await within(exited, 15_000, "exit").catch(() => (child.kill("SIGKILL"), -1));
    assert.equal(code, 0, err);
  }
});

test("without --listen and without a socket on fd 0, fcgi serve says so and exits 1", async () => {
  const [command, args] = cliCommand(["serve", sourcePath("examples/hello.ts")]);
  const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const code = await within(new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c))), 20_000, "exit").catch(() => (child.kill("SIGKILL"), -1));
  assert.equal(code, 1, err);
  assert.match(err, /descriptor 0/);
  assert.match(err, /--listen|listen address/);
});
