/**
 * One list of error codes (ERROR_CODES in src/errors.ts): README.md's "Errors" table shows exactly
 * its rows, and every code src/ mentions is one of them, so the three cannot drift apart.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DiffevalError, ERROR_CODES, isDiffevalError, isErrorCode, type ErrorCode } from "../src/errors.js";
import { projectRoot } from "./helpers/fixtures.js";

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];
/** A code as it appears in source text: a word starting E_ and an upper-case letter. */
const CODE_WORD = /\bE_[A-Z][A-Z0-9_]*\b/g;

/** The table README.md should show, one line per code, in ERROR_CODES' order. */
function expectedTableRows(): string[] {
  return CODES.map((code) => `| \`${code}\` | ${ERROR_CODES[code].when} | ${ERROR_CODES[code].fix} |`);
}

/** The code rows of the table under README.md's "## Errors" heading. */
function readmeTableRows(): string[] {
  const readme = readFileSync(path.join(projectRoot, "README.md"), "utf8");
  const start = readme.search(/^## Errors$/m);
  expect(start, 'README.md has no "## Errors" section').toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + 1);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section.split("\n").filter((line) => line.startsWith("| `E_"));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

/** Every code word in src/ outside errors.ts, with the files that mention it. */
function codesMentionedInSrc(): Map<string, string[]> {
  const src = path.join(projectRoot, "src");
  const found = new Map<string, string[]>();
  for (const file of sourceFiles(src)) {
    if (path.relative(src, file) === "errors.ts") continue;
    for (const word of new Set(readFileSync(file, "utf8").match(CODE_WORD) ?? [])) {
      found.set(word, [...(found.get(word) ?? []), path.relative(projectRoot, file)]);
    }
  }
  return found;
}

describe("error codes", () => {
  it("README's Errors table lists exactly the codes of ERROR_CODES, with their texts", () => {
    const expected = expectedTableRows();
    // On failure, the expected table is printed whole: paste it under the README's header row.
    expect(readmeTableRows().join("\n"), `README.md's Errors table should read:\n${expected.join("\n")}\n`).toBe(expected.join("\n"));
  });

  it("no table text holds a '|' (it would split the README's table cell)", () => {
    for (const code of CODES) expect(`${ERROR_CODES[code].when} ${ERROR_CODES[code].fix}`, code).not.toContain("|");
  });

  it("every code src/ mentions is in ERROR_CODES", () => {
    const unknown = [...codesMentionedInSrc()].filter(([word]) => !isErrorCode(word));
    expect(unknown.map(([word, files]) => `${word} (${files.join(", ")})`)).toEqual([]);
  });

  it("every code in ERROR_CODES is used somewhere in src/ (no dead codes)", () => {
    const used = codesMentionedInSrc();
    expect(CODES.filter((code) => !used.has(code))).toEqual([]);
  });

  it("isErrorCode accepts the codes only, not inherited keys or near misses", () => {
    for (const code of CODES) expect(isErrorCode(code)).toBe(true);
    for (const other of ["E_ARGUMENT", "E_STATS_DIM", "e_usage", "toString", "constructor", "", undefined, 2]) expect(isErrorCode(other)).toBe(false);
  });

  it("DiffevalError takes ErrorCode only; isDiffevalError matches the code", () => {
    const e = new DiffevalError("E_USAGE", "--x must be positive");
    expect(isDiffevalError(e, "E_USAGE")).toBe(true);
    expect(isDiffevalError(e, "E_SOURCE")).toBe(false);
    expect(isDiffevalError(new Error("E_USAGE"))).toBe(false);
    // @ts-expect-error a code outside the union does not type-check (tsc --noEmit fails if it does)
    expect(new DiffevalError("E_NOT_A_CODE", "x").code).toBe("E_NOT_A_CODE");
    const plain: string = "E_USAGE";
    // @ts-expect-error a plain string variable does not type-check either: narrow it with isErrorCode
    expect(new DiffevalError(plain, "x").code).toBe("E_USAGE");
  });
});
