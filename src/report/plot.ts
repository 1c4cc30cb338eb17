/**
 * Plots as inline SVG: a Vega-Lite spec compiled to Vega and rendered headless by Vega's own SVG
 * renderer (`View.toSVG()`, no DOM, no canvas), so a report is one self-contained file and the
 * plot code is a declarative spec rather than hand-assembled SVG. Text is measured by Vega's
 * built-in estimate when no canvas package is installed; the fonts are the browser's own
 * (`font: "sans-serif"` below), never downloaded.
 */
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export type PlotSpec = TopLevelSpec;

/** Defaults for every report plot: a local font family, no external assets, a quiet look. */
const REPORT_CONFIG = {
  font: "sans-serif",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: "bottom", direction: "vertical", labelLimit: 400 },
  title: { fontSize: 13, anchor: "start" },
} as const;

/** The SVG markup (an `<svg>` element) of a Vega-Lite spec, with the report defaults applied. */
export async function renderPlotSvg(spec: PlotSpec): Promise<string> {
  const withConfig = { ...spec, config: { ...REPORT_CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const view = new View(parse(compile(withConfig).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
