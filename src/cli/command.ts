/**
 * The shape of an `fcgi` subcommand, which src/cli.ts dispatches to and each src/cli/*.ts module
 * exports as `command`.
 * @module
 */

/** One subcommand: its help text and its entry point, returning the exit code. */
export interface Command {
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}
