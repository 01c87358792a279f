// Placeholder until the 'proxy' command lands; replaced by its owner.
import type { Command } from "../cli.ts";

/** The 'fcgi proxy' command. */
export const command: Command = {
  summary: "proxy",
  help: "fcgi proxy: not implemented yet",
  run(): Promise<number> {
    console.error("fcgi proxy: not implemented yet");
    return Promise.resolve(1);
  },
};
