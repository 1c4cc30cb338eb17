import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommandGenerator } from "../../src/generators/command.js";
import type { GenerationRequest } from "../../src/generators/generator.js";

/**
 * A stand-in for a user's generation script: `gen.mjs MODE OUT LOG ARGS...`. It logs its argv
 * as JSON and then, by mode: copies the PNG (or JPEG) fixture to OUT, fails with a message on
 * stderr, writes nothing, or sleeps after starting a grandchild (to check the group kill).
 */
const SCRIPT = `
import { copyFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
const [mode, out, log, ...rest] = process.argv.slice(2);
writeFileSync(log, JSON.stringify(process.argv.slice(2)));
if (mode === "png") copyFileSync(process.env.FIXTURE_PNG, out);
else if (mode === "jpg") copyFileSync(process.env.FIXTURE_JPG, out);
else if (mode === "fail") { process.stderr.write("loading model...\\nRuntimeError: CUDA out of memory\\n"); process.exit(3); }
else if (mode === "sleep") {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  writeFileSync(log + ".grandchild", String(child.pid));
  setTimeout(() => {}, 60000);
}
`;

let dir: string;
let script: string;
let env: Record<string, string>;

function request(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return { prompt: "a red circle", negativePrompt: "", cfgScale: 7.5, seed: 42, steps: 20, width: 16, height: 16, extra: {}, ...over };
}

/** Running (a zombie waiting for a reaper that never comes, as in some containers, counts as dead). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
  return !/^\d+ \(.*\) Z/.test(stat);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-cmd-test-"));
  script = path.join(dir, "gen.mjs");
  writeFileSync(script, SCRIPT);
  const img = sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 200, g: 10, b: 10 } } });
  writeFileSync(path.join(dir, "fixture.png"), await img.clone().png().toBuffer());
  writeFileSync(path.join(dir, "fixture.jpg"), await img.clone().jpeg().toBuffer());
  env = { FIXTURE_PNG: path.join(dir, "fixture.png"), FIXTURE_JPG: path.join(dir, "fixture.jpg") };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("command generator", () => {
  it("substitutes every placeholder per argument and returns the PNG the script wrote", async () => {
    const log = path.join(dir, "argv.json");
    const gen = createCommandGenerator({
      argv: [process.execPath, script, "png", "{out}", log, "{prompt}", "--neg={negative}", "{cfg}", "{seed}", "{steps}", "{width}x{height}", "--lora=x:{extra.lora}", '{"json":1}'],
      env,
    });
    const image = await gen.generate(request({ negativePrompt: "blurry", extra: { lora: 0.8 } }));
    const argv = JSON.parse(readFileSync(log, "utf8")) as string[];
    expect(argv.slice(3)).toEqual(["a red circle", "--neg=blurry", "7.5", "42", "20", "16x16", "--lora=x:0.8", '{"json":1}']);
    expect(image.format).toBe("png");
    expect(Buffer.from(image.bytes).equals(readFileSync(env.FIXTURE_PNG))).toBe(true);
    expect(image.used).toMatchObject({ seed: 42, cfgScale: 7.5, negativePrompt: "blurry", extra: { lora: 0.8 } });
    // The temporary {out} is removed once the bytes are read.
    expect(existsSync(argv[1])).toBe(false);
    expect(gen.concurrency).toBe(1);
  });

  it("passes a prompt with spaces, quotes and $(...) verbatim, without a shell", async () => {
    const log = path.join(dir, "argv-shell.json");
    const marker = path.join(dir, "pwned");
    const prompt = `it's a "test" $(touch ${marker}) \`touch ${marker}\` ; rm -rf / && echo $HOME *`;
    const gen = createCommandGenerator({ argv: [process.execPath, script, "png", "{out}", log, "{prompt}"], env });
    await gen.generate(request({ prompt }));
    const argv = JSON.parse(readFileSync(log, "utf8")) as string[];
    expect(argv[3]).toBe(prompt);
    expect(existsSync(marker)).toBe(false);
  });

  it("detects a JPEG from its magic bytes even when {out} ends in .png", async () => {
    const gen = createCommandGenerator({ argv: [process.execPath, script, "jpg", "{out}", path.join(dir, "argv-jpg.json")], env });
    expect((await gen.generate(request())).format).toBe("jpg");
  });

  it("reports a non-zero exit with the tail of stderr", async () => {
    const gen = createCommandGenerator({ argv: [process.execPath, script, "fail", "{out}", path.join(dir, "argv-fail.json")], env });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/exited with code 3/);
    expect(err.message).toMatch(/RuntimeError: CUDA out of memory/);
  });

  it("reports a command that exits 0 without writing {out}", async () => {
    const gen = createCommandGenerator({ argv: [process.execPath, script, "none", "{out}", path.join(dir, "argv-none.json")], env });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/wrote no image to \{out\}/);
  });

  it("kills the whole process group on timeout", async () => {
    const log = path.join(dir, "argv-sleep.json");
    const gen = createCommandGenerator({ argv: [process.execPath, script, "sleep", "{out}", log], env, timeoutMs: 2500 });
    const started = Date.now();
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/timed out after 2500 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
    const grandchild = Number(readFileSync(`${log}.grandchild`, "utf8"));
    await new Promise((r) => setTimeout(r, 200));
    expect(isAlive(grandchild)).toBe(false);
  });

  it("stops the command when the caller aborts", async () => {
    const gen = createCommandGenerator({ argv: [process.execPath, script, "sleep", "{out}", path.join(dir, "argv-abort.json")], env });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopped by test")), 300);
    await expect(gen.generate(request(), controller.signal)).rejects.toThrow("stopped by test");
  });

  it("reports a missing program and a missing extra by name", async () => {
    const missing = createCommandGenerator({ argv: ["/nonexistent/diffeval-gen", "{out}"] });
    await expect(missing.generate(request())).rejects.toThrow(/command not found: \/nonexistent\/diffeval-gen/);
    const gen = createCommandGenerator({ argv: [process.execPath, script, "png", "{out}", path.join(dir, "x.json"), "{extra.lora}"], env });
    await expect(gen.generate(request())).rejects.toThrow(/\{extra\.lora\}.*no extra "lora"/);
  });

  it("rejects a template without {out} or with an unknown placeholder", () => {
    expect(() => createCommandGenerator({ argv: ["gen", "{prompt}"] })).toThrow(/must contain \{out\}/);
    expect(() => createCommandGenerator({ argv: ["gen", "{out}", "{cgf}"] })).toThrow(/unknown placeholder \{cgf\}/);
    expect(() => createCommandGenerator({ argv: [] })).toThrow(/non-empty array/);
  });
});
