import { describe, expect, it } from "vitest";
import sharp from "sharp";
import type { RgbImage } from "../../src/io/decode.js";
import { escapeHtml, htmlDocument, htmlTable } from "../../src/report/html.js";
import { dataUri, enlargedCropPng } from "../../src/report/images.js";
import { renderPlotSvg } from "../../src/report/plot.js";

describe("renderPlotSvg", () => {
  it("renders a Vega-Lite line chart to SVG with one symbol per data point and no external reference", async () => {
    const svg = await renderPlotSvg({
      data: { values: [{ q: 100, fid: 1 }, { q: 75, fid: 2 }, { q: 50, fid: 4 }] },
      mark: { type: "line", point: true },
      encoding: { x: { field: "q", type: "quantitative" }, y: { field: "fid", type: "quantitative" } },
    });
    expect(svg).toMatch(/^<svg [^>]*width="\d+" height="\d+"/);
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(3);
    expect(svg).toMatch(/class="mark-line role-mark/);
    expect(svg.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]+"/g, "")).not.toMatch(/https?:/);
  });
});

describe("enlargedCropPng", () => {
  it("replicates each source pixel into a scale x scale square (nearest neighbour)", async () => {
    const img: RgbImage = { width: 6, height: 5, data: Uint8Array.from({ length: 90 }, (_, i) => (i * 37) % 256) };
    const png = await enlargedCropPng(img, { left: 1, top: 2, width: 3, height: 2 }, 4);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([12, 8, 3]);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 12; x++) {
        const src = 3 * ((2 + (y >> 2)) * 6 + 1 + (x >> 2));
        expect([...data.subarray(3 * (y * 12 + x), 3 * (y * 12 + x) + 3)]).toEqual([...img.data.subarray(src, src + 3)]);
      }
    }
  });

  it("makes base64 data URIs", () => {
    expect(dataUri(new Uint8Array([1, 2, 3]), "image/png")).toBe("data:image/png;base64,AQID");
  });
});

describe("htmlDocument", () => {
  it("escapes text, forbids every external load by CSP, and builds tables", () => {
    const html = htmlDocument({ title: "a <b> & 'c'", body: htmlTable([{ header: "x" }, { header: "v", numeric: true }], [["<i>", "1.5"]]) });
    expect(html).toContain("<title>a &lt;b&gt; &amp; &#39;c&#39;</title>");
    expect(html).toContain(`content="default-src 'none'; img-src data:; style-src 'unsafe-inline'"`);
    expect(html).toContain('<td>&lt;i&gt;</td><td class="num">1.5</td>');
    expect(escapeHtml(`"`)).toBe("&quot;");
  });
});
