// The access log writer: exact lines in both formats, buffering, logrotate's reopen, several
// writers on one file, failing writes and the bound on what waits; each in its own temp dir.
import { describe, skipUnless, test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { AccessLog, formatAccessLine, type AccessEntry } from "../src/app/access_log.ts";
import { runtimeName, sourcePath } from "./_support/env.ts";
import { waitFor, within } from "./_support/poll.ts";

const T = Date.UTC(2026, 11, 6, 6, 20, 25, 7);

function entry(fields: Partial<AccessEntry> = {}): AccessEntry {
  return { time: T, pid: 4242, requestId: 3, method: "GET", uri: "/index.php?x=1", status: 200, bytes: 1234, durationMs: 12.3456, remoteAddr: "10.0.0.1", ...fields };
}

// Every string field hostile: quotes, backslash, CR/LF, NUL, DEL, latin1 bytes (é, ÿ) as params
// hold them, a space, a character beyond latin1 (😀) and a lone surrogate.
const hostile = entry({
  method: "M E",
  uri: '/a"b\\c\r\nX\x00\x7f\xe9\xff \u{1F600}\ud800',
  protocol: "HTTP/2.0",
  status: 404,
  bytes: 0,
  durationMs: 0.0004,
  remoteAddr: "::1",
  user: 'bob "x"\n',
});

// Runs `fn` with a fresh temp dir, removed afterwards.
async function inTempDir(fn: (dir: string) => unknown): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "fcgi-alog-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function read(path: string): string {
  return existsSync(path) ? readFileSync(path, "latin1") : "";
}

function linesOf(path: string): string[] {
  const text = read(path);
  assert.ok(text === "" || text.endsWith("\n"), `${path} ends in a torn line`);
  return text === "" ? [] : text.slice(0, -1).split("\n");
}

// Lines numbered by requestId, so that order and loss show.
const numbered = (i: number, fields: Partial<AccessEntry> = {}) => entry({ requestId: i, uri: `/n/${i}`, ...fields });
const idsOf = (path: string) => linesOf(path).map((line) => JSON.parse(line).requestId as number);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

// Runs `body` in a child process on this runtime, with AccessLog imported; resolves to its output.
async function child(dir: string, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = join(dir, `child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, `import { AccessLog } from ${JSON.stringify(pathToFileURL(sourcePath("src/app/access_log.ts")).href)};\n${body}\n`);
  const proc = spawn(process.execPath, runtimeName === "deno" ? ["run", "-A", script] : [script], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d) => (stdout += d));
  proc.stderr!.on("data", (d) => (stderr += d));
  const code = await within(new Promise<number | null>((resolve) => proc.on("close", resolve)), 20_000, "the child to exit");
  return { code, stdout, stderr };
}

describe("formatAccessLine", () => {
  test("json: exact keys and values, duration to 3 decimals, user and protocol only when given", () => {
    assert.equal(
      formatAccessLine(entry(), "json"),
      '{"time":"2026-12-06T06:20:25.007Z","pid":4242,"requestId":3,"method":"GET","uri":"/index.php?x=1","status":200,"bytes":1234,"duration_ms":12.346,"remote_addr":"10.0.0.1"}\n',
    );
    assert.equal(
      formatAccessLine(entry({ user: "ann", protocol: "HTTP/1.0", durationMs: 2, bytes: 0 }), "json"),
      '{"time":"2026-12-06T06:20:25.007Z","pid":4242,"requestId":3,"method":"GET","uri":"/index.php?x=1","protocol":"HTTP/1.0","status":200,"bytes":0,"duration_ms":2.000,"remote_addr":"10.0.0.1","user":"ann"}\n',
    );
  });

  test("json: hostile strings are escaped into one ASCII line, and JSON.parse gives every field back", () => {
    const line = formatAccessLine(hostile, "json");
    assert.equal(
      line,
      String.raw`{"time":"2026-12-06T06:20:25.007Z","pid":4242,"requestId":3,"method":"M E","uri":"/a\"b\\c\r\nX\u0000\u007f\u00e9\u00ff \ud83d\ude00\ud800","protocol":"HTTP/2.0","status":404,"bytes":0,"duration_ms":0.000,"remote_addr":"::1","user":"bob \"x\"\n"}` + "\n",
    );
    assert.match(line, /^[\x20-\x7e]*\n$/);
    assert.deepEqual(JSON.parse(line), {
      time: "2026-12-06T06:20:25.007Z",
      pid: 4242,
      requestId: 3,
      method: hostile.method,
      uri: hostile.uri,
      protocol: "HTTP/2.0",
      status: 404,
      bytes: 0,
      duration_ms: 0,
      remote_addr: "::1",
      user: hostile.user,
    });
  });

  test("json: numbers that are not JSON become null instead of breaking the line", () => {
    const line = formatAccessLine(entry({ time: NaN, status: NaN, durationMs: Infinity, bytes: -0 }), "json");
    assert.deepEqual(JSON.parse(line), { time: "1970-01-01T00:00:00.000Z", pid: 4242, requestId: 3, method: "GET", uri: "/index.php?x=1", status: null, bytes: 0, duration_ms: null, remote_addr: "10.0.0.1" });
  });

  test("common: exact NCSA lines, '-' for no user and no bytes, nothing after the byte count", () => {
    assert.equal(formatAccessLine(entry(), "common"), '10.0.0.1 - - [06/Dec/2026:06:20:25 +0000] "GET /index.php?x=1 HTTP/1.1" 200 1234\n');
    assert.equal(formatAccessLine(entry({ user: "ann", bytes: 0, protocol: "HTTP/1.0", remoteAddr: "" }), "common"), '- - ann [06/Dec/2026:06:20:25 +0000] "GET /index.php?x=1 HTTP/1.0" 200 -\n');
  });

  test("common: hostile request fields are escaped as nginx does (\\xHH), spaces too, so the fields stay where parsers look", () => {
    const line = formatAccessLine(hostile, "common");
    assert.equal(
      line,
      String.raw`::1 - bob\x20\x22x\x22\x0A [06/Dec/2026:06:20:25 +0000] "M\x20E /a\x22b\x5Cc\x0D\x0AX\x00\x7F\xE9\xFF\x20\xF0\x9F\x98\x80\xEF\xBF\xBD HTTP/2.0" 404 -` + "\n",
    );
    const clf = /^(\S+) (\S+) (\S+) \[(\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-)\n$/;
    assert.match(line, clf);
    assert.match(formatAccessLine(entry({ method: "", uri: "", user: "" }), "common"), clf);
  });

  test("the time cached per second is rebuilt when the second changes, in both directions", () => {
    const times = [T, T + 1, T + 992.9, T + 993, T + 86_400_000, T - 1000, T];
    assert.deepEqual(times.map((time) => JSON.parse(formatAccessLine(entry({ time }), "json")).time), times.map((time) => new Date(Math.floor(time)).toISOString()));
    assert.deepEqual(times.map((time) => formatAccessLine(entry({ time }), "common").split(/[[\]]/)[1]), [
      "06/Dec/2026:06:20:25 +0000",
      "06/Dec/2026:06:20:25 +0000",
      "06/Dec/2026:06:20:25 +0000",
      "06/Dec/2026:06:20:26 +0000",
      "07/Dec/2026:06:20:25 +0000",
      "06/Dec/2026:06:20:24 +0000",
      "06/Dec/2026:06:20:25 +0000",
    ]);
  });
});

describe("AccessLog", () => {
  test("lines wait in memory until flush(), 100 ms, or 64 KiB; close() writes the rest in order and ignores later writes", () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    const log = new AccessLog(path, "json");
    // 0o644 less the umask: never executable, never writable by others.
    assert.equal(statSync(path).mode & 0o733, 0o600);
    log.write(numbered(0));
    log.write(numbered(1));
    assert.equal(read(path), "");
    log.flush();
    assert.deepEqual(idsOf(path), [0, 1]);

    // The timer: nothing before 100 ms, everything soon after.
    const started = Date.now();
    log.write(numbered(2));
    assert.deepEqual(idsOf(path), [0, 1]);
    await waitFor(() => read(path).includes('"requestId":2,'), 5_000, "the timer's write");
    assert.ok(Date.now() - started >= 90, `written after ${Date.now() - started} ms`);

    // 64 KiB: the line that crosses it is written at once, with all before it.
    let i = 3;
    let size = 0;
    while (size + formatAccessLine(numbered(i), "json").length < 64 * 1024) {
      size += formatAccessLine(numbered(i), "json").length;
      log.write(numbered(i++));
    }
    assert.deepEqual(idsOf(path), [0, 1, 2]);
    log.write(numbered(i++));
    assert.deepEqual(idsOf(path), range(0, i));

    log.write(numbered(i++));
    log.write(numbered(i++));
    await log.close();
    assert.deepEqual(idsOf(path), range(0, i));
    log.write(numbered(i));
    log.flush();
    log.reopen();
    await log.close();
    assert.deepEqual(idsOf(path), range(0, i));
  }));

  test("logrotate: after rename and reopen(), the old file keeps the earlier lines (buffered ones too) and new lines go to a new file", () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    const log = new AccessLog(path, "common");
    for (let i = 0; i < 3; i++) log.write(numbered(i));
    log.flush();
    for (let i = 3; i < 5; i++) log.write(numbered(i));
    renameSync(path, `${path}.1`);
    log.reopen();
    for (let i = 5; i < 8; i++) log.write(numbered(i));
    await log.close();
    const uris = (file: string) => linesOf(file).map((line) => line.split(" ")[6]);
    assert.deepEqual(uris(`${path}.1`), range(0, 5).map((i) => `/n/${i}`));
    assert.deepEqual(uris(path), range(5, 8).map((i) => `/n/${i}`));
  }));

  test("several logs on one file, and a child process, append whole lines only", () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    // URIs of many lengths, so that chunks end anywhere and a torn line would show.
    const uriOf = (i: number) => "/" + "x".repeat((i * 37) % 700);
    const running = child(dir, `
      const log = new AccessLog(${JSON.stringify(path)}, "json");
      for (let i = 0; i < 3000; i++) {
        log.write({ time: Date.now(), pid: 100, requestId: i, method: "GET", uri: "/" + "x".repeat((i * 37) % 700), status: 200, bytes: i, durationMs: 1, remoteAddr: "-" });
        if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      await log.close();`);
    let childDone = false;
    const result = running.finally(() => (childDone = true));
    const logs = [0, 1, 2].map(() => new AccessLog(path, "json"));
    const counts = [0, 0, 0];
    // Write until the child is done (at least 3000 lines each), taking turns with it.
    while (!childDone || counts[0]! < 3000) {
      for (let k = 0; k < 10; k++) {
        logs.forEach((log, n) => {
          const i = counts[n]!;
          counts[n] = i + 1;
          log.write(entry({ pid: n, requestId: i, uri: uriOf(i), bytes: i }));
        });
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(logs.map((log) => log.close()));
    const { code, stderr } = await result;
    assert.equal(code, 0, stderr);
    const seen = new Map<number, number[]>();
    let childRuns = 0;
    let previous = -1;
    for (const line of linesOf(path)) {
      const parsed = JSON.parse(line);
      assert.equal(parsed.uri, uriOf(parsed.requestId));
      seen.set(parsed.pid, [...(seen.get(parsed.pid) ?? []), parsed.requestId]);
      if (parsed.pid === 100 && previous !== 100) childRuns++;
      previous = parsed.pid;
    }
    assert.deepEqual(seen.get(100), range(0, 3000));
    // The processes did write at the same time: the child's lines stand in several places.
    assert.ok(childRuns > 1, `the child's lines stand in ${childRuns} run`);
    for (const n of [0, 1, 2]) assert.deepEqual(seen.get(n), range(0, counts[n]!));
  }));

  test('"-" writes to stdout with the same lines; reopen() leaves it alone', () => inTempDir(async (dir) => {
    const { code, stdout, stderr } = await child(dir, `
      const log = new AccessLog("-", "common");
      log.write(${JSON.stringify(entry())});
      log.reopen();
      log.write(${JSON.stringify(hostile)});
      await log.close();`);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, formatAccessLine(entry(), "common") + formatAccessLine(hostile, "common"));
  }));

  test("a path that cannot be opened at startup throws; a format that does not exist too", () => inTempDir(async (dir) => {
    assert.throws(() => new AccessLog(dir), { code: "EISDIR" });
    assert.throws(() => new AccessLog(join(dir, "no", "such"), "json"), { code: "ENOENT" });
    assert.throws(() => new AccessLog(join(dir, "x.log"), "xml" as never), TypeError);
  }));

  test("the folder removed: reopen() reports ENOENT once, throws nothing, and the log opens again once the folder is back", () => inTempDir(async (dir) => {
    const folder = join(dir, "logs");
    mkdirSync(folder);
    const path = join(folder, "access.log");
    const errors: string[] = [];
    const log = new AccessLog(path, "json", { onError: (m) => errors.push(m) });
    log.write(numbered(0));
    log.flush();
    rmSync(folder, { recursive: true });
    log.write(numbered(1));
    log.flush(); // to the open file, which is gone from the folder but not yet closed
    log.reopen();
    for (let i = 2; i < 5; i++) {
      log.write(numbered(i));
      log.flush();
    }
    log.reopen();
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0]!, /cannot reopen .*access\.log: .*ENOENT/);
    mkdirSync(folder);
    // The timer's flush tries the path again: no call needed.
    log.write(numbered(5));
    await waitFor(() => read(path) !== "", 5_000, "the log to open again");
    log.write(numbered(6));
    await log.close();
    assert.deepEqual(idsOf(path), [5, 6]);
    assert.equal(errors.length, 2, errors.join("\n"));
    assert.match(errors[1]!, /access\.log: reopened$/);
  }));

  test("a directory where the file was: reopen() reports EISDIR once and the lines go on to the old file", () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    const errors: string[] = [];
    const log = new AccessLog(path, "json", { onError: (m) => errors.push(m) });
    log.write(numbered(0));
    renameSync(path, `${path}.1`);
    mkdirSync(path);
    log.reopen();
    log.write(numbered(1));
    log.reopen();
    log.write(numbered(2));
    await log.close();
    assert.deepEqual(idsOf(`${path}.1`), [0, 1, 2]);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0]!, /EISDIR/);
  }));

  const noDevFull = skipUnless(existsSync("/dev/full"), "needs /dev/full, whose writes fail with ENOSPC (Linux)");

  test("a full disk (/dev/full): reported once however often writes fail, nothing thrown, the lines written once it works", { skip: noDevFull }, () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    symlinkSync("/dev/full", path);
    const errors: string[] = [];
    const log = new AccessLog(path, "json", { onError: (m) => errors.push(m) });
    log.write(numbered(0));
    log.flush();
    log.write(numbered(1));
    log.flush();
    log.flush();
    log.write(numbered(2));
    log.flush();
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0]!, /cannot write to .*access\.log: .*ENOSPC/);
    unlinkSync(path);
    log.reopen();
    await log.close();
    assert.deepEqual(idsOf(path), [0, 1, 2]);
    assert.deepEqual(errors.slice(1).map((m) => m.replace(/^.*: /, "")), ["writing again"]);
  }));

  test("while writes fail, at most 1 MiB waits: the oldest lines are dropped, and their count reported once writes work again", { skip: noDevFull }, () => inTempDir(async (dir) => {
    const path = join(dir, "access.log");
    symlinkSync("/dev/full", path);
    const errors: string[] = [];
    const log = new AccessLog(path, "json", { onError: (m) => errors.push(m) });
    const total = 30_000; // some 4 MiB of lines
    for (let i = 0; i < total; i++) log.write(numbered(i));
    unlinkSync(path);
    log.reopen();
    const kept = idsOf(path);
    assert.ok(statSync(path).size <= 1024 * 1024, `${statSync(path).size} bytes kept`);
    assert.ok(kept.length > 1000, `${kept.length} lines kept`);
    // The newest lines, in order, none missing among them.
    assert.deepEqual(kept, range(total - kept.length, total));
    assert.equal(errors.length, 2, errors.join("\n"));
    assert.match(errors[0]!, /ENOSPC/);
    assert.match(errors[1]!, new RegExp(`writing again; ${total - kept.length} lines were dropped meanwhile$`));
    log.write(numbered(total));
    await log.close();
    assert.deepEqual(idsOf(path), range(total - kept.length, total + 1));
    assert.equal(errors.length, 2, errors.join("\n"));
  }));
});
