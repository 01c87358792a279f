/**
 * `fcgi values ADDR`: asks a FastCGI backend for FCGI_MAX_CONNS, FCGI_MAX_REQS and
 * FCGI_MPXS_CONNS (GET_VALUES) and prints its answer. Argument parsing and wiring only.
 * @module
 */
import { Client } from "../client/client.ts";
import type { Command } from "./command.ts";
import { FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS } from "../protocol/constants.ts";
import type { SocketAddress } from "../socket.ts";
import { describe } from "./request.ts";
import { addressArg, CLIENT_TLS, clientTlsArgs, clientTlsHelp, eachArg, type TlsFiles, tlsFlag, timeoutArg, UsageError, usageFailure } from "./args.ts";
import type { TlsClientOptions } from "../runtime/types.ts";

const DEFAULT_NAMES = [FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS];

const help = `Usage: fcgi values ADDR [NAME ...] [options]

Asks the FastCGI application at ADDR for its values with a GET_VALUES record and prints
the answer on stdout, one NAME=value per line, in the order asked. By default it asks for
${DEFAULT_NAMES.join(", ")}. Names the application does not answer are listed on
stderr (PHP-FPM, for one, answers only FCGI_MPXS_CONNS).

  ADDR     HOST:PORT, [IPv6]:PORT or unix:/PATH (a path starting with / is a Unix socket).
  NAME     a name to ask for instead of the default ones (repeatable).

Options:
  --timeout MS   connect timeout, and how long to wait for the answer (default 10000).
${clientTlsHelp(20)}

Exit status: 0 when the application answered (even without some of the names); 1 when it
could not be reached, closed the connection or did not answer in time; 2 for a usage error.

Example:
  fcgi values unix:/run/php/php8.2-fpm.sock`;

async function run(args: string[]): Promise<number> {
  const positionals: string[] = [];
  let timeout = 10_000;
  let address: SocketAddress;
  const tlsFiles: TlsFiles = {};
  let tls: TlsClientOptions | undefined;
  try {
    eachArg(args, (flag, take) => {
      if (tlsFlag(tlsFiles, CLIENT_TLS, flag, take)) return true;
      if (flag !== "--timeout") return false;
      timeout = timeoutArg(flag, take());
      return true;
    }, (arg) => positionals.push(arg));
    if (positionals.length === 0) throw new UsageError("ADDR is missing");
    address = addressArg(positionals[0]!);
    tls = clientTlsArgs(tlsFiles);
  } catch (error) {
    return usageFailure("values", error);
  }
  const names = positionals.length > 1 ? positionals.slice(1) : DEFAULT_NAMES;
  const client = new Client({ address, connectTimeout: timeout, responseTimeout: timeout, ...(tls ? { tls } : {}) });
  try {
    const values = await client.values(names);
    let out = "";
    const missing: string[] = [];
    for (const name of names) {
      if (Object.hasOwn(values, name)) out += `${name}=${values[name]}\n`;
      else missing.push(name);
    }
    // Whatever else it answered, though not asked: shown, not hidden.
    for (const [name, value] of Object.entries(values)) if (!names.includes(name)) out += `${name}=${value}\n`;
    process.stdout.write(out);
    if (missing.length > 0) console.error(`fcgi values: the application did not answer ${missing.join(", ")}`);
    return 0;
  } catch (error) {
    console.error(`fcgi values: ${describe(error)}`);
    return 1;
  } finally {
    await client.close();
  }
}

/** The 'fcgi values' command. */
export const command: Command = {
  summary: "ask a FastCGI backend for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS",
  help,
  run,
};
