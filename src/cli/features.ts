/** `diffeval features SOURCE --out feats.npy`: pool3 features (and optionally logits) as .npy, in source order. */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { writeNpy } from "../io/npy.js";
import { withExtraction } from "../pipeline/with-extraction.js";
import { VERSION } from "../version.js";
import { addExtractionOptions, extractorOptions, reportSkipped, subsetOptions, type ExtractionFlags } from "./common-options.js";
import { imageProgress } from "./image-progress.js";

interface FeaturesFlags extends ExtractionFlags {
  out: string;
  logits?: string;
}

export function featuresCommand(): Command {
  const cmd = new Command("features")
    .description(
      "extract float32 features to a .npy (N x 2048 Inception pool3, or the --encoder's embeddings), with a .json sidecar listing the files",
    )
    .argument("<source>", "folder, list file or zip of images")
    .requiredOption("--out <feats.npy>", "features (N x d float32)")
    .option("--logits <out.npy>", "also write the N x 1008 logits");
  return addExtractionOptions(cmd).action(async (spec: string, flags: FeaturesFlags) => {
    for (const f of [flags.out, flags.logits]) {
      if (f !== undefined && !/\.npy$/i.test(f)) throw new DiffevalError("E_USAGE", `output files must end in .npy, got '${f}'`);
    }
    const options = extractorOptions(flags);
    if (flags.logits && (options.encoder ?? "inception") !== "inception") {
      throw new DiffevalError("E_USAGE", `--logits exists only for the inception encoder, not ${options.encoder}`);
    }
    const progress = imageProgress();
    await withExtraction([spec], { ...options, ...subsetOptions(flags) }, async ([source], extractor) => {
      const out = await extractor.extract(source!.items, (done, total) => progress.update("images", done, total));
      progress.finish();
      reportSkipped(spec, out.skipped);
      await writeFileAtomic(flags.out, writeNpy({ dtype: "<f4", shape: [out.embedding.n, out.embedding.d], data: out.embedding.data }));
      if (flags.logits) {
        await writeFileAtomic(flags.logits, writeNpy({ dtype: "<f4", shape: [out.logits.n, out.logits.d], data: out.logits.data }));
      }
      const sidecar = flags.out.replace(/\.npy$/i, ".json");
      const listing = {
        source: spec,
        encoder: extractor.encoder,
        protocol: extractor.protocol,
        weights_sha256: extractor.model.weightsSha256,
        n: out.embedding.n,
        d: out.embedding.d,
        files: out.names,
        skipped: out.skipped,
        version: VERSION,
      };
      await writeFileAtomic(sidecar, `${JSON.stringify(listing, null, 2)}\n`);
      process.stderr.write(`wrote ${flags.out} (${out.embedding.n} x ${out.embedding.d}) and ${sidecar}; ${out.inferred} image(s) inferred, ${out.embedding.n - out.inferred} from the cache\n`);
    });
  });
}
