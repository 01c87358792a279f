// `fcgi serve --tls-cert/--tls-key/--tls-client-ca` spoken to by `fcgi request` and `fcgi values`
// with --tls-ca/--tls-cert/--tls-key (the README's TLS commands), and the certificate reloaded on
// SIGHUP: by the process itself, and by the process manager's rolling reload (--workers).
import { after, describe, it, setup } from "./_support/test.ts";
import assert from "node:assert/strict";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliCommand, inCI, sourcePath, startCli, type RunningCli } from "./_support/env.ts";
import { makeTestCerts, opensslPath, type TestCerts } from "./_support/tls.ts";
import { waitFor, within } from "./_support/poll.ts";
import { spawn } from "node:child_process";

const skip = !opensslPath && !inCI ? "openssl is not installed (skipped outside CI)" : false;
const hello = sourcePath("examples/hello.ts");

/** Runs `fcgi ...args` to its end: its exit status and output. */
function runCli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, argv] = cliCommand(args);
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return within(new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr }))), 20_000, `fcgi ${args[0]}`);
}

async function listeningOn(running: RunningCli, count = 1): Promise<string> {
  await waitFor(() => (running.stderr().match(/fcgi: listening on /g)?.length ?? 0) >= count || running.child.exitCode !== null, 30_000, "fcgi serve to listen");
  const found = /fcgi: listening on (\S+)/.exec(running.stderr());
  if (!found) throw new Error(`fcgi serve did not start: ${running.stderr()}`);
  return found[1]!;
}

async function stop(running: RunningCli): Promise<void> {
  if (running.child.exitCode === null && running.child.pid !== undefined) process.kill(running.child.pid, "SIGTERM");
  await within(running.exited, 20_000, "fcgi serve to exit").catch(() => running.child.kill("SIGKILL"));
}

describe("fcgi serve over TLS, with fcgi request and fcgi values", { skip }, () => {
  let certs: TestCerts;
  const ready = setup(() => {
    certs = makeTestCerts();
  });
  after(() => certs?.remove());

  const clientFlags = () => ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey];
  const request = (address: string, flags: string[]) => runCli(["request", address, "/srv/index", "--uri", "/", "--timeout", "5000", ...flags]);

  it("mutual TLS from the command line: a web server with a good certificate gets answers, others exit 1", async () => {
    ready();
    const running = startCli(["serve", hello, "--listen", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca]);
    try {
      const address = await listeningOn(running);
      assert.match(running.stderr(), /listening on 127\.0\.0\.1:\d+ \(TLS, client certificates required\)/);
      const good = await request(address, clientFlags());
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /^hello from fcgi/);
      const values = await runCli(["values", address, "--timeout", "5000", ...clientFlags()]);
      assert.equal(values.code, 0, values.stderr);
      assert.match(values.stdout, /^FCGI_MAX_CONNS=\d+$/m);
      const noCert = await request(address, ["--tls-ca", certs.ca]);
      assert.equal(noCert.code, 1, `no client certificate: ${noCert.stdout}`);
      const expired = await request(address, ["--tls-ca", certs.ca, "--tls-cert", certs.expiredClientCert, "--tls-key", certs.clientKey]);
      assert.equal(expired.code, 1, `an expired certificate: ${expired.stdout}`);
      const plaintext = await request(address, []);
      assert.equal(plaintext.code, 1, `plaintext: ${plaintext.stdout}`);
      await waitFor(() => (running.stderr().match(/refused a TLS connection from 127\.0\.0\.1/g)?.length ?? 0) >= 1, 5000, "the refusals in the log");
      assert.equal((await request(address, clientFlags())).code, 0, "a good web server after the refusals");
    } finally {
      await stop(running);
    }
  });

  it("usage errors: a missing file, a certificate without its key", async () => {
    ready();
    const missing = await runCli(["serve", hello, "--listen", "127.0.0.1:0", "--tls-cert", join(certs.dir, "nope.pem"), "--tls-key", certs.serverKey]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--tls-cert: cannot read '.*nope\.pem': ENOENT/);
    const alone = await runCli(["serve", hello, "--listen", "127.0.0.1:0", "--tls-cert", certs.serverCert]);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /TLS needs both --tls-cert and --tls-key/);
    const clientAlone = await runCli(["request", "127.0.0.1:1", "/srv/index", "--tls-cert", certs.clientCert]);
    assert.equal(clientAlone.code, 2);
    assert.match(clientAlone.stderr, /--tls-cert and --tls-key go together/);
    const mismatch = await runCli(["serve", hello, "--listen", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.clientKey]);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /the private key is not the certificate's/);
  });

  it("SIGHUP reads the certificate files again; files that cannot be used leave the old certificate", async () => {
    ready();
    const live = join(certs.dir, "live-server.pem");
    copyFileSync(certs.serverCert, live);
    const running = startCli(["serve", hello, "--listen", "127.0.0.1:0", "--tls-cert", live, "--tls-key", certs.serverKey]);
    try {
      const address = await listeningOn(running);
      assert.equal((await request(address, ["--tls-ca", certs.ca])).code, 0);
      writeFileSync(live, "not a certificate\n");
      process.kill(running.child.pid!, "SIGHUP");
      await waitFor(() => running.stderr().includes("keeping the TLS certificate in use"), 10_000, "the failed reload's log line");
      assert.equal((await request(address, ["--tls-ca", certs.ca])).code, 0, "still the old certificate");
      copyFileSync(certs.serverCert2, live);
      process.kill(running.child.pid!, "SIGHUP");
      await waitFor(() => running.stderr().includes("TLS certificate, key and client CA reloaded"), 10_000, "the reload's log line");
      assert.equal((await request(address, ["--tls-ca", certs.ca])).code, 1, "a client trusting only the old CA");
      const renewed = await request(address, ["--tls-ca", certs.otherCa]);
      assert.equal(renewed.code, 0, renewed.stderr);
      assert.equal(running.child.exitCode, null, "the server runs on");
    } finally {
      await stop(running);
    }
  });

  it("fcgi serve --workers: the rolling reload's new workers serve the new certificate", { timeout: 60_000 }, async () => {
    ready();
    const live = join(certs.dir, "pool-server.pem");
    copyFileSync(certs.serverCert, live);
    const running = startCli(["serve", hello, "--workers", "2", "--listen", "127.0.0.1:0", "--tls-cert", live, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca]);
    try {
      const address = (await listeningOn(running, 2)).replace(/[^0-9.:]+$/, "");
      const good = await request(address, clientFlags());
      assert.equal(good.code, 0, `${good.stderr}\n${running.stderr()}`);
      assert.equal((await request(address, ["--tls-ca", certs.ca])).code, 1, "no client certificate, through a worker");
      copyFileSync(certs.serverCert2, live);
      process.kill(running.child.pid!, "SIGHUP");
      const renewed = ["--tls-ca", certs.otherCa, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey];
      // The old workers drain while the new ones take over: bounded polling until a new one answers.
      let code: number | null = null;
      for (let attempt = 0; attempt < 40 && code !== 0; attempt++) {
        code = (await request(address, renewed)).code;
        if (code !== 0) await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.equal(code, 0, `no worker served the new certificate:\n${running.stderr()}`);
      // Once the reload is over, every worker has it.
      await waitFor(() => /reload/i.test(running.stderr()), 10_000, "the manager's reload line");
      assert.equal((await request(address, renewed)).code, 0);
    } finally {
      await stop(running);
    }
  });
});
