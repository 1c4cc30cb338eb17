/**
 * The CLI's edge: turn a command's outcome into an exit code. DiffevalErrors are the user's to fix:
 * one line `error[CODE]: message`, exit 2. Anything else is our bug: one line too, plus the stack
 * when DIFFEVAL_DEBUG is set.
 */
import { isDiffevalError } from "../errors.js";

export const EXIT_OK = 0;
export const EXIT_FAILED_GATE = 1;
export const EXIT_USAGE = 2;

export function reportError(e: unknown): number {
  if (isDiffevalError(e)) {
    process.stderr.write(`error[${e.code}]: ${e.message}\n`);
    return EXIT_USAGE;
  }
  const err = e as Error;
  process.stderr.write(`error[E_INTERNAL]: ${err?.message ?? String(e)}\n`);
  if (process.env.DIFFEVAL_DEBUG) process.stderr.write(`${err?.stack ?? ""}\n`);
  else process.stderr.write("This is a bug in diffeval; rerun with DIFFEVAL_DEBUG=1 for details and report it.\n");
  return EXIT_USAGE;
}
