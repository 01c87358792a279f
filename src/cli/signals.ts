/**
 * SIGINT and SIGTERM for the long-running commands (serve, proxy).
 * @module
 */

/** An AbortSignal that the first SIGINT or SIGTERM aborts, and how to stop listening for them. */
export interface StopSignals {
  /** Aborted by the first SIGINT or SIGTERM: the server closes gracefully. */
  readonly signal: AbortSignal;
  /** Removes the handlers (the process's default handling comes back). */
  release(): void;
}

/**
 * Installs the handlers before anything listens, so a signal during start-up closes the server
 * once it is up instead of killing the process the default way. A second signal exits at once
 * with status 1, for when waiting for in-flight requests is not wanted.
 */
export function stopOnSignals(): StopSignals {
  const controller = new AbortController();
  const stop = (signal: string): void => {
    if (controller.signal.aborted) {
      console.error(`fcgi: ${signal} again: exiting without waiting`);
      process.exit(1);
    }
    console.error(`fcgi: ${signal}: closing`);
    controller.abort();
  };
  const onInt = (): void => stop("SIGINT");
  const onTerm = (): void => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    signal: controller.signal,
    release: () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}
