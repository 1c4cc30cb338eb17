/** `diffeval model fetch | convert | info`: the FID Inception weights and their ONNX conversion. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { cacheDir, convertedModelCachePath, weightsCachePath } from "../models/cache.js";
import { ensureWeightsFile } from "../models/ensure-weights.js";
import { inceptionLayoutSummary } from "../models/inception-onnx.js";
import { readStateDict } from "../models/pth.js";
import { DEFAULT_WEIGHTS_ID, getWeightsEntry } from "../models/registry.js";
import { converterKey, convertWeightsFile, resolveInceptionModel } from "../models/resolve-model.js";
import { createProgress } from "./progress.js";

export function modelCommand(): Command {
  const model = new Command("model").description("fetch, convert and inspect the FID Inception weights");

  model
    .command("fetch")
    .description("download the standard FID weights into the cache (sha256-verified) and convert them to ONNX")
    .action(async () => {
      const bar = createProgress({ label: "weights", unit: "B" });
      const resolved = await resolveInceptionModel({
        allowDownload: true,
        log: (line) => process.stderr.write(`${line}\n`),
        onProgress: (received, total) => bar.update(received, total),
      });
      bar.finish();
      process.stdout.write(`weights ${resolved.weightsPath}\nsha256  ${resolved.weightsSha256}\nonnx    ${resolved.onnxPath}\n`);
    });

  model
    .command("convert")
    .description("convert a .pth weight file to an ONNX model")
    .requiredOption("--weights <file.pth>", "the PyTorch weight file")
    .requiredOption("--out <model.onnx>", "where to write the ONNX model")
    .option("--spatial", "add sFID's spatial output (Mixed_6d.branch1x1, first 7 channels, 2023-d)")
    .action(async (flags: { weights: string; out: string; spatial?: boolean }) => {
      if (!existsSync(flags.weights)) throw new DiffevalError("E_WEIGHTS_MISSING", `${flags.weights}: no such file`);
      const t0 = performance.now();
      const bytes = await convertWeightsFile(flags.weights, { spatial: flags.spatial });
      await writeFileAtomic(flags.out, bytes);
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      process.stderr.write(`wrote ${flags.out} (${(bytes.length / 1e6).toFixed(1)} MB) in ${seconds} s\n`);
    });

  model
    .command("info")
    .description("print the weights' layout summary, sha256 and cache paths")
    .option("--weights <file>", "a .pth or .onnx file (default: $DIFFEVAL_WEIGHTS, then the cache)")
    .action(async (flags: { weights?: string }) => {
      const entry = getWeightsEntry(DEFAULT_WEIGHTS_ID);
      const lines = [
        `standard weights  ${entry.id} (${entry.fileName})`,
        `download url      ${entry.url}`,
        `cache dir         ${cacheDir()}`,
        `cached weights    ${weightsCachePath(entry)}${existsSync(weightsCachePath(entry)) ? "" : " (not present)"}`,
      ];
      const file = await ensureWeightsFile({ weights: flags.weights, allowDownload: false }).catch((e: unknown) => {
        if (flags.weights) throw e;
        return undefined;
      });
      if (file) {
        lines.push(`weights file      ${file.path} (from ${file.source})`, `sha256            ${file.sha256}`);
        if (file.kind === "pth") {
          const buf = await readFile(file.path);
          const summary = inceptionLayoutSummary(readStateDict(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), file.path));
          lines.push(`layout            ${summary}`);
          lines.push(`converted onnx    ${convertedModelCachePath(file.sha256, converterKey(false))}`);
        }
      } else {
        lines.push("weights file      none found: run `diffeval model fetch`, or pass --weights FILE / set DIFFEVAL_WEIGHTS");
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });

  return model;
}
