/** `diffeval jpeg --real A [--fake B]`: how far FID moves when only the JPEG compression changes. */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { DEFAULT_QUALITIES, runJpegCheck, type JpegCheckResult } from "../pipeline/jpeg-check.js";
import { describeJpegEncoder } from "../robustness/jpeg-encoder.js";
import { writeJpegReport } from "../robustness/jpeg-report.js";
import { addExtractionOptions, extractorOptions, reportSkipped, subsetOptions, type ExtractionFlags } from "./common-options.js";
import { imageProgress } from "./image-progress.js";

interface JpegFlags extends ExtractionFlags {
  real: string;
  fake?: string;
  qualities: string;
  json?: boolean;
  report?: string;
  cacheVariants?: boolean;
  force?: boolean;
}

export function jpegCommand(): Command {
  const cmd = new Command("jpeg")
    .description("JPEG-robustness check: FID between the real set and its own JPEG copies at several qualities, with PSNR and SSIM")
    .requiredOption("--real <source>", "reference images (folder, list file or zip): the set that is re-encoded")
    .option("--fake <source>", "generated images, stats .npz or reference name: also FID(real, fake) and FID(JPEG(real), fake)")
    .option("--qualities <list>", "comma-separated JPEG qualities (1-100)", DEFAULT_QUALITIES.join(","))
    .option("--json", "print one JSON object")
    .option("--report <dir>", "write a self-contained HTML report (plots and an image strip) to DIR/index.html")
    .option("--cache-variants", "also keep the JPEG copies' features in the on-disk cache")
    .option("--force", "compare even when a stats-file --fake disagrees on protocol or weights");
  return addExtractionOptions(cmd).action(async (flags: JpegFlags) => {
    const progress = imageProgress();
    const result = await runJpegCheck({
      ...extractorOptions(flags),
      ...subsetOptions(flags),
      real: flags.real,
      fake: flags.fake,
      qualities: parseQualities(flags.qualities),
      force: flags.force,
      cacheVariants: flags.cacheVariants,
      onProgress: (pass, done, total) => progress.update(pass, done, total),
    });
    progress.finish();
    reportSkipped(flags.real, result.skipped.real);
    if (flags.fake !== undefined) reportSkipped(flags.fake, result.skipped.fake);
    const report = flags.report ? await writeJpegReport(flags.report, result) : undefined;
    if (report) process.stderr.write(`report: ${report}\n`);
    process.stdout.write(flags.json ? `${JSON.stringify(jpegJson(result))}\n` : jpegTable(result));
  });
}

export function parseQualities(list: string): number[] {
  const parts = list.split(",").map((s) => s.trim()).filter(Boolean);
  const qualities = parts.map(Number);
  const bad = parts.find((p, i) => !/^\d+$/.test(p) || qualities[i] < 1 || qualities[i] > 100);
  if (bad !== undefined || parts.length === 0) {
    throw new DiffevalError("E_USAGE", `--qualities takes comma-separated integers from 1 to 100, got '${list}'`);
  }
  return qualities;
}

/** The JSON object: `results` per quality, the encoder, and the provenance fields of `fid --json`. */
export function jpegJson(r: JpegCheckResult): Record<string, unknown> {
  const { sample: _sample, results, fid_real_vs_fake, encoder, seconds, skipped, ...provenance } = r;
  return {
    results,
    ...(fid_real_vs_fake !== undefined ? { fid_real_vs_fake } : {}),
    encoder,
    ...provenance,
    seconds: Number(seconds.toFixed(3)),
    skipped_real: skipped.real.length,
    skipped_fake: skipped.fake.length,
  };
}

/** Encoder line, one aligned row per quality, the uncompressed baseline, the provenance line. */
export function jpegTable(r: JpegCheckResult): string {
  const hasFake = r.fid_real_vs_fake !== undefined;
  const rows: string[][] = [
    ["quality", "FID(real,JPEG)", "PSNR dB", "SSIM", "bits/px", ...(hasFake ? ["FID(JPEG,fake)"] : [])],
    ...r.results.map((q) => [
      String(q.quality),
      q.fid_real_vs_jpeg.toFixed(4),
      q.psnr.toFixed(2),
      q.ssim.toFixed(4),
      q.bpp.toFixed(2),
      ...(hasFake ? [q.fid_jpeg_vs_fake!.toFixed(4)] : []),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const table = rows.map((row) => row.map((cell, c) => cell.padStart(widths[c])).join("  ")).join("\n");
  const baseline = hasFake ? `FID(real,fake) ${r.fid_real_vs_fake!.toFixed(4)} (the two sets as given)\n` : "";
  const n = r.n_fake === undefined ? "" : `, n_fake ${r.n_fake ?? "unknown"}`;
  const space = r.feature_encoder ? `feature encoder ${r.feature_encoder} (the distances are FDs in its space), ` : "";
  const provenance = `${space}protocol ${r.protocol}, weights ${r.weights_sha256.slice(0, 12)}, n_real ${r.n_real}${n}, ${r.seconds.toFixed(1)} s\n`;
  return `encoder: ${describeJpegEncoder(r.encoder)}\n${table}\n${baseline}${provenance}`;
}
