/**
 * `diffeval features SOURCE --out feats.npz|feats.npy`: pool3 features (or the --encoder's) in source
 * order, with the file list and how they were made: one `.npz` (io/features-file.ts), or a `.npy`
 * with a `.json` sidecar. Either is a source for fid and metrics. `--logits` adds the N x 1008 logits as .npy.
 */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { featuresNpy, featuresSidecarPath, FEATURES_FILE_KIND, writeFeaturesNpz } from "../io/features-file.js";
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
      "extract float32 features (N x 2048 Inception pool3, or the --encoder's embeddings) to one .npz with the file list and meta, " +
        "or to a .npy with a .json sidecar listing the files; either is a source for fid and metrics",
    )
    .argument("<source>", "folder, list file or zip of images")
    .requiredOption("--out <feats.npz|feats.npy>", "features (N x d float32)")
    .option("--logits <out.npy>", "also write the N x 1008 logits");
  return addExtractionOptions(cmd).action(async (spec: string, flags: FeaturesFlags) => {
    if (!/\.np[yz]$/i.test(flags.out)) throw new DiffevalError("E_USAGE", `--out must end in .npz or .npy, got '${flags.out}'`);
    if (flags.logits !== undefined && !/\.npy$/i.test(flags.logits)) throw new DiffevalError("E_USAGE", `--logits must end in .npy, got '${flags.logits}'`);
    const options = extractorOptions(flags);
    if (flags.logits && (options.encoder ?? "inception") !== "inception") {
      throw new DiffevalError("E_USAGE", `--logits exists only for the inception encoder, not ${options.encoder}`);
    }
    const progress = imageProgress();
    await withExtraction([spec], { ...options, ...subsetOptions(flags) }, async ([source], extractor) => {
      const out = await extractor.extract(source!.items, (done, total) => progress.update("images", done, total));
      progress.finish();
      reportSkipped(spec, out.skipped);
      if (flags.logits) {
        await writeFileAtomic(flags.logits, writeNpy({ dtype: "<f4", shape: [out.logits.n, out.logits.d], data: out.logits.data }));
      }
      const made = {
        source: spec,
        encoder: extractor.encoder,
        protocol: extractor.protocol,
        weights_sha256: extractor.model.weightsSha256,
        skipped: out.skipped,
      };
      let wrote = flags.out;
      if (/\.npz$/i.test(flags.out)) {
        const meta = { ...made, tool: "diffeval", tool_version: VERSION, date: new Date().toISOString() };
        await writeFileAtomic(flags.out, writeFeaturesNpz(out.embedding, out.names, meta));
      } else {
        await writeFileAtomic(flags.out, featuresNpy(out.embedding));
        const sidecar = featuresSidecarPath(flags.out);
        const listing = { kind: FEATURES_FILE_KIND, ...made, n: out.embedding.n, d: out.embedding.d, files: out.names, version: VERSION };
        await writeFileAtomic(sidecar, `${JSON.stringify(listing, null, 2)}\n`);
        wrote += ` and ${sidecar}`;
      }
      process.stderr.write(`wrote ${wrote} (${out.embedding.n} x ${out.embedding.d}); ${out.inferred} image(s) inferred, ${out.embedding.n - out.inferred} from the cache\n`);
    });
  });
}
