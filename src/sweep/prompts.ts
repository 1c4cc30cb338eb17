/**
 * A sweep's prompts, from the spec's list or a file:
 * - `.txt` (or any other text file): one prompt per line; blank lines and `#` comments skipped;
 * - `.jsonl`: one object per line, `{"prompt": ...}` or `{"caption": ...}`, optionally with
 *   `image_id` (kept, so results can be matched with the real images of the same captions);
 * - `.json`: a list of strings, or COCO captions (`images` + `annotations`): with `n`, the seeded
 *   (image, caption) draw of reference/coco-captions.ts (the same pairs `diffeval stats coco30k`
 *   uses); without, the first caption of every captioned image.
 */
import { readFile } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { parseCocoCaptions, pickCocoPairs } from "../reference/coco-captions.js";
import type { PromptSource } from "./spec.js";

export interface Prompt {
  text: string;
  /** The COCO image the caption belongs to, when the prompts came with ids. */
  imageId?: number | string;
}

export async function loadPrompts(source: PromptSource): Promise<Prompt[]> {
  const prompts = source.kind === "list" ? source.prompts.map((text) => ({ text })) : await promptsOfFile(source);
  if (prompts.length === 0) throw new DiffevalError("E_SWEEP_SPEC", `spec.prompts: ${source.kind === "file" ? source.file : "the list"} holds no prompts`);
  return prompts;
}

async function promptsOfFile(source: Extract<PromptSource, { kind: "file" }>): Promise<Prompt[]> {
  const { file } = source;
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SWEEP_SPEC", `spec.prompts: cannot read ${file} (${e.code ?? e.message})`);
  });
  const all = /\.jsonl$/i.test(file) ? jsonlPrompts(text, file) : /\.json$/i.test(file) ? jsonPrompts(text, file, source) : linePrompts(text);
  // A COCO draw has already applied n; other files are cut to their first n prompts.
  return source.n !== undefined && all.length > source.n ? all.slice(0, source.n) : all;
}

function linePrompts(text: string): Prompt[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((t) => ({ text: t }));
}

function jsonlPrompts(text: string, file: string): Prompt[] {
  const out: Prompt[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    let row: Record<string, unknown>;
    try {
      row = parseJsonText(line, `${file}:${i + 1}`, "E_SWEEP_SPEC", "one JSON object per line") as Record<string, unknown>;
    } catch (e) {
      throw new DiffevalError("E_SWEEP_SPEC", `${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const prompt = row?.prompt ?? row?.caption ?? row?.text;
    if (typeof prompt !== "string" || prompt.trim() === "") {
      throw new DiffevalError("E_SWEEP_SPEC", `${file}:${i + 1}: expected {"prompt": "..."} (or "caption"), optionally with "image_id"`);
    }
    const id = row.image_id;
    out.push({ text: prompt.trim(), ...(typeof id === "number" || typeof id === "string" ? { imageId: id } : {}) });
  }
  return out;
}

function jsonPrompts(text: string, file: string, source: { n?: number; seed: number }): Prompt[] {
  const json = parseJsonText(text, file, "E_SWEEP_SPEC", "a JSON list of prompts or COCO captions");
  if (Array.isArray(json)) {
    return json.map((p, i) => {
      if (typeof p !== "string" || p.trim() === "") throw new DiffevalError("E_SWEEP_SPEC", `${file}: [${i}] is not a non-empty string`);
      return { text: p.trim() };
    });
  }
  const images = parseCocoCaptions(json, file);
  if (source.n !== undefined) {
    if (source.n > images.length) throw new DiffevalError("E_SWEEP_SPEC", `spec.prompts.n: ${source.n} is more than the ${images.length} captioned images in ${file}`);
    return pickCocoPairs(images, source.n, source.seed).map((p) => ({ text: p.caption, imageId: p.imageId }));
  }
  return images.map((img) => ({ text: img.captions[0], imageId: img.id }));
}
