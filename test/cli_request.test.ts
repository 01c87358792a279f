// `fcgi request` and `fcgi values` run as processes against a real PHP-FPM: binary-safe output,
// headers with --include, bodies from a file and from stdin, stderr records, exit statuses.
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatAddress } from "../src/address.ts";
import { cliCommand } from "./_support/env.ts";
import { freePort, phpFpmSkip, startPhpFpm, type PhpFpm } from "./_support/phpfpm.ts";

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI with `args` (and `input` on stdin), within 30 s. */
function cli(args: string[], input?: Uint8Array): Promise<Run> {
  const [command, commandArgs] = cliCommand(args);
  return new Promise((resolve, reject) => {
    const child = spawn(command, commandArgs, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    const out: Buffer[] = [];
    let err = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => (err += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`fcgi ${args.join(" ")} did not exit within 30 s; stderr: ${err}`));
    }, 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin!.end(input);
  });
}

const SCRIPTS: Record<string, string> = {
  "bytes.php": `<?php header("Content-Type: application/octet-stream"); for ($i = 0; $i < 256; $i++) echo chr($i); echo chr(0), "\\r\\n", chr(255);`,
  "info.php": `<?php echo $_SERVER["REQUEST_METHOD"], "|", $_SERVER["SCRIPT_NAME"], "|", $_SERVER["REQUEST_URI"], "|", $_SERVER["QUERY_STRING"], "|",
    $_SERVER["DOCUMENT_ROOT"] ?? "-", "|", $_SERVER["PATH_INFO"] ?? "-", "|", $_SERVER["HTTP_X_ONE"] ?? "-", "|", $_SERVER["REMOTE_ADDR"], "|", $_SERVER["SERVER_NAME"];`,
  "input.php": `<?php $in = file_get_contents("php://input"); echo strlen($in), " ", hash("sha256", $in), " ", $_SERVER["CONTENT_TYPE"] ?? "-";`,
  "headers.php": `<?php header("Status: 404 Not Found"); header("X-Thing: yes"); setcookie("a", "1"); setcookie("b", "2"); echo "nope";`,
  "log.php": `<?php error_log("to stderr"); echo "out";`,
};

describe("fcgi request and fcgi values against PHP-FPM", { skip: phpFpmSkip() }, () => {
  let root = "";
  let fpm: PhpFpm | undefined;
  let addr = "";

  const ready = setup(async () => {
    root = mkdtempSync(join(tmpdir(), "fcgi-cli-root-"));
    for (const [name, source] of Object.entries(SCRIPTS)) writeFileSync(join(root, name), source);
    fpm = await startPhpFpm({ listen: "unix", root, maxChildren: 2 });
    addr = formatAddress(fpm.address);
  });

  after(async () => {
    await fpm?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("prints the body byte for byte, NUL, CR and 0xFF included", async () => {
    ready();
    const run = await cli(["request", addr, join(root, "bytes.php")]);
    assert.equal(run.code, 0, run.stderr);
    const expected = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0, 13, 10, 255])]);
    assert.deepEqual(run.stdout, expected);
  });

  it("derives SCRIPT_NAME, REQUEST_URI and DOCUMENT_ROOT from SCRIPT, or from --uri; headers and params pass", async () => {
    ready();
    const plain = await cli(["request", addr, join(root, "info.php")]);
    // PATH_INFO is sent empty, as nginx's PHP snippet does.
    assert.equal(plain.stdout.toString(), `GET|/info.php|/info.php||${root}||-|127.0.0.1|localhost`);
    const custom = await cli([
      "request", addr, join(root, "info.php"),
      "--uri", "/info.php/extra?x=1&y=2", "--path-info", "/extra", "-H", "X-One: one", "-H", "Host: example.test",
      "--param", "REMOTE_ADDR=198.51.100.4", "-X", "delete",
    ]);
    assert.equal(custom.code, 0, custom.stderr);
    assert.equal(custom.stdout.toString(), "DELETE|/info.php|/info.php/extra?x=1&y=2|x=1&y=2|-|/extra|one|198.51.100.4|example.test");
  });

  it("--include prints the status line and every header, each cookie on its own line", async () => {
    ready();
    const run = await cli(["request", addr, join(root, "headers.php"), "-i"]);
    assert.equal(run.code, 0, "a 404 is still a response: exit 0 without --fail");
    const text = run.stdout.toString();
    const [head, body] = text.split("\r\n\r\n");
    const lines = head!.split("\r\n");
    assert.equal(lines[0], "HTTP/1.1 404 Not Found");
    assert.ok(lines.includes("x-thing: yes"));
    assert.deepEqual(lines.filter((l) => l.startsWith("set-cookie:")), ["set-cookie: a=1", "set-cookie: b=2"]);
    assert.equal(body, "nope");
    const ok = await cli(["request", addr, join(root, "log.php"), "--include"]);
    assert.match(ok.stdout.toString(), /^HTTP\/1\.1 200 OK\r\n/);
  });

  it("--fail exits with 22 on a status of 400 or more", async () => {
    ready();
    const run = await cli(["request", addr, join(root, "headers.php"), "--fail"]);
    assert.equal(run.code, 22);
    assert.equal(run.stdout.toString(), "nope");
  });

  it("--data @FILE streams a file as the body (POST, form content type by default)", async () => {
    ready();
    const data = Buffer.alloc(1024 * 1024 + 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    const file = join(root, "upload.bin");
    writeFileSync(file, data);
    const run = await cli(["request", addr, join(root, "input.php"), "--data", `@${file}`, "-H", "Content-Type: application/octet-stream"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.toString(), `${data.length} ${createHash("sha256").update(data).digest("hex")} application/octet-stream`);
  });

  it("--data - reads the body from stdin; --data TEXT sends the text", async () => {
    ready();
    const input = new TextEncoder().encode("from stdin \u00e9");
    const piped = await cli(["request", addr, join(root, "input.php"), "-d", "-"], input);
    assert.equal(piped.stdout.toString(), `${input.length} ${createHash("sha256").update(input).digest("hex")} application/x-www-form-urlencoded`);
    const text = await cli(["request", addr, join(root, "input.php"), "-d", "a=1&b=2"]);
    assert.equal(text.stdout.toString(), `7 ${createHash("sha256").update("a=1&b=2").digest("hex")} application/x-www-form-urlencoded`);
  });

  it("FCGI_STDERR goes to stderr, the body to stdout", async () => {
    ready();
    const run = await cli(["request", addr, join(root, "log.php")]);
    assert.equal(run.code, 0);
    assert.equal(run.stdout.toString(), "out");
    assert.match(run.stderr, /PHP message: to stderr/);
  });

  it("a refused connection exits with 1 and says what failed", async () => {
    ready();
    const port = await freePort();
    const run = await cli(["request", `127.0.0.1:${port}`, "/x.php"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`fcgi request: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
    assert.equal(run.stdout.length, 0);
    const values = await cli(["values", `127.0.0.1:${port}`]);
    assert.equal(values.code, 1);
    assert.match(values.stderr, /fcgi values: connect ECONNREFUSED/);
  });

  it("usage errors exit with 2", async () => {
    ready();
    for (const args of [["request"], ["request", addr], ["request", addr, "relative.php"], ["request", "nonsense", "/x.php"], ["request", addr, "/x.php", "--role", "boss"], ["values"], ["values", addr, "--bogus"]]) {
      const run = await cli(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /--help/);
    }
  });

  it("fcgi values prints NAME=value lines and names the values PHP-FPM does not answer", async () => {
    ready();
    const run = await cli(["values", addr]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.toString(), "FCGI_MPXS_CONNS=0\n");
    assert.match(run.stderr, /did not answer FCGI_MAX_CONNS, FCGI_MAX_REQS/);
  });

  it("--help describes every option", async () => {
    ready();
    const request = await cli(["request", "--help"]);
    assert.equal(request.code, 0);
    for (const flag of ["--method", "--header", "--data", "--uri", "--document-root", "--path-info", "--param", "--role", "--filter-data", "--include", "--fail", "--timeout", "--no-keep-conn", "Exit status"]) {
      assert.ok(request.stdout.toString().includes(flag), `fcgi request --help mentions ${flag}`);
    }
    const values = await cli(["values", "--help"]);
    assert.equal(values.code, 0);
    for (const word of ["--timeout", "NAME", "FCGI_MAX_CONNS", "Exit status"]) assert.ok(values.stdout.toString().includes(word), `fcgi values --help mentions ${word}`);
  });
});
