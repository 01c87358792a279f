// Apache mod_fcgid (Debian: libapache2-mod-fcgid) starting and stopping fcgi serve itself, as on
// shared hosting: examples/fcgid.conf, an .htaccess with AddHandler fcgid-script .fcgi
// (examples/fcgid.htaccess), and the wrapper examples/app.fcgi that execs fcgi serve, which gets a listening Unix socket on fd 0. mod_fcgid
// ends its processes with SIGTERM (recycling, idle shutdown, Apache's stop); each must exit 0 at
// once, which mod_fcgid logs as "terminated by calling exit(), return code: 0", and none may outlive Apache.
import { after, describe, it, requirePresent, setup, skipUnless } from "../_support/test.ts";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, sourcePath } from "../_support/env.ts";
import {
  fetchWithin,
  findApache,
  freePort,
  isRunning,
  makeTempDir,
  mustHave,
  removeDir,
  renderExample,
  shellWords,
  startApache,
  waitFor,
  type WebServer,
  webServerBinary,
} from "./_servers.ts";

const apacheBinary = webServerBinary("apache2 (httpd)", findApache());
const hasFcgid = ["/usr/lib/apache2/modules", "/usr/lib/httpd/modules"].some((d) => existsSync(join(d, "mod_fcgid.so")));
const skip = apacheBinary.skip || skipUnless(hasFcgid, "mod_fcgid is not installed");
const MAX_REQUESTS = 3;
/** What examples/app.fcgi execs, replaced by this runtime's `fcgi serve` of the test app. */
const EXAMPLE_COMMAND = "/usr/bin/node /var/www/node_modules/fcgi/dist/src/cli.js serve /var/www/app.js";

describe("fcgi serve started by Apache mod_fcgid (shared hosting)", { skip }, () => {
  let dir = "";
  let apache: WebServer | undefined;
  let url = "";
  const seen = new Set<number>();

  const ready = setup(async () => {
    const binary = mustHave(apacheBinary.path, "apache2 (httpd)");
    requirePresent(hasFcgid, "mod_fcgid is not installed");
    dir = makeTempDir("fcgi-fcgid-");
    // Apache runs the wrapper as its own user (www-data): the folders must be open to it.
    chmodSync(dir, 0o755);
    const html = join(dir, "html");
    const home = join(dir, "home");
    mkdirSync(html);
    mkdirSync(home);
    chmodSync(home, 0o777);
    const wrapper = join(html, "app.fcgi");
    writeFileSync(wrapper, renderExample("app.fcgi", [[EXAMPLE_COMMAND, shellWords(cliCommand(["serve", sourcePath("test/interop/spawner_app.ts")]).flat())]]));
    chmodSync(wrapper, 0o755);
    writeFileSync(join(html, ".htaccess"), renderExample("fcgid.htaccess", []));
    const config = `
TypesConfig /dev/null
DocumentRoot "${html}"
LogLevel warn fcgid:info
FcgidIPCDir "${dir}/fcgid"
FcgidProcessTableFile "${dir}/fcgid_shm"
# www-data's home is not writable: Deno and Bun keep their caches here.
FcgidInitialEnv HOME ${home}
FcgidIdleScanInterval 1
${renderExample("fcgid.conf", [
  ["/var/www/html", html],
  ["FcgidMaxRequestsPerProcess 1000", `FcgidMaxRequestsPerProcess ${MAX_REQUESTS}`],
  ["FcgidIdleTimeout 300", "FcgidIdleTimeout 3"],
])}`;
    apache = await startApache(binary, dir, config, await freePort(), ["mime", "fcgid"]);
    url = `${apache.urls[0]}/app.fcgi`;
  });

  after(async () => {
    await apache?.stop();
    for (const pid of seen) if (isRunning(pid)) process.kill(pid, "SIGKILL");
    if (dir) removeDir(dir);
  });

  const log = () => apache?.logs() ?? "";

  async function get(path: string): Promise<number> {
    const answer = await fetchWithin(`${url}${path}`, {}, 25_000);
    assert.equal(answer.status, 200, `${answer.text}\n${log()}`);
    const body = JSON.parse(answer.text);
    assert.equal(body.path, `/app.fcgi${path}`);
    seen.add(body.pid);
    return body.pid;
  }

  /** mod_fcgid's line for the exit of `pid`, once logged. */
  function exitLine(pid: number): string | undefined {
    return log().split("\n").find((line) => line.includes(`app.fcgi(${pid}) exit(`));
  }

  async function endedCleanly(pid: number, reason: RegExp): Promise<void> {
    await waitFor(`mod_fcgid to end process ${pid}`, () => !isRunning(pid) && exitLine(pid) !== undefined, 20_000);
    const line = exitLine(pid)!;
    assert.match(line, reason, line);
    assert.match(line, /terminated by calling exit\(\), return code: 0/, `mod_fcgid's SIGTERM makes fcgi serve exit 0 on its own\n${log()}`);
  }

  it("serves requests on the socket mod_fcgid hands over on fd 0", { timeout: 40_000 }, async () => {
    ready();
    const pid = await get("/first");
    assert.equal(await get("/second"), pid, "one process serves requests in a row");
    assert.match(log(), /fcgi: listening on fd:0/);
  });

  it(`recycles after FcgidMaxRequestsPerProcess (${MAX_REQUESTS}): a new pid, and the old one exits 0`, { timeout: 50_000 }, async () => {
    ready();
    const pids: number[] = [];
    for (let i = 0; i < 2 * MAX_REQUESTS + 1; i++) pids.push(await get(`/recycle/${i}`));
    const distinct = [...new Set(pids)];
    assert.ok(distinct.length >= 2, `one process served ${pids.length} requests: ${pids}\n${log()}`);
    for (const pid of distinct) assert.ok(pids.filter((p) => p === pid).length <= MAX_REQUESTS, `pid ${pid} served more than ${MAX_REQUESTS}: ${pids}`);
    await endedCleanly(pids[0]!, /exit\((lifetime expired|idle timeout)\)/);
  });

  it("idle shutdown (FcgidIdleTimeout) ends every process, each with exit 0", { timeout: 50_000 }, async () => {
    ready();
    const pid = await get("/idle");
    await endedCleanly(pid, /exit\(idle timeout\)/);
    for (const p of seen) await waitFor(`process ${p} to end`, () => !isRunning(p), 20_000);
  });

  it("leaves nothing running when Apache stops, and mod_fcgid logs no error", { timeout: 50_000 }, async () => {
    ready();
    const pid = await get("/last");
    await apache!.stop();
    await endedCleanly(pid, /exit\(shutting down\)/);
    for (const p of seen) assert.equal(isRunning(p), false, `process ${p} outlived Apache`);
    // The signal mod_fcgid sends is SIGTERM, and each process said so before closing.
    const exits = log().split("\n").filter((line) => /app\.fcgi\(\d+\) exit\(/.test(line)).length;
    assert.equal(exits, seen.size, log());
    assert.equal(log().split("fcgi: SIGTERM: closing").length - 1, exits, log());
    const problems = log().split("\n").filter((line) => /\[[a-z_]+:(warn|error|crit|alert|emerg)\]/.test(line) || /stop signal|SIGKILL|Killed/i.test(line));
    assert.deepEqual(problems, [], log());
  });
});
