#!/usr/bin/env node
/**
 * The `fcgi` command: `serve` runs an app behind a web server; `request`, `values` and `proxy`
 * talk to FastCGI backends such as PHP-FPM. Argument parsing and wiring only; no protocol logic.
 *
 * @example
 * ```sh
 * npx fcgi serve app.ts --listen 127.0.0.1:9000
 * deno run -A jsr:@fcgi/fcgi/cli values 127.0.0.1:9000
 * ```
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "./cli/command.ts";

export type { Command } from "./cli/command.ts";

const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./cli/serve.ts")).command,
  request: async () => (await import("./cli/request.ts")).command,
  values: async () => (await import("./cli/values.ts")).command,
  proxy: async () => (await import("./cli/proxy.ts")).command,
  status: async () => (await import("./cli/status.ts")).command,
};

const usage = `fcgi: FastCGI for Deno, Bun and Node

Usage: fcgi <command> [options]

Commands:
  serve     run a fetch-handler or node:http app module as a FastCGI application
  request   send one request to a FastCGI backend and print the response
  values    ask a FastCGI backend for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS
  proxy     an HTTP front (gateway) for a FastCGI backend such as PHP-FPM
  status    print the status page of an fcgi pool or of PHP-FPM, or watch it as a table

Run 'fcgi <command> --help' for a command's options.`;

/** Runs the CLI with the given arguments (without the program name) and resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    console.log(VERSION);
    return 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    console.error(`fcgi: unknown command '${name}'\n\n${usage}`);
    return 2;
  }
  const command = await load();
  // After "--" every argument is a positional one, even one spelled --help.
  const end = rest.indexOf("--");
  const options = end === -1 ? rest : rest.slice(0, end);
  if (options.includes("--help") || options.includes("-h")) {
    console.log(command.help);
    return 0;
  }
  return await command.run(rest);
}

/** The version of this package. */
export const VERSION = "0.1.0";

if ((import.meta as { main?: boolean }).main ?? isMainModule()) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (error) => { console.error(`fcgi: ${error instanceof Error ? error.message : error}`); process.exitCode = 1; },
  );
}

function isMainModule(): boolean {
  // Node before 24.2 has no import.meta.main: compare this module with the script Node was
  // started with, through symlinks (npx runs node_modules/.bin/fcgi, a link to this file).
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
