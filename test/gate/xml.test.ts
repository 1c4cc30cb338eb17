import { XMLParser, XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { xmlAttr, xmlText } from "../../src/gate/xml.js";

describe("gate XML escaping", () => {
  it("round-trips markup characters and replaces what XML 1.0 cannot carry", () => {
    const s = `a<b>&"c"'d' \u0001\uFFFE\uD800 é 😀`;
    const xml = `<r a="${xmlAttr(s)}">${xmlText(s)}</r>`;
    expect(XMLValidator.validate(xml)).toBe(true);
    const r = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(xml).r;
    const expected = `a<b>&"c"'d' \uFFFD\uFFFD\uFFFD é 😀`;
    expect(r["#text"]).toBe(expected);
    expect(r.a).toBe(expected);
  });

  it("keeps newlines in attributes as character references", () => {
    expect(xmlAttr("a\nb\tc")).toBe("a&#10;b&#9;c");
  });
});
