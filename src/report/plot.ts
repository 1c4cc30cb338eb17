/**
 * Plots as inline SVG: a Vega-Lite spec compiled to Vega and rendered headless by Vega's own SVG
 * renderer (`View.toSVG()`, no DOM, no canvas), so a report is one self-contained file and the
 * plot code is a declarative spec rather than hand-assembled SVG. Text is measured by Vega's
 * built-in estimate when no canvas package is installed; the fonts are the browser's own
 * (`font: "sans-serif"` below), never downloaded.
 *
 * The same compiled Vega spec also drives the live plot of an interactive page: the page inlines
 * Vega's own browser build (`vegaRuntimeSource`, from the installed `vega` package, so no new
 * dependency and no CDN) and runs `new vega.View(vega.parse(spec))` over the static SVG.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { parse, View, type Spec } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export type PlotSpec = TopLevelSpec;

/** Defaults for every report plot: a local font family, no external assets, a quiet look. */
const REPORT_CONFIG = {
  font: "sans-serif",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: "bottom", direction: "vertical", labelLimit: 400 },
  title: { fontSize: 13, anchor: "start" },
  // Every mark carries a tooltip value, so the live view's tooltip handler fires on every point
  // (Vega calls it only for items whose `tooltip` is set: vega-scenegraph Handler.handleTooltip).
  mark: { tooltip: true },
} as const;

/** The Vega spec of a Vega-Lite spec, with the report defaults applied. */
export function compilePlot(spec: PlotSpec): Spec {
  const withConfig = { ...spec, config: { ...REPORT_CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  return compile(withConfig).spec;
}

/** The SVG markup (an `<svg>` element) of a compiled plot. */
export async function renderVegaSvg(spec: Spec): Promise<string> {
  const view = new View(parse(spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The SVG markup (an `<svg>` element) of a Vega-Lite spec, with the report defaults applied. */
export async function renderPlotSvg(spec: PlotSpec): Promise<string> {
  return renderVegaSvg(compilePlot(spec));
}

let runtime: Promise<string> | undefined;

/**
 * Vega's minified browser build (UMD: defines `window.vega`), read from the installed package.
 * The package's exports map names only its ES module, so the file is found beside it.
 */
export function vegaRuntimeSource(): Promise<string> {
  runtime ??= readFile(path.join(path.dirname(createRequire(import.meta.url).resolve("vega")), "vega.min.js"), "utf8");
  return runtime;
}
