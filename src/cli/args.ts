/**
 * Argument parsing shared by the fcgi commands, and how they report a command-line mistake.
 * @module
 */
import { readFileSync } from "node:fs";
import { parseAddress } from "../address.ts";
import type { TlsClientOptions, TlsServerOptions } from "../runtime/types.ts";
import type { SocketAddress } from "../socket.ts";

/** A command-line mistake: reported with a pointer to `--help`, exit status 2. */
export class UsageError extends Error {}

/**
 * What a command's argument parsing threw: a {@link UsageError} is printed with a pointer to
 * `fcgi COMMAND --help` and gives exit status 2; anything else is a bug and is thrown on.
 */
export function usageFailure(command: string, error: unknown): number {
  if (!(error instanceof UsageError)) throw error;
  console.error(`fcgi ${command}: ${error.message}\nRun 'fcgi ${command} --help' for the options.`);
  return 2;
}

/** Parses an address argument, turning its error into a usage error. */
export function addressArg(text: string): SocketAddress {
  try {
    const address = parseAddress(text);
    if (address.transport === "fd") throw new TypeError("fd:0 is a listening socket, not something to connect to");
    return address;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** Parses a timeout argument in milliseconds. */
export function timeoutArg(flag: string, text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`${flag}: '${text}' is not a number of milliseconds`);
  return Number(text);
}

/** A `--param NAME=value` argument as its name and value. */
export function paramArg(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`--param: '${text}' is not NAME=value`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** Splits `args` into options (with their values, `--flag=value` or `--flag value`) and positionals. */
export function eachArg(args: string[], handle: (flag: string, take: () => string) => boolean, positional: (arg: string) => void): void {
  for (let i = 0; i < args.length; i++) {
    let arg = args[i]!;
    let value: string | undefined;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const take = (): string => {
      if (value !== undefined) return value;
      const next = args[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === "--") {
      for (const rest of args.slice(i + 1)) positional(rest);
      return;
    }
    if (arg.startsWith("-") && arg !== "-") {
      if (!handle(arg, take)) throw new UsageError(`unknown option ${arg}`);
      continue;
    }
    positional(arg);
  }
}

/** The TLS flags of the client commands (request, values, proxy), and what each says in --help. */
const CLIENT_TLS_FLAGS: ReadonlyArray<readonly [string, string]> = [
  ["--tls-ca FILE", "connect over TLS, trusting the CA in FILE (PEM) for the"],
  ["", "backend's certificate (default: the runtime's own roots)"],
  ["--tls-cert FILE", "over TLS, with this client certificate (PEM), for a backend"],
  ["", "that asks for one (fcgi serve --tls-client-ca); needs --tls-key"],
  ["--tls-key FILE", "the private key (PEM) of --tls-cert"],
];

/** The --help lines of the client TLS flags, their descriptions starting at column `column`. */
export function clientTlsHelp(column: number): string {
  return CLIENT_TLS_FLAGS.map(([flag, text]) => `  ${flag.padEnd(column - 3)} ${text}`).join("\n");
}

/** The files named by TLS flags, by flag. */
export type TlsFiles = Record<string, string>;

/** Takes a TLS flag of `names` (with its FILE) into `files`; false for any other flag. */
export function tlsFlag(files: TlsFiles, names: readonly string[], flag: string, take: () => string): boolean {
  if (!names.includes(flag)) return false;
  files[flag] = take();
  return true;
}

/** The client commands' TLS flags. */
export const CLIENT_TLS: readonly string[] = ["--tls-ca", "--tls-cert", "--tls-key"];
/** fcgi serve's TLS flags. */
export const SERVER_TLS: readonly string[] = ["--tls-cert", "--tls-key", "--tls-client-ca"];

/** The text of the file a flag names; a file that cannot be read is a usage error naming both. */
function readPem(files: TlsFiles, flag: string): string | undefined {
  const path = files[flag];
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read '${path}': ${(error as { code?: string }).code ?? (error instanceof Error ? error.message : String(error))}`);
  }
}

/** The Client's TLS options from --tls-ca, --tls-cert, --tls-key (read now); undefined without them. */
export function clientTlsArgs(files: TlsFiles): TlsClientOptions | undefined {
  if (Object.keys(files).length === 0) return undefined;
  if ((files["--tls-cert"] === undefined) !== (files["--tls-key"] === undefined)) throw new UsageError("--tls-cert and --tls-key go together");
  const [ca, cert, key] = CLIENT_TLS.map((flag) => readPem(files, flag));
  return { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert, key: key! }) };
}

/** serve()'s TLS options from --tls-cert, --tls-key, --tls-client-ca (read now, and again on each reload); undefined without them. */
export function serverTlsArgs(files: TlsFiles): TlsServerOptions | undefined {
  if (Object.keys(files).length === 0) return undefined;
  if (files["--tls-cert"] === undefined || files["--tls-key"] === undefined) throw new UsageError("TLS needs both --tls-cert and --tls-key");
  const [cert, key, clientCa] = SERVER_TLS.map((flag) => readPem(files, flag));
  return { cert: cert!, key: key!, ...(clientCa === undefined ? {} : { clientCa }) };
}
