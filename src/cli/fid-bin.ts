#!/usr/bin/env node
/**
 * The `fid` bin: `fid --real A --fake B` is `diffeval fid --real A --fake B`. It exists so that the
 * literal `eval fid --real A --fake B` works in POSIX shells, whose `eval` builtin re-runs its
 * arguments as the command `fid --real A --fake B`.
 */
import { main } from "./main.js";

main(["fid", ...process.argv.slice(2)]).then((code) => process.exit(code));
