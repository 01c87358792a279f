// Placeholder until the 'values' command lands; replaced by its owner.
import type { Command } from "../cli.ts";

/** The 'fcgi values' command. */
export const command: Command = {
  summary: "values",
  help: "fcgi values: not implemented yet",
  run(): Promise<number> {
    console.error("fcgi values: not implemented yet");
    return Promise.resolve(1);
  },
};
