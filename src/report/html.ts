/**
 * Self-contained HTML pages: one file that opens offline and makes no network request. Styles
 * are inline, plots inline SVG (plot.ts), images `data:` URIs (images.ts); no web fonts. A page
 * may carry inline scripts (the sweep report's live plots), never external ones. A
 * Content-Security-Policy meta tag forbids any load from elsewhere, so a stray external
 * reference fails visibly in the browser instead of leaking a request; scripts run only when
 * their exact text is hashed into that policy.
 */
import { createHash } from "node:crypto";

export interface HtmlPage {
  title: string;
  /** Body markup, already escaped where it carries user text. */
  body: string;
  /** Extra CSS appended to the base style. */
  css?: string;
  /** Inline scripts (JavaScript source), run in order at the end of the body. */
  scripts?: string[];
}

const BASE_CSS = `
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
  h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
  h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #eee; }
  th { text-align: left; background: #f6f6f6; }
  td.num { text-align: right; }
  .muted { color: #666; font-size: 0.9rem; }
  code { background: #f3f3f3; padding: 0 0.2rem; border-radius: 3px; }
  figure { margin: 0; }
  figcaption { font-size: 0.85rem; color: #444; }
`;

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The complete document. */
export function htmlDocument(page: HtmlPage): string {
  const scripts = (page.scripts ?? []).map(inlineScriptText);
  const csp = contentSecurityPolicy(scripts);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${BASE_CSS}${page.css ?? ""}</style>
</head>
<body>
${page.body}
${scripts.map((js) => `<script>${js}</script>`).join("\n")}
</body>
</html>
`;
}

/**
 * data: for the inline images; 'unsafe-inline' for the <style> element and the style attributes
 * Vega's SVG renderer writes; nothing else may load (connect-src, font-src, ... fall back to
 * default-src 'none'). Scripts: only these exact texts (CSP Level 2 hash sources), plus
 * 'unsafe-eval' because Vega compiles its expressions with the Function constructor (Vega docs,
 * "Content Security Policy": the CSP-safe alternative is the separate vega-interpreter package).
 * Evaluation is not loading: the page still cannot reach the network.
 */
function contentSecurityPolicy(scripts: string[]): string {
  const base = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";
  if (scripts.length === 0) return base;
  const hashes = scripts.map((js) => `'sha256-${createHash("sha256").update(js, "utf8").digest("base64")}'`);
  return `${base}; script-src ${hashes.join(" ")} 'unsafe-eval'`;
}

/**
 * Script text safe inside a <script> element: `</script` would end the element early (HTML
 * "script data" state). `<\/` is the same string inside a JavaScript string or regex literal,
 * the only places minified code carries it.
 */
function inlineScriptText(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1");
}

export interface HtmlTableColumn {
  header: string;
  /** Right-aligned numeric cells. */
  numeric?: boolean;
}

/** A table from already-formatted cell text (escaped here). */
export function htmlTable(columns: HtmlTableColumn[], rows: string[][]): string {
  const head = columns.map((c) => `<th>${escapeHtml(c.header)}</th>`).join("");
  const body = rows
    .map((row) => `<tr>${row.map((cell, i) => `<td${columns[i]?.numeric ? ' class="num"' : ""}>${escapeHtml(cell)}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}
