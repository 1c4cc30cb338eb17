import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { loadClipTokenizer, type ClipTokenizer } from "../../src/text/clip-tokenizer.js";
import { htmlUnescape } from "../../src/text/html-unescape.js";
import { fixture } from "../helpers/fixtures.js";

interface RefEntry {
  prompt: string;
  openai: number[];
  hf_slow: number[];
  hf_fast: number[];
}

const clipDir = fixture("encoders", "clip-tiny");
const refs = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_tokens.json"), "utf8")) as RefEntry[];

let tok: ClipTokenizer;
beforeAll(async () => {
  tok = await loadClipTokenizer(clipDir);
});

describe("CLIP tokenizer on the reference prompts", () => {
  it("has the 12 reference prompts", () => {
    expect(refs).toHaveLength(12);
  });

  it("reads the special ids, padding and context from the folder", () => {
    expect(tok.bosId).toBe(49406);
    expect(tok.eosId).toBe(49407);
    expect(tok.padId).toBe(49407);
    expect(tok.contextLength).toBe(77);
    expect(tok.vocabSize).toBe(49408);
  });

  it.each(refs.map((r, i) => [i, r] as const))("prompt %i: OpenAI ids exactly", (_i, r) => {
    const ids = tok.encode(r.prompt, { flavour: "openai" });
    expect(ids).toBeInstanceOf(Int32Array);
    expect(Array.from(ids)).toEqual(r.openai);
    // openai is the default flavour
    expect(Array.from(tok.encode(r.prompt))).toEqual(r.openai);
  });

  it.each(refs.map((r, i) => [i, r] as const))("prompt %i: Hugging Face ids exactly (slow and fast)", (_i, r) => {
    const ids = Array.from(tok.encode(r.prompt, { flavour: "hf" }));
    expect(ids).toEqual(r.hf_fast);
    expect(ids).toEqual(r.hf_slow);
  });

  it("flavours differ only on the HTML-entity prompt", () => {
    const differ = refs.filter((r) => JSON.stringify(r.openai) !== JSON.stringify(r.hf_fast)).map((r) => r.prompt);
    expect(differ).toEqual(["&amp; html entities &lt;b&gt;"]);
  });

  it("truncates a long prompt to 77 ids keeping EOS", () => {
    const long = refs.find((r) => r.prompt.startsWith("a very long prompt"))!;
    expect(tok.tokenize(long.prompt).length).toBeGreaterThan(75);
    const ids = tok.encode(long.prompt);
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(49406);
    expect(ids[76]).toBe(49407);
    expect(Array.from(ids.slice(1, 76))).toEqual(tok.tokenize(long.prompt).slice(0, 75));
    let err: unknown;
    try {
      tok.encode(long.prompt, { truncate: false });
    } catch (e) {
      err = e;
    }
    expect(isDiffevalError(err, "E_TOKENIZER_TOO_LONG")).toBe(true);
  });

  it("encodes a batch row by row", () => {
    const batch = tok.encodeBatch(refs.map((r) => r.prompt));
    expect(batch.length).toBe(refs.length * 77);
    refs.forEach((r, i) => expect(Array.from(batch.subarray(i * 77, (i + 1) * 77))).toEqual(r.openai));
  });

  it("decodes back to the cleaned text", () => {
    expect(tok.decode(tok.encode("A photo of a   CAT"))).toBe("a photo of a cat");
    expect(tok.decode(tok.encode("café crème brûlée"))).toBe("café crème brûlée");
  });

  it("treats special tokens written in the text as themselves", () => {
    expect(tok.tokenize("a<|endoftext|>b")).toEqual([...tok.tokenize("a"), 49407, ...tok.tokenize("b")]);
  });

  it("gives the same ids for NFD and NFC text", () => {
    const nfc = "café crème";
    expect(tok.tokenize(nfc.normalize("NFD"))).toEqual(tok.tokenize(nfc));
    expect(tok.tokenize(nfc.normalize("NFD"), { flavour: "hf" })).toEqual(tok.tokenize(nfc, { flavour: "hf" }));
  });

  it("straightens curly quotes in the openai flavour (ftfy)", () => {
    expect(tok.tokenize("don\u2019t \u201cquote\u201d")).toEqual(tok.tokenize("don't \"quote\""));
  });

  it("refuses an unknown flavour", () => {
    expect(() => tok.encode("x", { flavour: "bogus" as "hf" })).toThrow(/flavour/);
  });
});

describe("htmlUnescape (Python html.unescape semantics)", () => {
  it.each([
    ["&amp; &lt;b&gt; &quot;x&quot; &apos;", "& <b> \"x\" '"],
    ["&#38; &#x26; &#X26 &#169", "& & & \u00a9"],
    ["&eacute;t&eacute; caf&eacute", "\u00e9t\u00e9 caf\u00e9"],
    ["&ampx &copy2020", "&x \u00a92020"],
    ["&amp;lt;", "&lt;"],
    ["&nosuchentity; & alone", "&nosuchentity; & alone"],
    ["&#128; &#0; &#x110000; &#xD800; &#1;", "\u20ac \ufffd \ufffd \ufffd "],
    ["&hellip;&mdash;&rsquo;", "\u2026\u2014\u2019"],
    ["&hellip no semicolon", "&hellip no semicolon"],
  ])("%j -> %j", (input, out) => {
    expect(htmlUnescape(input)).toBe(out);
  });

  it("knows the 96 Latin-1 names", () => {
    expect(htmlUnescape("&nbsp;&yuml;&THORN;&times")).toBe("\u00a0\u00ff\u00de\u00d7");
  });
});

describe("loadClipTokenizer errors", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-cliptok-"));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  async function codeOf(dir: string): Promise<[string | undefined, string]> {
    try {
      await loadClipTokenizer(dir);
      return [undefined, ""];
    } catch (e) {
      return isDiffevalError(e) ? [e.code, e.message] : ["not a DiffevalError", String(e)];
    }
  }

  it.each(["vocab.json", "merges.txt", "tokenizer_config.json"])("names a missing %s", async (missing) => {
    const dir = path.join(tmp, `no-${missing}`);
    rmSync(dir, { recursive: true, force: true });
    (await import("node:fs")).mkdirSync(dir);
    for (const f of ["vocab.json", "merges.txt", "tokenizer_config.json"]) {
      if (f !== missing) copyFileSync(path.join(clipDir, f), path.join(dir, f));
    }
    const [code, message] = await codeOf(dir);
    expect(code).toBe("E_TOKENIZER_MISSING");
    expect(message).toContain(path.join(dir, missing));
  });

  it("refuses malformed files", async () => {
    const dir = path.join(tmp, "bad");
    (await import("node:fs")).mkdirSync(dir);
    copyFileSync(path.join(clipDir, "merges.txt"), path.join(dir, "merges.txt"));
    copyFileSync(path.join(clipDir, "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
    writeFileSync(path.join(dir, "vocab.json"), "{not json");
    expect((await codeOf(dir))[0]).toBe("E_TOKENIZER_FORMAT");
    writeFileSync(path.join(dir, "vocab.json"), JSON.stringify({ a: 0 }));
    expect((await codeOf(dir))[0]).toBe("E_TOKENIZER_FORMAT");
    copyFileSync(path.join(clipDir, "vocab.json"), path.join(dir, "vocab.json"));
    writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ pad_token: "<|nosuch|>" }));
    const [code, message] = await codeOf(dir);
    expect(code).toBe("E_TOKENIZER_FORMAT");
    expect(message).toContain("pad_token");
  });

  it("pads with the configured pad token", async () => {
    const dir = path.join(tmp, "pad-bang");
    (await import("node:fs")).mkdirSync(dir);
    for (const f of ["vocab.json", "merges.txt"]) copyFileSync(path.join(clipDir, f), path.join(dir, f));
    // Stable Diffusion 2's tokenizer pads with "!" (id 0).
    writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ pad_token: "!", model_max_length: 77 }));
    const t = await loadClipTokenizer(dir);
    expect(t.padId).toBe(0);
    expect(Array.from(t.encode("a photo of a cat"))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407, ...new Array(70).fill(0)]);
  });
});
