/**
 * The CLIP text tokenizer (byte-level BPE with `</w>` word ends), read from a Hugging Face
 * tokenizer folder: `vocab.json`, `merges.txt` and `tokenizer_config.json`.
 *
 * Two flavours:
 * - "openai" (default): OpenAI's `simple_tokenizer`. Text clean-up as `ftfy.fix_text` does the parts
 *   that matter for prompts (HTML unescaping when the text has no `<`, Latin ligatures, fullwidth
 *   forms, curly quotes to straight ones, NFC), then HTML unescaping twice, whitespace runs to one
 *   space, trim, lower-case. ftfy's mojibake repair is not reproduced.
 * - "hf": Hugging Face's `CLIPTokenizer`/`CLIPTokenizerFast` without ftfy: NFC, whitespace runs to
 *   one space, lower-case; no HTML unescaping.
 * Both then split with the CLIP pattern (special tokens, English contractions, letter runs, single
 * digits, runs of other non-space characters), map each piece's UTF-8 bytes to the printable
 * byte-to-unicode alphabet and apply the ranked merges.
 *
 * `encode` gives `contextLength` (77) ids: BOS, the tokens, EOS, then the pad token of
 * `tokenizer_config.json`; a prompt too long keeps its first `contextLength - 2` tokens and EOS.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { describeJson, parseJsonText } from "../io/read-json.js";
import { htmlUnescape } from "./html-unescape.js";

export type ClipFlavour = "openai" | "hf";

export interface ClipEncodeOptions {
  /** Text clean-up: OpenAI's (default) or Hugging Face's without ftfy (no HTML unescaping). */
  flavour?: ClipFlavour;
  /** When false, a prompt longer than the context is refused (E_TOKENIZER_TOO_LONG) instead of cut. */
  truncate?: boolean;
}

export interface ClipTokenizer {
  readonly dir: string;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** Ids per encoded prompt (77 for CLIP). */
  readonly contextLength: number;
  readonly vocabSize: number;
  /** BPE ids of the text, without BOS/EOS and without truncation. */
  tokenize(text: string, opts?: { flavour?: ClipFlavour }): number[];
  /** BOS, tokens, EOS, padding: exactly `contextLength` ids. */
  encode(text: string, opts?: ClipEncodeOptions): Int32Array;
  /** `texts.length x contextLength` ids, row-major. */
  encodeBatch(texts: readonly string[], opts?: ClipEncodeOptions): Int32Array;
  /** The text of ids (BPE pieces joined, `</w>` as a space, BOS/EOS/pad dropped); for debugging. */
  decode(ids: ArrayLike<number>): string;
}

const CLIP_CONTEXT = 77;
/** The largest token id an int32 input_ids row holds (CLIP's vocabulary ends at 49407). */
const MAX_TOKEN_ID = 0x7fffffff;
const DEFAULT_BOS = "<|startoftext|>";
const DEFAULT_EOS = "<|endoftext|>";

/** Byte value -> printable character: printable Latin-1 bytes map to themselves, the others to 256+n. */
function byteAlphabet(): string[] {
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}
const BYTE_TO_CHAR = byteAlphabet();
const UTF8 = new TextEncoder();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b] as const));

// Whitespace as Python's str.isspace sees it (OpenAI uses Python's `re`), and as Rust's regex `\s`
// (Unicode White_Space, Hugging Face's normaliser) does; JavaScript's `\s` differs from both.
const WS_COMMON = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_PYTHON = `${WS_COMMON}\\x1c-\\x1f`;

function splitPattern(ws: string): RegExp {
  return new RegExp(
    `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${ws}\\p{L}\\p{N}]+`,
    "giu",
  );
}
const SPLIT_OPENAI = splitPattern(WS_PYTHON);
const SPLIT_HF = splitPattern(WS_COMMON);
const WS_RUN_OPENAI = new RegExp(`[${WS_PYTHON}]+`, "gu");
const WS_RUN_HF = new RegExp(`[${WS_COMMON}]+`, "gu");

const LIGATURES: Record<string, string> = {
  "\u0132": "IJ", "\u0133": "ij", "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl",
  "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st",
};
const LIGATURE_RE = /[\u0132\u0133\ufb00-\ufb06]/g;

/** The parts of `ftfy.fix_text` (default settings) that apply to ordinary prompts. */
function ftfyLike(text: string): string {
  let t = text;
  if (!t.includes("<")) t = htmlUnescape(t); // ftfy's unescape_html="auto"
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c] ?? c);
  t = t.replace(/\u3000/g, " ").replace(/[\uff01-\uffef]/g, (c) => c.normalize("NFKC"));
  t = t.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  return t.normalize("NFC");
}

function cleanOpenai(text: string): string {
  const t = htmlUnescape(htmlUnescape(ftfyLike(text))).trim();
  return t.replace(WS_RUN_OPENAI, " ").trim().toLowerCase();
}

function cleanHf(text: string): string {
  return text.normalize("NFC").replace(WS_RUN_HF, " ").toLowerCase();
}

interface TokenizerFiles {
  vocab: Map<string, number>;
  ranks: Map<string, number>;
  bos: string;
  eos: string;
  pad: string;
  contextLength: number;
}

async function readText(dir: string, name: string): Promise<{ file: string; text: string }> {
  const file = path.join(dir, name);
  try {
    return { file, text: await readFile(file, "utf8") };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DiffevalError(
      "E_TOKENIZER_MISSING",
      `CLIP tokenizer: cannot read ${file} (${code ?? (e as Error).message}); pass the folder of a Hugging Face ` +
        `CLIP checkpoint holding vocab.json, merges.txt and tokenizer_config.json`,
      { cause: e },
    );
  }
}

function formatError(file: string, what: string): DiffevalError {
  return new DiffevalError("E_TOKENIZER_FORMAT", `CLIP tokenizer: ${file}: ${what}`);
}

function parseJson(file: string, text: string): unknown {
  return parseJsonText(text, `CLIP tokenizer: ${file}`, "E_TOKENIZER_FORMAT", "the tokenizer file of a Hugging Face CLIP checkpoint");
}

/** A special token of tokenizer_config.json: a string or an AddedToken object with `content`. */
function tokenContent(cfg: Record<string, unknown>, key: string, fallback: string, file: string): string {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  throw formatError(file, `${key} is neither a string nor an object with a "content" string`);
}

async function readFiles(dir: string): Promise<TokenizerFiles> {
  const [vocabF, mergesF, cfgF] = await Promise.all([
    readText(dir, "vocab.json"),
    readText(dir, "merges.txt"),
    readText(dir, "tokenizer_config.json"),
  ]);

  const vocabJson = parseJson(vocabF.file, vocabF.text);
  if (typeof vocabJson !== "object" || vocabJson === null || Array.isArray(vocabJson)) {
    throw formatError(vocabF.file, "expected an object of token -> id");
  }
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(vocabJson as Record<string, unknown>)) {
    // Ids are stored in Int32Array rows (the text encoder's input_ids), so they must fit int32.
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      throw formatError(vocabF.file, `token ${JSON.stringify(tok.slice(0, 80))} has id ${describeJson(id)}, not an integer from 0 to ${MAX_TOKEN_ID}`);
    }
    vocab.set(tok, id);
  }
  for (const c of BYTE_TO_CHAR) {
    if (!vocab.has(c) || !vocab.has(`${c}</w>`)) {
      throw formatError(vocabF.file, `the byte token ${JSON.stringify(c)} (or its </w> form) is missing: not a CLIP vocabulary`);
    }
  }

  const ranks = new Map<string, number>();
  const lines = mergesF.text.split(/\r?\n/);
  let start = 0;
  if (lines[0]?.startsWith("#version")) start = 1;
  for (let i = start; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw formatError(mergesF.file, `line ${i + 1} is not "LEFT RIGHT": ${JSON.stringify(line.slice(0, 80))}`);
    }
    const key = `${parts[0]} ${parts[1]}`;
    if (!ranks.has(key)) ranks.set(key, ranks.size);
  }
  if (ranks.size === 0) throw formatError(mergesF.file, "no merges");

  const cfgJson = parseJson(cfgF.file, cfgF.text);
  if (typeof cfgJson !== "object" || cfgJson === null || Array.isArray(cfgJson)) {
    throw formatError(cfgF.file, "expected a JSON object");
  }
  const cfg = cfgJson as Record<string, unknown>;
  const bos = tokenContent(cfg, "bos_token", DEFAULT_BOS, cfgF.file);
  const eos = tokenContent(cfg, "eos_token", DEFAULT_EOS, cfgF.file);
  const pad = tokenContent(cfg, "pad_token", eos, cfgF.file);
  for (const [key, tok] of [["bos_token", bos], ["eos_token", eos], ["pad_token", pad]] as const) {
    if (!vocab.has(tok)) throw formatError(cfgF.file, `${key} ${JSON.stringify(tok.slice(0, 80))} is not in ${vocabF.file}`);
  }
  // Hugging Face writes a huge sentinel (1e30) when the length was not set; CLIP's context is 77.
  const mml = cfg.model_max_length;
  const contextLength =
    typeof mml === "number" && Number.isInteger(mml) && mml >= 2 && mml <= 1_000_000 ? mml : CLIP_CONTEXT;

  return { vocab, ranks, bos, eos, pad, contextLength };
}

/** Load the CLIP tokenizer of a Hugging Face checkpoint folder. */
export async function loadClipTokenizer(dir: string): Promise<ClipTokenizer> {
  const files = await readFiles(dir);
  return new ClipBpeTokenizer(dir, files);
}

class ClipBpeTokenizer implements ClipTokenizer {
  readonly dir: string;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly contextLength: number;
  readonly vocabSize: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly idToToken: string[];
  private readonly specialIds: Set<number>;
  /** Byte-encoded word -> ids. */
  private readonly cache = new Map<string, number[]>();
  /** Special tokens written in the text stand for themselves, not for their characters. */
  private readonly specialWords = new Map<string, number[]>();
  private static readonly CACHE_LIMIT = 100_000;

  constructor(dir: string, f: TokenizerFiles) {
    this.dir = dir;
    this.vocab = f.vocab;
    this.ranks = f.ranks;
    this.bosId = f.vocab.get(f.bos)!;
    this.eosId = f.vocab.get(f.eos)!;
    this.padId = f.vocab.get(f.pad)!;
    this.contextLength = f.contextLength;
    this.vocabSize = f.vocab.size;
    this.idToToken = [];
    for (const [tok, id] of f.vocab) this.idToToken[id] = tok;
    this.specialIds = new Set([this.bosId, this.eosId, this.padId]);
    for (const tok of [DEFAULT_BOS, DEFAULT_EOS, f.bos, f.eos]) {
      const id = f.vocab.get(tok);
      if (id !== undefined) this.specialWords.set(tok, [id]);
    }
  }

  tokenize(text: string, opts?: { flavour?: ClipFlavour }): number[] {
    const flavour = opts?.flavour ?? "openai";
    if (flavour !== "openai" && flavour !== "hf") {
      throw new DiffevalError("E_USAGE", `CLIP tokenizer: flavour must be "openai" or "hf", not ${JSON.stringify(flavour)}`);
    }
    const clean = flavour === "openai" ? cleanOpenai(text) : cleanHf(text);
    const split = flavour === "openai" ? SPLIT_OPENAI : SPLIT_HF;
    const ids: number[] = [];
    for (const m of clean.matchAll(split)) {
      let word = "";
      for (const b of UTF8.encode(m[0])) word += BYTE_TO_CHAR[b];
      for (const id of this.bpe(word)) ids.push(id);
    }
    return ids;
  }

  encode(text: string, opts?: ClipEncodeOptions): Int32Array {
    const out = new Int32Array(this.contextLength);
    this.encodeInto(text, opts, out, 0);
    return out;
  }

  encodeBatch(texts: readonly string[], opts?: ClipEncodeOptions): Int32Array {
    const out = new Int32Array(texts.length * this.contextLength);
    texts.forEach((t, i) => this.encodeInto(t, opts, out, i * this.contextLength));
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (this.specialIds.has(id)) continue;
      const tok = this.idToToken[id];
      if (tok === undefined) continue;
      const body = tok.endsWith("</w>") ? tok.slice(0, -4) : tok;
      for (const c of body) {
        const b = CHAR_TO_BYTE.get(c);
        if (b !== undefined) bytes.push(b);
      }
      if (body !== tok) bytes.push(0x20);
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trim();
  }

  private encodeInto(text: string, opts: ClipEncodeOptions | undefined, out: Int32Array, offset: number): void {
    const ids = this.tokenize(text, opts);
    const room = this.contextLength - 2;
    if (ids.length > room && opts?.truncate === false) {
      throw new DiffevalError(
        "E_TOKENIZER_TOO_LONG",
        `CLIP tokenizer: the prompt has ${ids.length} tokens, more than the ${room} that fit in ` +
          `${this.contextLength} positions with BOS and EOS; shorten it or allow truncation`,
      );
    }
    const n = Math.min(ids.length, room);
    out[offset] = this.bosId;
    for (let i = 0; i < n; i++) out[offset + 1 + i] = ids[i]!;
    out[offset + 1 + n] = this.eosId;
    out.fill(this.padId, offset + 2 + n, offset + this.contextLength);
  }

  /** Ids of one byte-encoded word: the ranked merges applied until none applies. */
  private bpe(word: string): number[] {
    const hit = this.specialWords.get(word) ?? this.cache.get(word);
    if (hit !== undefined) return hit;

    let parts = Array.from(word);
    parts[parts.length - 1] += "</w>";
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      // Merge every occurrence of the best pair, left to right.
      const a = parts[best]!;
      const b = parts[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < parts.length; ) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          merged.push(a + b);
          i += 2;
        } else {
          merged.push(parts[i]!);
          i += 1;
        }
      }
      // Not parts.push(...merged): spreading a long word's pieces as arguments overflows the stack.
      parts = merged;
    }

    const ids = parts.map((p) => {
      const id = this.vocab.get(p);
      // Cannot happen with a CLIP vocabulary (every merge result is a token); unk is EOS in CLIP.
      return id ?? this.eosId;
    });
    if (this.cache.size >= ClipBpeTokenizer.CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }
}
