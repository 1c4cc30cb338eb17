/**
 * Weight files diffeval knows by name: where to download them and how to recognise them.
 * Results record the sha256 of the weights actually used, so the hash here is what makes
 * "the standard FID Inception" a checkable claim rather than a file name.
 */
import { DiffevalError } from "../errors.js";
import type { ProtocolName } from "../preprocess/protocols.js";

export interface WeightsEntry {
  /** Stable id used on the command line and in result files. */
  id: string;
  /** File name in the cache (the upstream name, so a manually downloaded copy just fits). */
  fileName: string;
  url: string;
  /** Full hex sha256 of the file, when known. */
  sha256?: string;
  /** Leading hex digits of the sha256 (torch hub names files `<name>-<sha256[:8]>.pth`). */
  sha256Prefix: string;
  sizeBytes?: number;
  /** Protocols whose reference numbers are computed with these weights. */
  protocols: readonly ProtocolName[];
  description: string;
}

export const DEFAULT_WEIGHTS_ID = "pt_inception-2015-12-05";

/**
 * pytorch-fid's port of the TF "inception-2015-12-05" FID graph (FID_WEIGHTS_URL in
 * pytorch-fid src/pytorch_fid/inception.py; also loaded by clean-fid and torch-fidelity).
 * sha256 and size: reported identically by several independent public repositories that pin
 * this file (e.g. "95,628,359 bytes, SHA-256 6726825d0af5…" in run logs that verified it
 * with torch hub's check_hash); its first 8 digits match the hub-style name suffix 6726825d.
 */
const PT_INCEPTION_2015_12_05: WeightsEntry = {
  id: DEFAULT_WEIGHTS_ID,
  fileName: "pt_inception-2015-12-05-6726825d.pth",
  url: "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
  sha256: "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
  sha256Prefix: "6726825d",
  sizeBytes: 95_628_359,
  protocols: ["clean", "legacy-pytorch", "legacy-tensorflow"],
  description: "FID Inception-v3 (TF inception-2015-12-05 ported to PyTorch by pytorch-fid)",
};

const ENTRIES: readonly WeightsEntry[] = [PT_INCEPTION_2015_12_05];

export function knownWeightsIds(): string[] {
  return ENTRIES.map((e) => e.id);
}

export function getWeightsEntry(id: string): WeightsEntry {
  const entry = ENTRIES.find((e) => e.id === id);
  if (!entry) {
    throw new DiffevalError(
      "E_WEIGHTS_UNKNOWN",
      `unknown weights id "${id}"; known ids: ${knownWeightsIds().join(", ")}`,
    );
  }
  return entry;
}

/** True when `sha256` (hex) is the file the entry describes: full hash if known, else prefix. */
export function hashMatchesEntry(entry: Pick<WeightsEntry, "sha256" | "sha256Prefix">, sha256: string): boolean {
  return hashMatches(sha256, entry.sha256, entry.sha256Prefix);
}

/** Compares a computed hex sha256 with an expected full hash and/or prefix (case-insensitive). */
export function hashMatches(actual: string, full?: string, prefix?: string): boolean {
  const a = actual.toLowerCase();
  if (full !== undefined && a !== full.toLowerCase()) return false;
  if (prefix !== undefined && !a.startsWith(prefix.toLowerCase())) return false;
  return full !== undefined || prefix !== undefined;
}

/** The registry entry whose file has this sha256, if any (to label user-supplied weights). */
export function findEntryBySha256(sha256: string): WeightsEntry | undefined {
  return ENTRIES.find((e) => hashMatchesEntry(e, sha256));
}

// ---------------------------------------------------------------------------------------------
// Encoders other than FID Inception (src/features/encoders.ts): CLIP and DINOv2.

/** One file of an encoder's weights, as published upstream. */
export interface EncoderWeightsFile {
  name: string;
  url: string;
  /**
   * Full hex sha256, only where a public source confirms it. None is recorded yet: results
   * still record the real hash of the file used, but a download cannot be verified against
   * these entries (they are unverified, and carry no hash prefix either).
   */
  sha256?: string;
}

export interface EncoderWeightsEntry {
  id: string;
  encoder: "clip" | "dinov2";
  files: readonly EncoderWeightsFile[];
  description: string;
  /**
   * DINOv2 only: the constructor arguments (snake_case, as parseDinov2Config reads them) that a
   * download writes as config.json next to the .pth, which carries none.
   */
  config?: Readonly<Record<string, unknown>>;
}

const HF = (repo: string, file: string): EncoderWeightsFile => ({
  name: file,
  url: `https://huggingface.co/${repo}/resolve/main/${file}`,
});
/** The vision tower needs the first three; the tokenizer files serve the text tower (clipscore). */
const HF_CLIP_FILES = ["config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt", "tokenizer_config.json"] as const;

const ENCODER_ENTRIES: readonly EncoderWeightsEntry[] = [
  {
    id: "openai/clip-vit-large-patch14",
    encoder: "clip",
    files: HF_CLIP_FILES.map((f) => HF("openai/clip-vit-large-patch14", f)),
    description: "OpenAI CLIP ViT-L/14 at 224 (the CMMD paper's and torchmetrics' CLIP score default)",
  },
  {
    id: "openai/clip-vit-large-patch14-336",
    encoder: "clip",
    files: HF_CLIP_FILES.map((f) => HF("openai/clip-vit-large-patch14-336", f)),
    description: "OpenAI CLIP ViT-L/14 at 336",
  },
  {
    id: "openai/clip-vit-base-patch32",
    encoder: "clip",
    files: HF_CLIP_FILES.map((f) => HF("openai/clip-vit-base-patch32", f)),
    description: "OpenAI CLIP ViT-B/32 at 224",
  },
  {
    id: "dinov2_vitl14",
    encoder: "dinov2",
    files: [{ name: "dinov2_vitl14_pretrain.pth", url: "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth" }],
    description: "DINOv2 ViT-L/14 (torch hub dinov2_vitl14; dgm-eval's FD-DINOv2 encoder); needs a config.json of its constructor arguments next to it",
    // torch hub's dinov2_vitl14(): vit_large (embed_dim 1024, depth 24, num_heads 16, mlp_ratio 4),
    // patch_size 14, img_size 518, init_values 1.0, ffn_layer mlp, block_chunks 0.
    config: Object.freeze({
      img_size: 518,
      patch_size: 14,
      in_chans: 3,
      embed_dim: 1024,
      depth: 24,
      num_heads: 16,
      mlp_ratio: 4,
      init_values: 1.0,
      ffn_layer: "mlp",
      block_chunks: 0,
      num_register_tokens: 0,
      interpolate_antialias: false,
      interpolate_offset: 0.1,
    }),
  },
];

export function knownEncoderWeightsIds(): string[] {
  return ENCODER_ENTRIES.map((e) => e.id);
}

export function getEncoderWeightsEntry(id: string): EncoderWeightsEntry {
  const entry = ENCODER_ENTRIES.find((e) => e.id === id);
  if (!entry) {
    throw new DiffevalError("E_WEIGHTS_UNKNOWN", `unknown encoder weights id "${id}"; known ids: ${knownEncoderWeightsIds().join(", ")}`);
  }
  return entry;
}
