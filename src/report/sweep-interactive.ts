/**
 * The sweep report's live layer, run in the page after Vega's browser build (plot.ts
 * `vegaRuntimeSource`). It reads the JSON data block `#report-data` ({@link InteractiveData}),
 * and for each plot figure draws a live Vega view over the static SVG (which it then hides, so a
 * page opened with scripts off keeps the static plots); hovering a point shows the cell and its
 * metrics; clicking one jumps to that cell's contact sheet (`#cell-<slug>`, highlighted by
 * `:target`); the selects above the plots keep only the cells with one negative prompt or one
 * value of an extra axis, in every plot and in the contact sheets.
 *
 * Plain ES2017 in a string: it runs in the browser, not in Node, and the page loads nothing else.
 */

/** One cell as the page needs it: what to show on hover, and what the selects compare. */
export interface InteractiveCell {
  /** The slug, as in the plots' `cell` field. */
  cell: string;
  /** Id of the cell's contact-sheet section. */
  anchor: string;
  /** The cell in words (s, w, negative prompt, axes). */
  title: string;
  /** Select name -> this cell's value (negative prompt label, each axis as text). */
  keys: Record<string, string>;
  /** Metric name and formatted value, in table order. */
  metrics: [string, string][];
}

export interface InteractiveData {
  /** Figure id -> compiled Vega spec. */
  plots: Record<string, unknown>;
  cells: InteractiveCell[];
}

/** Id of a cell's contact-sheet section. */
export function cellAnchor(slug: string): string {
  return `cell-${slug.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** JSON inside a `<script type="application/json">` element: no `<` at all, so no `</script>`. */
export function jsonDataBlock(id: string, data: unknown): string {
  return `<script type="application/json" id="${id}">${JSON.stringify(data).replace(/</g, "\\u003c")}</script>`;
}

export const SWEEP_PAGE_SCRIPT = `(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var byCell = new Map(data.cells.map(function (c) { return [c.cell, c]; }));
  var tip = document.getElementById("plot-tip");
  var shown = null; // null: every cell; else the set of cell slugs the selects keep
  var plots = [];

  // A point, rule or label of one cell (a line's path belongs to a whole series).
  function cellOf(item) {
    if (!item || !item.datum || !item.mark || item.mark.marktype === "line" || item.mark.marktype === "area") return undefined;
    return byCell.get(item.datum.cell);
  }

  function showTip(handler, event, item, value) {
    var c = value == null ? undefined : cellOf(item);
    if (!c) { tip.hidden = true; return; }
    tip.textContent = "";
    var head = document.createElement("strong");
    head.textContent = c.title;
    tip.appendChild(head);
    c.metrics.forEach(function (m) {
      var line = document.createElement("div");
      line.textContent = m[0] + ": " + m[1];
      tip.appendChild(line);
    });
    var hint = document.createElement("div");
    hint.className = "muted";
    hint.textContent = "click: this cell's images";
    tip.appendChild(hint);
    tip.hidden = false;
    var x = event.clientX + 14, y = event.clientY + 14;
    tip.style.left = Math.min(x, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = Math.min(y, window.innerHeight - tip.offsetHeight - 8) + "px";
  }

  function reveal(c) {
    var section = document.getElementById(c.anchor);
    if (!section) return;
    tip.hidden = true;
    if (location.hash === "#" + c.anchor) section.scrollIntoView();
    else location.hash = c.anchor;
  }

  // The inline data sets of a compiled spec: the ones the selects filter.
  function sources(spec) {
    return (spec.data || []).filter(function (d) { return Array.isArray(d.values); }).map(function (d) {
      return { name: d.name, rows: JSON.parse(JSON.stringify(d.values)) };
    });
  }

  function keep(row) {
    return shown === null || typeof row.cell !== "string" || !byCell.has(row.cell) || shown.has(row.cell);
  }

  Object.keys(data.plots).forEach(function (id) {
    var figure = document.getElementById(id);
    if (!figure) return;
    var spec = data.plots[id];
    var host = document.createElement("div");
    host.className = "live";
    figure.appendChild(host);
    var view = new vega.View(vega.parse(spec), { renderer: "svg", container: host, hover: true, tooltip: showTip });
    view.addEventListener("click", function (event, item) {
      var c = cellOf(item);
      if (c) reveal(c);
    });
    plots.push({ view: view, sources: sources(spec) });
    view.runAsync().then(function () { figure.classList.add("live-ready"); });
  });

  function applyFilters() {
    var selects = Array.prototype.slice.call(document.querySelectorAll("#plot-filters select"));
    var active = selects.filter(function (s) { return s.value !== ""; });
    shown = active.length === 0 ? null : new Set(data.cells.filter(function (c) {
      return active.every(function (s) { return c.keys[s.name] === s.value; });
    }).map(function (c) { return c.cell; }));
    plots.forEach(function (p) {
      p.sources.forEach(function (src) {
        var rows = src.rows.filter(keep).map(function (r) { return Object.assign({}, r); });
        p.view.change(src.name, vega.changeset().remove(vega.truthy).insert(rows));
      });
      p.view.runAsync();
    });
    data.cells.forEach(function (c) {
      var section = document.getElementById(c.anchor);
      if (section) section.hidden = shown !== null && !shown.has(c.cell);
    });
  }

  var filters = document.getElementById("plot-filters");
  if (filters) {
    filters.hidden = false;
    filters.addEventListener("change", applyFilters);
  }
})();
`;
