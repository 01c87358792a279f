// Certificates for the TLS tests, made by openssl (Debian's) in a temporary folder each run: never
// committed keys. A CA, a server certificate for localhost/127.0.0.1/::1, a client certificate that
// CA signed, one another CA signed, an expired one from the CA, and a second server certificate
// (from the other CA) to reload to. openssl 3.0's x509 cannot date a certificate in the past
// (-days must be positive, -not_before came in 3.4): `openssl ca` with -startdate/-enddate can.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "../interop/_servers.ts";

/** Where openssl is, or undefined. */
export const opensslPath: string | undefined = findBinary("openssl");

/** The files of one certificate set (absolute paths) and their PEM text. */
export interface TestCerts {
  readonly dir: string;
  /** The CA that signed the server and the good client certificate. */
  readonly ca: string;
  /** Another CA (a web server signed by it must be refused). */
  readonly otherCa: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** The same key, certified by the other CA: what a reload switches to (a client trusting only the CA then fails). */
  readonly serverCert2: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** The client key, certified by the other CA. */
  readonly otherClientCert: string;
  /** The client key, certified by the CA for 2020-01-01 to 2020-01-02. */
  readonly expiredClientCert: string;
  /** Client certificate and key in one file (HAProxy's `crt`). */
  readonly clientBundle: string;
  /** The text of a file of this set. */
  read(path: string): string;
  remove(): void;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync(opensslPath!, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Makes a fresh certificate set in a temporary folder (openssl must be there). */
export function makeTestCerts(): TestCerts {
  if (!opensslPath) throw new Error("openssl is not installed");
  const dir = mkdtempSync(join(tmpdir(), "fcgi-tls-"));
  const run = (...args: string[]) => openssl(dir, args);
  run("req", "-x509", ...EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fcgi test CA");
  run("req", "-x509", ...EC, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=another CA");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  run("req", ...EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  const sign = (csr: string, out: string, ca: string, ext: string, serial: string) =>
    run("x509", "-req", "-in", csr, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-set_serial", serial, "-out", out, "-days", "2", "-extfile", ext);
  sign("server.csr", "server.pem", "ca", "server.ext", "1");
  sign("server.csr", "server2.pem", "other-ca", "server.ext", "4");
  run("req", ...EC, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=web server");
  sign("client.csr", "client.pem", "ca", "client.ext", "2");
  sign("client.csr", "other-client.pem", "other-ca", "client.ext", "3");
  // `openssl ca` keeps a little database: an index, a serial, a folder for copies.
  mkdirSync(join(dir, "db"));
  writeFileSync(join(dir, "db", "index"), "");
  writeFileSync(join(dir, "db", "serial"), "05\n");
  writeFileSync(join(dir, "ca.cnf"), [
    "[ca]", "default_ca = test", "[test]", "database = db/index", "serial = db/serial", "new_certs_dir = db",
    "default_md = sha256", "policy = any", "unique_subject = no", "x509_extensions = ext",
    "[any]", "commonName = supplied", "[ext]", "extendedKeyUsage = clientAuth", "",
  ].join("\n"));
  run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "client.csr", "-out", "expired.pem",
    "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext");
  const at = (name: string) => join(dir, name);
  writeFileSync(at("client-bundle.pem"), readFileSync(at("client.pem"), "utf8") + readFileSync(at("client.key"), "utf8"));
  return {
    dir,
    ca: at("ca.pem"),
    otherCa: at("other-ca.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server.key"),
    serverCert2: at("server2.pem"),
    clientCert: at("client.pem"),
    clientKey: at("client.key"),
    otherClientCert: at("other-client.pem"),
    expiredClientCert: at("expired.pem"),
    clientBundle: at("client-bundle.pem"),
    read: (path) => readFileSync(path, "utf8"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
