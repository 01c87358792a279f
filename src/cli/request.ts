// Placeholder until the 'request' command lands; replaced by its owner.
import type { Command } from "../cli.ts";

/** The 'fcgi request' command. */
export const command: Command = {
  summary: "request",
  help: "fcgi request: not implemented yet",
  run(): Promise<number> {
    console.error("fcgi request: not implemented yet");
    return Promise.resolve(1);
  },
};
