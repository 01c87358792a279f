// Placeholder until the 'serve' command lands; replaced by its owner.
import type { Command } from "../cli.ts";

/** The 'fcgi serve' command. */
export const command: Command = {
  summary: "serve",
  help: "fcgi serve: not implemented yet",
  run(): Promise<number> {
    console.error("fcgi serve: not implemented yet");
    return Promise.resolve(1);
  },
};
