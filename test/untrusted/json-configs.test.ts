/**
 * Issue 17, the JSON part: the defect classes the fuzz audit found in the JSON files diffeval
 * reads (gate results, baselines and rules, the CLIP tokenizer files, an ONNX Stable Diffusion
 * export's scheduler and model configs, the reference manifest). Each test builds its hostile
 * bytes here, asserts the named error in-process, and, for a crash, hang or blowup, that the
 * built CLI on such a file exits 2 with `error[CODE]` within seconds under a 768 MB RSS cap.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGate } from "../../src/cli/gate.js";
import { parseResults } from "../../src/gate/results.js";
import { parseRule, parseRulesFile } from "../../src/gate/rules.js";
import { alphasCumprod, parseSchedulerConfig } from "../../src/generators/onnx-sd/schedulers/index.js";
import { createScheduler } from "../../src/generators/onnx-sd/schedulers/index.js";
import { openSdExport } from "../../src/generators/onnx-sd/export-folder.js";
import { describeJson, MAX_JSON_DEPTH, parseJsonText } from "../../src/io/read-json.js";
import { loadManifest } from "../../src/reference/manifest.js";
import { loadClipTokenizer } from "../../src/text/clip-tokenizer.js";
import { runCliCapped, type CappedRunResult } from "../helpers/capped-run.js";
import { expectNamedExit } from "../helpers/named-exit.js";
import { errorOf, rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";

const SD = fixture("sd", "sd-tiny");
const SD15_SCHEDULER = {
  _class_name: "PNDMScheduler",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};
const WEIGHTS = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";
/** 10^5 levels: far past JSON.stringify's stack (about 10^4), 200 KB on disk. */
const DEEP = 100_000;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-json-configs-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `[[[...0...]]]`, `depth` arrays deep. */
function deepArray(depth: number): string {
  return `${"[".repeat(depth)}0${"]".repeat(depth)}`;
}

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/**
 * A copy of the sd-tiny export in a temp folder: symlinks to the fixture's files, except the
 * files given in `files` (relative path -> contents), written for real.
 */
function sdExportWith(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const entry of readdirSync(SD, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const rel = path.relative(SD, path.join(entry.parentPath, entry.name));
    mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
    if (!(rel in files)) symlinkSync(path.join(SD, rel), path.join(dir, rel));
  }
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function schedulerExport(name: string, patch: string | Record<string, unknown>): string {
  const text = typeof patch === "string" ? patch : JSON.stringify({ ...SD15_SCHEDULER, ...patch });
  return sdExportWith(name, { "scheduler/scheduler_config.json": text });
}

/** `diffeval generate` on an export folder: two steps, 64 x 64, on the CPU. */
function generate(dir: string): Promise<CappedRunResult> {
  return runCliCapped(["generate", "--model", dir, "--prompt", "a cat", "--steps", "2", "--width", "64", "--height", "64", "--device", "cpu", "--out", path.join(tmp, "out.png")], { timeoutMs: 20_000 });
}


describe("JSON nesting", () => {
  it("generic exception: deeply nested JSON is refused before JSON.parse, naming the file", () => {
    const e = errorOf(() => parseJsonText(deepArray(DEEP), "deep.json", "E_GATE_INPUT", "results"));
    expect(e.code).toBe("E_GATE_INPUT");
    expect(e.message).toMatch(/^deep\.json: arrays\/objects nest deeper than 64 levels \(at character 64\)/);
    // The cap is exact, and brackets inside strings (escaped quotes included) do not count.
    expect(parseJsonText(deepArray(MAX_JSON_DEPTH), "ok.json", "E_GATE_INPUT", "results")).toBeInstanceOf(Array);
    expect(errorOf(() => parseJsonText(deepArray(MAX_JSON_DEPTH + 1), "x.json", "E_GATE_INPUT", "r")).code).toBe("E_GATE_INPUT");
    const text = JSON.stringify({ s: `\\"${"[".repeat(1000)}\\`, t: ["\\", "{{{"] });
    expect(parseJsonText(text, "strings.json", "E_GATE_INPUT", "r")).toEqual(JSON.parse(text));
  });

  it("generic exception: describing a huge or deeply nested value in a message", () => {
    let deep: unknown = 0;
    for (let i = 0; i < DEEP; i++) deep = [deep];
    expect(describeJson(deep)).toBe(`an array (${"[".repeat(37)}...)`);
    const t0 = performance.now();
    const huge = { text: "x".repeat(20_000_000), list: new Array(1_000_000).fill(1) };
    expect(describeJson(huge)).toBe(`an object ({"text":"${"x".repeat(28)}...)`);
    expect(performance.now() - t0).toBeLessThan(500);
    // Ordinary values read as before; an overflowed 1e400 shows as what it is.
    expect(describeJson({ a: [1, "b", null, true] })).toBe('an object ({"a":[1,"b",null,true]})');
    expect(describeJson(JSON.parse("1e400"))).toBe("a number (Infinity)");
  });
});

describe("gate results, baselines and rules", () => {
  const deepResults = () => `{"protocol": ${deepArray(DEEP)}, "weights_sha256": "${WEIGHTS}", "fid": 1}`;
  const valid = JSON.stringify({ fid: 10, protocol: "clean", weights_sha256: WEIGHTS });

  it("generic exception: deeply nested JSON in the gate results (describeJson)", async () => {
    expect(errorOf(() => parseResults(deepResults(), "current.json")).code).toBe("E_GATE_INPUT");
    const current = write("gate/deep-current.json", deepResults());
    const baseline = write("gate/baseline.json", valid);
    expectNamedExit(await runCliCapped(["gate", "--current", current, "--baseline", baseline, "--rule", "fid:+1"]), "E_GATE_INPUT");
  });

  it("generic exception: deeply nested JSON in gate --update-baseline (updateBaseline)", async () => {
    // Valid results with a deep extra field: accepted by the checks, then written back with JSON.stringify.
    const text = `{"fid": 10, "protocol": "clean", "weights_sha256": "${WEIGHTS}", "notes": ${deepArray(DEEP)}}`;
    const current = write("gate/deep-notes.json", text);
    const baseline = write("gate/keep.json", valid);
    const err: string[] = [];
    expect(await runGate({ current, baseline, updateBaseline: true, out: () => {}, err: (t) => void err.push(t) })).toBe(2);
    expect(err.join("")).toMatch(/^error\[E_GATE_INPUT\]: \S*deep-notes\.json: arrays\/objects nest deeper than 64 levels/);
    expectNamedExit(await runCliCapped(["gate", "--current", current, "--baseline", baseline, "--update-baseline"]), "E_GATE_INPUT");
  });

  it("hang: a --rule whose amount has tens of thousands of digits (regex backtracking; found by npm run fuzz)", () => {
    // \d+\.?\d* split a run of n digits n ways; 75,000 zeros and a bad suffix took minutes.
    for (const rule of [`fid[cfg_scale=7.5]:+${"0".repeat(75_000)}x`, `fid:+${"0".repeat(990)}x`, `fid: ${" ".repeat(990)}x`]) {
      const t0 = performance.now();
      expect(errorOf(() => parseRule(rule)).code).toBe("E_GATE_RULE");
      expect(performance.now() - t0).toBeLessThan(100);
    }
  });

  it("accepted but inconsistent: gate --rule fid:+1e400 (an infinite allowance)", () => {
    for (const rule of ["fid:+1e400", "kid:+1e400%", `fid:+1${"0".repeat(400)}`]) {
      const e = errorOf(() => parseRule(rule));
      expect(e.code, rule).toBe("E_GATE_RULE");
      expect(e.message, rule).toMatch(/the allowance .* is not a finite number/);
    }
    // The rules file goes through the same check, in each of its forms.
    for (const entry of ['"fid:+1e400"', '{"metric": "fid", "max_increase": 1e400}', '{"metric": "kid", "max_increase": "1e400%"}']) {
      const e = errorOf(() => parseRulesFile(`{"rules": [${entry}]}`, "gate.json"));
      expect(e.code, entry).toBe("E_GATE_RULE");
      expect(e.message, entry).toMatch(/^gate\.json: rules\[0\].*not a finite number/);
    }
    // Finite allowances, huge or written with an exponent, are still rules.
    expect(parseRule("fid:+1e3").amount).toBe(1000);
    expect(parseRulesFile('{"rules": [{"metric": "kid", "max_increase": "1e1%"}]}', "g.json").rules[0].amount).toBeCloseTo(0.1, 12);
  });
});

describe("CLIP tokenizer files", () => {
  it("generic exception: deeply nested JSON in the CLIP tokenizer files (readFiles)", async () => {
    const vocab = `{"a": ${deepArray(DEEP)}}`;
    const dir = sdExportWith("deep-vocab", { "tokenizer/vocab.json": vocab });
    const e = await rejectionOf(loadClipTokenizer(path.join(dir, "tokenizer")));
    expect(e.code).toBe("E_TOKENIZER_FORMAT");
    expect(e.message).toContain("vocab.json");
    expectNamedExit(await generate(dir), "E_TOKENIZER_FORMAT");
  });

  it("generic exception: a vocabulary id beyond int32, and a prompt word of 300,000 letters", async () => {
    const dir = sdExportWith("big-id", { "tokenizer/vocab.json": '{"a": 4294967296}' });
    const e = await rejectionOf(loadClipTokenizer(path.join(dir, "tokenizer")));
    expect(e.code).toBe("E_TOKENIZER_FORMAT");
    expect(e.message).toMatch(/has id a number \(4294967296\), not an integer from 0 to 2147483647/);
    // BPE merged a long word's pieces with push(...pieces): a RangeError past ~10^5 arguments.
    const tok = await loadClipTokenizer(path.join(SD, "tokenizer"));
    expect(tok.encode("ab".repeat(150_000)).length).toBe(77);
  });
});

describe("the scheduler config of an ONNX export", () => {
  it("generic exception: deeply nested JSON in the scheduler config (KeyReader.bad, KeyReader.choice)", async () => {
    // A value built in-process reaches the messages without the file's depth check.
    let deep: unknown = "linear";
    for (let i = 0; i < DEEP; i++) deep = [deep];
    for (const key of ["beta_schedule", "num_train_timesteps"]) {
      const e = errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, [key]: deep }, "scheduler_config.json", "pndm"));
      expect(e.code, key).toBe("E_SCHEDULER");
      expect(e.message, key).toContain(key);
    }
    const dir = schedulerExport("deep-scheduler", `{"_class_name": "PNDMScheduler", "skip_prk_steps": true, "beta_schedule": ${deepArray(DEEP)}}`);
    const e = await rejectionOf(openSdExport(dir, "cpu"));
    expect(e.code).toBe("E_SD_EXPORT");
    expect(e.message).toContain("scheduler_config.json");
    expectNamedExit(await generate(dir), "E_SD_EXPORT");
  });

  it("generic exception: Invalid typed array length from a huge num_train_timesteps (torchLinspaceF32)", async () => {
    const e = errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, num_train_timesteps: Number.MAX_SAFE_INTEGER }, "s.json", "pndm"));
    expect(e.code).toBe("E_SCHEDULER");
    expect(e.message).toMatch(/"num_train_timesteps" must be an integer from 1 to 100000 \(every released DDPM and Stable Diffusion model uses 1000\)/);
    expectNamedExit(await generate(schedulerExport("max-safe", { num_train_timesteps: Number.MAX_SAFE_INTEGER })), "E_SCHEDULER");
  });

  it("memory blowup: scheduler config with num_train_timesteps of 10^9", async () => {
    expect(errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, num_train_timesteps: 1e9 }, "s.json", "pndm")).code).toBe("E_SCHEDULER");
    expectNamedExit(await generate(schedulerExport("1e9", { num_train_timesteps: 1e9 })), "E_SCHEDULER");
  });

  it("hang: scheduler config with 5 * 10^7 cosine training timesteps", async () => {
    const t0 = performance.now();
    const e = errorOf(() => parseSchedulerConfig({ _class_name: "DDIMScheduler", beta_schedule: "squaredcos_cap_v2", num_train_timesteps: 5e7 }, "s.json"));
    expect(e.code).toBe("E_SCHEDULER");
    expect(performance.now() - t0).toBeLessThan(100);
    expectNamedExit(await generate(schedulerExport("cosine", { _class_name: "DDIMScheduler", beta_schedule: "squaredcos_cap_v2", num_train_timesteps: 5e7 })), "E_SCHEDULER");
  });

  it("accepted but inconsistent: scheduler config with num_train_timesteps 4e8", () => {
    const e = errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, num_train_timesteps: 4e8 }, "/m/scheduler/scheduler_config.json", "pndm"));
    expect(e.code).toBe("E_SCHEDULER");
    expect(e.message).toMatch(/^\/m\/scheduler\/scheduler_config\.json: "num_train_timesteps" must be an integer from 1 to 100000/);
    // The cap is the only limit: 100,000 still builds, and steps_offset must fall inside it.
    expect(alphasCumprod(parseSchedulerConfig({ ...SD15_SCHEDULER, num_train_timesteps: 100_000, beta_end: 0.0001, beta_start: 0.00001 }, "s.json", "pndm")).length).toBe(100_000);
    expect(errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, steps_offset: 1000 }, "s.json", "pndm")).message).toMatch(/"steps_offset" must be an integer from 0 to 999/);
  });

  it("accepted but inconsistent: scheduler config with beta_end 1.5 (NaN init_noise_sigma)", () => {
    for (const [patch, text] of [
      [{ beta_end: 1.5 }, "beta_end 1.5"],
      [{ beta_start: 0 }, "beta_start 0"],
      [{ beta_start: 0.02, beta_end: 0.01 }, "beta_start 0.02 and beta_end 0.01"],
      [{ beta_end: 1e400 }, "beta_end Infinity"],
    ] as const) {
      const e = errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, ...patch }, "s.json", "euler"));
      expect(e.code, text).toBe("E_SCHEDULER");
      expect(e.message, text).toMatch(/beta/);
    }
    // Betas below 1 whose product underflows: the noise level would be Infinity, then NaN.
    const underflow = parseSchedulerConfig({ ...SD15_SCHEDULER, beta_schedule: "linear", beta_start: 0.5, beta_end: 0.9 }, "s.json", "euler");
    const e = errorOf(() => createScheduler("euler", underflow, 10));
    expect(e.code).toBe("E_SCHEDULER");
    expect(e.message).toMatch(/alphas_cumprod falls to 0 .* not a finite float32/);
    // trained_betas: (0, 1), one per timestep.
    expect(errorOf(() => parseSchedulerConfig({ ...SD15_SCHEDULER, num_train_timesteps: 2, trained_betas: [0, 0.5] }, "s.json", "ddim")).code).toBe("E_SCHEDULER");
    // Stable Diffusion's own schedule is untouched: sigma_max 14.6 (init_noise_sigma for leading spacing sqrt(sigma^2 + 1)).
    expect(createScheduler("euler", parseSchedulerConfig({ ...SD15_SCHEDULER, timestep_spacing: "linspace" }, "s.json", "euler"), 10).initNoiseSigma).toBeCloseTo(14.6146, 3);
  });

  it("memory blowup: export folder whose unet/config.json declares sample_size 10^9", async () => {
    for (const [rel, text, what] of [
      ["unet/config.json", '{"sample_size": 1000000000}', /sample_size is 1000000000; expected an integer latent side from 1 to 1024/],
      ["vae_decoder/config.json", '{"scaling_factor": 1e400}', /scaling_factor is Infinity; expected a finite number > 0/],
    ] as const) {
      const e = await rejectionOf(openSdExport(sdExportWith(`bad-${rel.split("/")[0]}`, { [rel]: text }), "cpu"));
      expect(e.code, rel).toBe("E_SD_EXPORT");
      expect(e.message, rel).toContain(rel);
      expect(e.message, rel).toMatch(what);
    }
    expectNamedExit(await runCliCapped(["generate", "--model", path.join(tmp, "bad-unet"), "--prompt", "a", "--device", "cpu", "--out", path.join(tmp, "o.png")]), "E_SD_EXPORT");
  });
});

describe("the reference manifest", () => {
  it("generic exception: deeply nested JSON in the reference manifest", async () => {
    const file = write("manifest/deep.json", `{"entries": ${deepArray(DEEP)}}`);
    const e = errorOf(() => loadManifest(file));
    expect(e.code).toBe("E_MANIFEST");
    expect(e.message).toMatch(/deep\.json: arrays\/objects nest deeper than 64 levels/);
    expectNamedExit(await runCliCapped(["stats", "list"], { env: { DIFFEVAL_REFERENCE_MANIFEST: file } }), "E_MANIFEST");
  });

  it("accepted but inconsistent: a manifest count beyond 2^53", () => {
    const entry = {
      name: "x",
      dataset: "d",
      split: "s",
      resolution: 32,
      protocol: "clean",
      n: 1e300,
      publisher: "p",
      url: "https://example.org/x.npz",
      sha256: null,
      unverified: true,
      format: "mu-sigma",
      keys: { mu: "mu", sigma: "sigma" },
      confirmed: "https://example.org",
    };
    const file = write("manifest/n.json", JSON.stringify({ entries: [entry] }));
    const e = errorOf(() => loadManifest(file));
    expect(e.code).toBe("E_MANIFEST");
    expect(e.message).toMatch(/field "n" must be a positive integer \(below 2\^53\) or null/);
  });
});
