/** The `diffeval` program: its commands, and the mapping of outcomes to exit codes. */
import { Command } from "commander";
import { VERSION } from "../version.js";
import { isDiffevalError } from "../errors.js";
import { clipscoreCommand } from "./clipscore.js";
import { controlCommand } from "./control.js";
import { doctorCommand } from "./doctor.js";
import { featuresCommand } from "./features.js";
import { gateCommand } from "./gate.js";
import { generateCommand } from "./generate.js";
import { jpegCommand } from "./jpeg.js";
import { fidCommand } from "./fid.js";
import { metricsCommand } from "./metrics.js";
import { modelCommand } from "./model.js";
import { EXIT_FAILED_GATE, EXIT_OK, EXIT_USAGE, reportError } from "./run-command.js";
import { statsCommand } from "./stats.js";
import { sweepCommand } from "./sweep.js";
import { subjectCommand } from "./subject.js";

export function buildProgram(): Command {
  const program = new Command("diffeval")
    .description("evaluation suite for generative image models: FID and friends, comparable with pytorch-fid and clean-fid")
    .version(VERSION)
    .showHelpAfterError();
  program.addCommand(fidCommand());
  program.addCommand(metricsCommand());
  program.addCommand(statsCommand());
  program.addCommand(featuresCommand());
  program.addCommand(sweepCommand());
  program.addCommand(jpegCommand());
  program.addCommand(gateCommand());
  program.addCommand(modelCommand());
  program.addCommand(clipscoreCommand());
  program.addCommand(controlCommand());
  program.addCommand(subjectCommand());
  program.addCommand(generateCommand());
  program.addCommand(doctorCommand());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // Usage errors in any subcommand must reach us (exit 2), not end the process with commander's 1.
  // Commander's own usage errors ("error: unknown option '--x'") get the code every other error line
  // carries (DESIGN.md: the CLI prints `error[CODE]: message`).
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, "error[E_USAGE]: ")) });
    cmd.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return EXIT_OK;
  } catch (e) {
    const code = (e as { code?: string }).code;
    // commander has already printed its own message for usage errors, --help and --version.
    if (code === "commander.helpDisplayed" || code === "commander.version" || code === "commander.help") return EXIT_OK;
    if (typeof code === "string" && code.startsWith("commander.")) return EXIT_USAGE;
    // The gate has printed its table and verdicts: a regression is exit 1, not an input error.
    if (isDiffevalError(e, "E_GATE_FAILED")) return EXIT_FAILED_GATE;
    return reportError(e);
  }
}
