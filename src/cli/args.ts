/**
 * Argument parsing shared by the fcgi commands, and how they report a command-line mistake.
 * @module
 */
import { parseAddress } from "../address.ts";
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
