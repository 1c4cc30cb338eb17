import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../helpers/fixtures.js";

describe("the package", () => {
  it("exports the library API under its name (import { computeFid, kid } from 'diffeval')", () => {
    const out = execFileSync(
      process.execPath,
      ["--input-type=module", "-e", "const m = await import('diffeval'); console.log([m.computeFid, m.kid, m.prdc, m.frechetDistance, m.fitGaussian].map((f) => typeof f).join(','))"],
      { cwd: projectRoot, encoding: "utf8" },
    );
    expect(out.trim()).toBe("function,function,function,function,function");
  });
});
