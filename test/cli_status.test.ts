// `fcgi status` as a process: against a real PHP-FPM's pm.status_path (text, JSON, the table
// under a pseudo-terminal until Ctrl-C), against fcgi's own statusPath, and its failures.
import { after, describe, it, requirePresent, setup, skipUnless } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatAddress } from "../src/address.ts";
import { Client } from "../src/client/client.ts";
import { cliCommand, startCli } from "./_support/env.ts";
import { freePort, phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";
import { withServer } from "./_support/serve.ts";
import { waitFor, within } from "./_support/poll.ts";

/** Runs `fcgi status ...args` to its end (within 30 s): exit code, stdout, stderr. */
async function status(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(["status", ...args]);
  try {
    const code = await within(cli.exited, 30_000, `fcgi status ${args.join(" ")} to exit`);
    return { code, stdout: cli.stdout(), stderr: cli.stderr() };
  } finally {
    if (cli.child.exitCode === null) cli.child.kill("SIGKILL");
  }
}

const PHP_FPM_POOL_FIELDS = [
  "pool", "process manager", "start time", "start since", "accepted conn", "listen queue", "max listen queue", "listen queue len",
  "idle processes", "active processes", "total processes", "max active processes", "max children reached", "slow requests",
];

/** The `name: value` lines of a text page's pool part, as a map in the page's order. */
function fields(text: string): Map<string, string> {
  const pool = text.split("\n\n")[0]!;
  return new Map(pool.split("\n").filter(Boolean).map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon), line.slice(colon + 1).trim()] as const;
  }));
}

const SCRIPT = "/usr/bin/script";

describe("fcgi status against PHP-FPM", { skip: phpFpmSkip() }, () => {
  let root = "";
  let fpm: PhpFpm | undefined;
  let addr = "";

  const ready = setup(async () => {
    root = mkdtempSync(join(tmpdir(), "fcgi-status-root-"));
    fpm = await startPhpFpm({ listen: "tcp", root, maxChildren: 2, pool: { "pm.status_path": "/status", "ping.path": "/ping" } });
    addr = formatAddress(fpm.address);
  });

  after(async () => {
    await fpm?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("prints PHP-FPM's text page: its fields in its order, one block per process with --full", async () => {
    ready();
    const run = await status([addr, "--path", "/status"]);
    assert.equal(run.code, 0, run.stderr);
    const page = fields(run.stdout);
    assert.deepEqual([...page.keys()], PHP_FPM_POOL_FIELDS);
    assert.equal(page.get("pool"), "fcgi-test");
    assert.equal(page.get("process manager"), "static");
    assert.equal(page.get("total processes"), "2");
    assert.match(page.get("start time")!, /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$/);
    const full = await status([addr, "--path", "/status", "--full"]);
    assert.equal(full.code, 0, full.stderr);
    const blocks = full.stdout.split("\n************************\n").slice(1);
    assert.equal(blocks.length, 2);
    assert.ok(blocks.some((block) => block.includes("request URI:          /status?full")), "one process is running this very request");
  });

  it("--json parses, with the processes under --full; --xml and --openmetrics are PHP-FPM's", async () => {
    ready();
    const run = await status([addr, "--path", "/status", "--json", "--full"]);
    assert.equal(run.code, 0, run.stderr);
    const page = JSON.parse(run.stdout);
    assert.equal(page.pool, "fcgi-test");
    assert.deepEqual(Object.keys(page), [...PHP_FPM_POOL_FIELDS, "processes"]);
    assert.equal(page.processes.length, 2);
    assert.ok(page.processes.some((p: Record<string, unknown>) => p["request uri"] === "/status?json&full"), "the query reaches PHP-FPM as sent");
    const xml = await status([addr, "--path", "/status", "--xml"]);
    assert.match(xml.stdout, /^<\?xml version="1.0" \?>\n<status>\n<pool>fcgi-test<\/pool>/);
    const metrics = await status([addr, "--path", "/status", "--openmetrics"]);
    assert.match(metrics.stdout, /^phpfpm_up 1$/m);
  });

  it("--watch under a terminal redraws every second until Ctrl-C, then exits 0 with the cursor back", { skip: skipUnless(existsSync(SCRIPT), "util-linux script is not installed") }, async () => {
    ready();
    requirePresent(existsSync(SCRIPT), "util-linux script is not installed");
    const [command, args] = cliCommand(["status", addr, "--path", "/status", "--watch"]);
    const line = "exec " + [command, ...args].map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
    // script gives the command a pseudo-terminal; ^C written to its stdin becomes SIGINT there.
    const child = spawn(SCRIPT, ["-qfec", line, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      const redraws = () => out.split("\x1b[H\x1b[2J").length - 1;
      await waitFor(() => redraws() >= 2 || child.exitCode !== null, 20_000, `two redraws; output so far: ${JSON.stringify(out)}`);
      child.stdin!.write("\x03");
      assert.equal(await within(exited, 10_000, "fcgi status --watch to exit after ^C"), 0, out);
      assert.ok(out.includes("\x1b[?25l") && out.endsWith("\x1b[?25h"), `the cursor is hidden, then shown again at the end: ${JSON.stringify(out.slice(-40))}`);
      const frame = out.split("\x1b[H\x1b[2J")[2]!;
      assert.match(frame, /^pool fcgi-test \(static\) {2}up /);
      assert.match(frame, /PID STATE +REQUESTS +DURATION +REQUEST/);
      assert.match(frame, /GET \/status\?json&full/);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      child.stdin!.destroy();
    }
  });

  it("a path that is no status page exits 1 and says what to check", async () => {
    ready();
    const run = await status([addr, "--path", "/nope"]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /fcgi status: \/nope answered 404 .*--path/);
  });
});

describe("fcgi status: failures and help", () => {
  it("an address where nothing listens exits 1 with the reason", async () => {
    const port = await freePort();
    const run = await status([`127.0.0.1:${port}`]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`fcgi status: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
    assert.equal(run.stdout, "");
  });

  it("usage errors exit 2 and point to --help", async () => {
    for (const args of [[], ["nonsense"], ["127.0.0.1:9000", "--json", "--xml"], ["127.0.0.1:9000", "--watch", "--json"], ["127.0.0.1:9000", "--path", "status"],
      ["127.0.0.1:9000", "--path", "/status?json"], ["127.0.0.1:9000", "--bogus"], ["127.0.0.1:9000", "extra"], ["127.0.0.1:9000", "--timeout", "soon"]]) {
      const run = await status(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /fcgi status --help/);
    }
  });

  it("--help names every option, with examples for PHP-FPM", async () => {
    const run = await status(["--help"]);
    assert.equal(run.code, 0);
    for (const word of ["--path", "--full", "--json", "--xml", "--html", "--openmetrics", "--watch", "--timeout", "Exit status", "pm.status_path", "Examples"]) {
      assert.ok(run.stdout.includes(word), `fcgi status --help mentions ${word}`);
    }
  });
});

// Needs serve()'s statusPath, which lands separately: until then this suite fails (not skips).
describe("fcgi status against fcgi's own status page", () => {
  it("shows the fields, this process's row, and counts every request accepted, the status requests included", async () => {
    const options = { fetch: () => new Response("ok"), statusPath: "/fcgi-status" };
    await withServer(options, async (port) => {
      const client = new Client({ address: `127.0.0.1:${port}` });
      const sent = 3;
      try {
        for (let i = 0; i < sent; i++) assert.equal(await (await client.fetch(new Request(`http://localhost/app/${i}`))).text(), "ok");
      } finally {
        await client.close();
      }
      const text = await status([`127.0.0.1:${port}`, "--full"]);
      assert.equal(text.code, 0, text.stderr);
      const page = fields(text.stdout);
      for (const name of [...PHP_FPM_POOL_FIELDS, "requests in flight", "connections open", "restarts crash", "restarts hang", "restarts recycle", "restarts reload"]) {
        assert.ok(page.has(name), `the page has ${name}:\n${text.stdout}`);
      }
      assert.equal(page.get("accepted conn"), String(sent + 1), "the requests sent, and this status request");
      assert.match(text.stdout, new RegExp(`^pid: +${process.pid}$`, "m"));
      const json = await status([`127.0.0.1:${port}`, "--json", "--full"]);
      assert.equal(json.code, 0, json.stderr);
      const data = JSON.parse(json.stdout);
      assert.equal(data["accepted conn"], sent + 2, "and the status request before this one");
      assert.deepEqual(data.processes.map((p: Record<string, unknown>) => p["pid"]), [process.pid]);
    });
  });
});
