/** Report pages in a real browser: Debian's chromium, driven by playwright-core, offline. */
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** No browser here: skip, except in CI, where a missing browser is a failure (.ci/run installs it). */
export const noBrowser = !existsSync(CHROMIUM) && !process.env.CI;

export interface PageWatch {
  /** Console errors and warnings, and uncaught page errors. */
  problems: string[];
  /** Every request other than the page itself and data: URLs (a self-contained page makes none). */
  requests: string[];
}

/** Opens `file` in headless Chromium (1200 x 900) and runs `check` on the loaded page; `javaScriptEnabled: false` opens it with scripts off. */
export async function withReportPage(
  file: string,
  check: (page: Page, watch: PageWatch) => Promise<void>,
  options: { javaScriptEnabled?: boolean } = {},
): Promise<void> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, javaScriptEnabled: options.javaScriptEnabled ?? true });
    const watch: PageWatch = { problems: [], requests: [] };
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") watch.problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => watch.problems.push(`pageerror: ${e.message}`));
    const url = pathToFileURL(file).href;
    page.on("request", (r) => {
      if (r.url() !== url && !r.url().startsWith("data:")) watch.requests.push(r.url());
    });
    await page.goto(url, { waitUntil: "load" });
    await check(page, watch);
  } finally {
    await browser.close();
  }
}
