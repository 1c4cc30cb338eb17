/**
 * The `diffeval jpeg --report DIR` page: the results table, FID plotted against quality and
 * against PSNR, and one image at every quality with an enlarged crop, so that the eye can check
 * how little changed while the FID column says how much the network noticed. One self-contained
 * file (report/html.ts): it opens offline and loads nothing.
 */
import path from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import type { RgbImage } from "../io/decode.js";
import { escapeHtml, htmlDocument, htmlTable } from "../report/html.js";
import { dataUri, enlargedCropPng, pngBytes, type CropBox } from "../report/images.js";
import { renderPlotSvg, type PlotSpec } from "../report/plot.js";
import type { JpegCheckResult, JpegQualityResult, JpegSample } from "../pipeline/jpeg-check.js";
import { describeJpegEncoder } from "./jpeg-encoder.js";

export const REPORT_FILE = "index.html";

/** Writes DIR/index.html (atomically: a killed run leaves the previous report or the new one) and returns its path. */
export async function writeJpegReport(dir: string, result: JpegCheckResult): Promise<string> {
  const file = path.join(dir, REPORT_FILE);
  await writeFileAtomic(file, await jpegReportHtml(result), { elsewhere: "choose another --report folder" });
  return file;
}

export async function jpegReportHtml(r: JpegCheckResult): Promise<string> {
  const body = [
    `<h1>JPEG robustness of FID</h1>`,
    `<p class="muted">real: <code>${escapeHtml(r.real)}</code>${r.fake ? `, fake: <code>${escapeHtml(r.fake)}</code>` : ""}</p>`,
    `<p>${summarySentence(r)}</p>`,
    `<h2>FID against JPEG quality and PSNR</h2>`,
    `<figure class="plot">${await renderPlotSvg(fidPlotSpec(r))}</figure>`,
    `<h2>Numbers</h2>`,
    resultsTable(r),
    `<p class="muted">Encoder: ${escapeHtml(describeJpegEncoder(r.encoder))}.</p>`,
    `<h2>One image at each quality</h2>`,
    await imageStrip(r.sample),
    `<p class="muted">${escapeHtml(provenanceText(r))}</p>`,
  ].join("\n");
  return htmlDocument({ title: `JPEG robustness: ${r.real}`, body, css: REPORT_CSS });
}

/** Width of each image in the strip (CSS px): six fit on one row of the 1100 px page. */
const STRIP_WIDTH = 160;

const REPORT_CSS = `
  .strip { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
  .strip figure { width: ${STRIP_WIDTH}px; }
  .frame { position: relative; line-height: 0; }
  .frame img { width: ${STRIP_WIDTH}px; height: auto; }
  .box { position: absolute; border: 1px solid #e33; box-sizing: border-box; }
  .crop { display: block; margin-top: 0.4rem; image-rendering: pixelated; }
  figure.plot svg { max-width: 100%; height: auto; }
`;

function summarySentence(r: JpegCheckResult): string {
  const worst = r.results[r.results.length - 1];
  const best = r.results[0];
  const minPsnr = Math.min(...r.results.map((q) => q.psnr));
  const minSsim = Math.min(...r.results.map((q) => q.ssim));
  const parts = [
    `Re-encoding the ${r.n_real} real images as JPEG moves FID(real, JPEG(real)) from ${fmt(best.fid_real_vs_jpeg)} at quality ${best.quality} ` +
      `to ${fmt(worst.fid_real_vs_jpeg)} at quality ${worst.quality}, while the mean PSNR stays at ${fmt(minPsnr, 1)} dB or more ` +
      `and the mean SSIM at ${fmt(minSsim, 3)} or more.`,
  ];
  if (r.fid_real_vs_fake !== undefined) {
    parts.push(`For scale: FID(real, fake) = ${fmt(r.fid_real_vs_fake)}.`);
  }
  return escapeHtml(parts.join(" "));
}

function resultsTable(r: JpegCheckResult): string {
  const hasFake = r.fid_real_vs_fake !== undefined;
  const columns = [
    { header: "quality", numeric: true },
    { header: "FID(real, JPEG(real))", numeric: true },
    { header: "PSNR (dB)", numeric: true },
    { header: "SSIM", numeric: true },
    { header: "bits/pixel", numeric: true },
    ...(hasFake ? [{ header: "FID(JPEG(real), fake)", numeric: true }] : []),
  ];
  const rows = r.results.map((q) => [
    String(q.quality),
    fmt(q.fid_real_vs_jpeg),
    fmt(q.psnr, 2),
    fmt(q.ssim, 4),
    fmt(q.bpp, 2),
    ...(hasFake ? [fmt(q.fid_jpeg_vs_fake!)] : []),
  ]);
  if (hasFake) rows.push(["uncompressed", "0", "", "", "", fmt(r.fid_real_vs_fake!)]);
  return htmlTable(columns, rows);
}

const SERIES_REAL = "FID(real, JPEG(real))";
const SERIES_FAKE = "FID(JPEG(real), fake)";
const SERIES_BASELINE = "FID(real, fake), uncompressed";

/**
 * FID against quality (left) and against mean PSNR (right). One row per question, each with its
 * own FID axis, since the two are often an order of magnitude apart: how far compression alone
 * moves FID (real vs its JPEG copy), and, with a fake set, whether compressing the reference
 * closes the gap to the fakes (JPEG(real) vs fake, over the uncompressed FID as a dashed rule).
 */
export function fidPlotSpec(r: JpegCheckResult): PlotSpec {
  const row = (series: string, fid: (q: JpegQualityResult) => number | undefined) =>
    r.results.flatMap((q) => {
      const value = fid(q);
      return value === undefined ? [] : [{ quality: q.quality, psnr: finiteOrNull(q.psnr), series, fid: value }];
    });
  const hasFake = r.fid_real_vs_fake !== undefined;
  const series = [SERIES_REAL, ...(hasFake ? [SERIES_FAKE, SERIES_BASELINE] : [])];
  const color = { field: "series", type: "nominal", title: null, scale: { domain: series } } as const;
  const baseline = hasFake
    ? [
        {
          data: { values: [{ fid: r.fid_real_vs_fake, series: SERIES_BASELINE }] },
          mark: { type: "rule", strokeDash: [6, 4] },
          encoding: { y: { field: "fid", type: "quantitative" }, color },
        },
      ]
    : [];
  const panel = (points: ReturnType<typeof row>, x: "quality" | "psnr", extra: object[]) => ({
    width: 380,
    height: 220,
    layer: [
      {
        data: { values: x === "psnr" ? points.filter((p) => p.psnr !== null) : points },
        mark: { type: "line", point: { size: 60, filled: true } },
        encoding: {
          x: { field: x, type: "quantitative", title: x === "quality" ? "JPEG quality" : "mean PSNR (dB)", scale: { zero: false, reverse: true } },
          y: { field: "fid", type: "quantitative", title: "FID", scale: { zero: false } },
          color,
        },
      },
      ...extra,
    ],
  });
  const rowSpec = (points: ReturnType<typeof row>, extra: object[]) => ({
    hconcat: [panel(points, "quality", extra), panel(points, "psnr", extra)],
    resolve: { scale: { y: "shared" } },
  });
  const rows = [rowSpec(row(SERIES_REAL, (q) => q.fid_real_vs_jpeg), [])];
  if (hasFake) rows.push(rowSpec(row(SERIES_FAKE, (q) => q.fid_jpeg_vs_fake), baseline));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    vconcat: rows,
    resolve: { scale: { y: "independent" } },
  } as PlotSpec;
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** The original and each JPEG copy of one image, each with the same region enlarged. */
async function imageStrip(sample: JpegSample): Promise<string> {
  const lowest = sample.variants[sample.variants.length - 1];
  const box = largestErrorWindow(sample.original, lowest.image, 40);
  const scale = Math.max(1, Math.floor(STRIP_WIDTH / box.width));
  const figures = [
    await stripFigure("original (lossless)", dataUri(await pngBytes(sample.original), "image/png"), sample.original, box, scale),
  ];
  for (const v of sample.variants) {
    const kb = (v.bytes.length / 1024).toFixed(1);
    figures.push(await stripFigure(`JPEG quality ${v.quality} (${kb} KiB)`, dataUri(v.bytes, "image/jpeg"), v.image, box, scale));
  }
  const note =
    `<p class="muted"><code>${escapeHtml(sample.name)}</code>; the enlarged crop (${box.width}x${box.height} px at (${box.left}, ${box.top}), ` +
    `each pixel shown as a ${scale}x${scale} square) is the window where the lowest quality differs most from the original.</p>`;
  return `${note}\n<div class="strip">\n${figures.join("\n")}\n</div>`;
}

async function stripFigure(caption: string, src: string, img: RgbImage, box: CropBox, scale: number): Promise<string> {
  const crop = dataUri(await enlargedCropPng(img, box, scale), "image/png");
  const pct = (v: number, of: number) => `${((100 * v) / of).toFixed(3)}%`;
  const style = `left:${pct(box.left, img.width)};top:${pct(box.top, img.height)};width:${pct(box.width, img.width)};height:${pct(box.height, img.height)}`;
  return (
    `<figure><div class="frame"><img src="${src}" alt="${escapeHtml(caption)}"><div class="box" style="${style}"></div></div>` +
    `<img class="crop" src="${crop}" alt="${escapeHtml(caption)}, enlarged crop"><figcaption>${escapeHtml(caption)}</figcaption></figure>`
  );
}

/**
 * The size x size window (on an 8-pixel grid) with the largest summed squared error between two
 * images of one size, from a summed-area table; the whole image when it is smaller than that.
 */
export function largestErrorWindow(a: RgbImage, b: RgbImage, size: number): CropBox {
  const w = a.width;
  const h = a.height;
  const s = Math.min(size, w, h);
  const sat = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      const i = 3 * (y * w + x);
      for (let c = 0; c < 3; c++) row += (a.data[i + c] - b.data[i + c]) ** 2;
      sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
    }
  }
  const sum = (x: number, y: number) =>
    sat[(y + s) * (w + 1) + x + s] - sat[y * (w + 1) + x + s] - sat[(y + s) * (w + 1) + x] + sat[y * (w + 1) + x];
  let best = { left: 0, top: 0, error: -1 };
  const steps = (len: number) => [...Array.from({ length: Math.floor((len - s) / 8) + 1 }, (_, k) => 8 * k), len - s];
  for (const top of steps(h)) {
    for (const left of steps(w)) {
      const error = sum(left, top);
      if (error > best.error) best = { left, top, error };
    }
  }
  return { left: best.left, top: best.top, width: s, height: s };
}

function provenanceText(r: JpegCheckResult): string {
  const n = r.n_fake === undefined ? "" : `, n_fake ${r.n_fake ?? "unknown"}`;
  return `protocol ${r.protocol}, weights ${r.weights_sha256.slice(0, 12)}, n_real ${r.n_real}${n}, diffeval ${r.version}${r.device ? `, ${r.device}` : ""}.`;
}

function fmt(v: number, digits = 4): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}
