/** The options of the `stats` command group, shared by its subcommands (read with optsWithGlobals()). */
import type { Command } from "commander";
import { DiffevalError } from "../errors.js";
import type { ExtractionFlags } from "./common-options.js";

export interface StatsFlags extends ExtractionFlags {
  out?: string;
  shard?: string;
}

/** The group's options as seen from a subcommand. */
export function statsFlags(cmd: Command): StatsFlags {
  return cmd.optsWithGlobals() as StatsFlags;
}

/** --out, required and a .npz. */
export function requireNpzOut(out: string | undefined): string {
  if (out === undefined) throw new DiffevalError("E_USAGE", "--out <file.npz> is required: where to write the statistics");
  if (!/\.npz$/i.test(out)) throw new DiffevalError("E_USAGE", `--out must name a .npz file, got '${out}'`);
  return out;
}

/** Refuses group options that mean nothing to subcommand `name` (rather than ignoring them). */
export function refuseFlags(flags: StatsFlags, name: string, keys: readonly (keyof StatsFlags)[]): void {
  for (const key of keys) {
    if (flags[key] !== undefined) {
      const flag = `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new DiffevalError("E_USAGE", `stats ${name} does not take ${flag}`);
    }
  }
}
