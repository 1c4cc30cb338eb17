/**
 * How the CLI reports errors (DESIGN.md, "Types at the seams"): one line `error[CODE]: message` on
 * stderr, exit 2 for usage and input errors, commander's own usage errors included; exit 1 is the
 * gate's alone (test/gate/run-gate.test.ts).
 */
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { reportError } from "../../src/cli/run-command.js";
import { DiffevalError } from "../../src/errors.js";
import { runCli } from "../helpers/cli.js";

/** What reportError writes to stderr for `e`, and the exit code it returns. */
function reported(e: unknown): { code: number; stderr: string } {
  const err: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { code: reportError(e), stderr: err.join("") };
  } finally {
    process.stderr.write = write;
  }
}

describe("CLI error lines and exit codes", () => {
  it("a DiffevalError is one line error[CODE]: message, exit 2", () => {
    const r = reported(new DiffevalError("E_NPZ_FORMAT", "x.npz: not a readable .npz (zip) archive"));
    expect(r).toEqual({ code: 2, stderr: "error[E_NPZ_FORMAT]: x.npz: not a readable .npz (zip) archive\n" });
  });

  it("anything else is E_INTERNAL, exit 2, with a line asking for a report", () => {
    const r = reported(new TypeError("cannot read properties of undefined"));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_INTERNAL\]: cannot read properties of undefined\n.*bug in diffeval/);
  });

  it("commander's usage errors carry E_USAGE and exit 2, in subcommands too", async () => {
    const missing = await runCli(["fid", "--real", "x"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error\[E_USAGE\]: required option '--fake <source>' not specified\n/);
    const unknown = await runCli(["nosuch"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error\[E_USAGE\]: unknown command 'nosuch'\n/);
    const option = await runCli(["model", "info", "--bogus"]);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/^error\[E_USAGE\]: unknown option '--bogus'\n/);
  });

  it("an input error from a command is its code and exit 2", async () => {
    const nowhere = path.join(os.tmpdir(), "diffeval-no-such-folder", "real");
    const r = await runCli(["fid", "--real", nowhere, "--fake", nowhere]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error[E_SOURCE]: ${nowhere}: no such file or folder\n`);
  });

  it("--help and --version exit 0", async () => {
    expect((await runCli(["--help"])).code).toBe(0);
    expect((await runCli(["--version"])).code).toBe(0);
  });
});
