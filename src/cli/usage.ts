/**
 * Command-line mistakes, shared by the fcgi commands.
 * @module
 */

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
