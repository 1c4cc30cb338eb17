/**
 * CLIP's two towers as ONNX graphs built from a Hugging Face `CLIPModel` state dict
 * (`model.safetensors` of `openai/clip-vit-*`) and its `config.json`.
 *
 * Vision (CLIPVisionTransformer + visual_projection): patch embedding (Conv2d, kernel = stride =
 * patch_size, no bias) -> flatten to [batch, grid^2, hidden] -> the class embedding prepended ->
 * + position embedding (1 + grid^2 rows) -> pre_layrnorm (sic, HF's key) -> encoder layers ->
 * the class token -> post_layernorm -> visual_projection (no bias): `image_embeds`, not normalised.
 *
 * Text (CLIPTextTransformer + text_projection): token embedding + position embedding ->
 * encoder layers with the causal mask -> final_layer_norm (`last_hidden_state`) -> the hidden
 * state at the EOS position -> text_projection (no bias): `text_embeds`, not normalised. The EOS
 * position is the argmax of `input_ids` when `eos_token_id` is 2 (the openai configs: the legacy
 * rule, which works because EOS 49407 is the largest id), else the first position holding
 * `eos_token_id`; both take the first index on ties, as torch.argmax does.
 *
 * Encoder layers are transformer-onnx.ts's pre-LN blocks. Opset 17 (LayerNormalization).
 */
import { DiffevalError } from "../errors.js";
import { OnnxGraph } from "./onnx-graph.js";
import { dtypeError, isUnsupportedDtype, type StateDict } from "./pth.js";
import {
  causalMask,
  CONFIG_LIMITS,
  configValue,
  emitLayerNorm,
  emitLinear,
  emitTransformerBlock,
  intInRange,
  intsConstant,
  transformerBlockLayout,
  type Activation,
  type TransformerBlockConfig,
} from "./transformer-onnx.js";

/** Bump whenever the graphs this file builds change (cached .onnx files are keyed on it). */
export const CLIP_CONVERTER_VERSION = 1;

const OPSET = 17;

export interface ClipTowerConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  layerNormEps: number;
  hiddenAct: Activation;
}

export interface ClipVisionConfig extends ClipTowerConfig {
  imageSize: number;
  patchSize: number;
  numChannels: number;
}

export interface ClipTextConfig extends ClipTowerConfig {
  vocabSize: number;
  maxPositionEmbeddings: number;
  eosTokenId: number;
}

/** The parts of a CLIPModel `config.json` the builders use, with Hugging Face's defaults filled in. */
export interface ClipConfig {
  projectionDim: number;
  text: ClipTextConfig;
  vision: ClipVisionConfig;
}

function configError(file: string, what: string): DiffevalError {
  return new DiffevalError("E_WEIGHTS_LAYOUT", `${file}: ${what}`);
}

function section(json: Record<string, unknown>, key: string, fail: (what: string) => Error): Record<string, unknown> {
  const v = json[key] ?? {};
  if (typeof v !== "object" || Array.isArray(v)) throw fail(`'${key}' is not an object`);
  return v as Record<string, unknown>;
}

/** Only RGB models: the preprocessing (preprocess/clip.ts) always makes 3 channels. */
function rgbChannels(n: number, fail: (what: string) => Error): number {
  if (n !== 3) throw fail(`vision_config.num_channels is ${n}; only 3 (RGB, what the image preprocessing makes) is supported`);
  return n;
}

/**
 * The field readers of one section (`where`, e.g. "text_config"): a missing or null field takes
 * its default (transformers' PretrainedConfig does the same for null), anything else must be in
 * range.
 */
function fieldReader(obj: Record<string, unknown>, where: string, fail: (what: string) => Error) {
  const value = (key: string, dflt: unknown): unknown => obj[key] ?? dflt;
  const L = CONFIG_LIMITS;
  return {
    int: (key: string, dflt: number, min: number, max: number): number => intInRange(value(key, dflt), `${where}.${key}`, min, max, fail),
    layers: (key: string, dflt: number) => intInRange(value(key, dflt), `${where}.${key}`, 1, L.layers, fail),
    width: (key: string, dflt: number) => intInRange(value(key, dflt), `${where}.${key}`, 1, L.width, fail),
    /** A head count that divides `hidden` (head_dim = hidden / heads, CLIPAttention's check). */
    heads: (key: string, dflt: number, hidden: number): number => {
      const h = intInRange(value(key, dflt), `${where}.${key}`, 1, hidden, fail);
      if (hidden % h !== 0) throw fail(`${where}.${key} ${h} does not divide ${where}.hidden_size ${hidden}`);
      return h;
    },
    /** LayerNorm epsilon: a finite number in (0, 1). */
    eps: (key: string, dflt: number): number => {
      const v = value(key, dflt);
      if (typeof v !== "number" || !(v > 0 && v < 1)) throw fail(`${where}.${key} is ${configValue(v)}, expected a number between 0 and 1`);
      return v;
    },
    act: (): Activation => {
      const v = value("hidden_act", "quick_gelu");
      if (v === "quick_gelu" || v === "gelu") return v;
      throw fail(`${where}.hidden_act ${configValue(v)} is not supported (quick_gelu or gelu)`);
    },
  };
}

/**
 * Reads a CLIPModel `config.json` (already parsed; `file` names it in errors). Fields left out
 * (or null) take transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults (ViT-B/32
 * sizes, quick_gelu, eps 1e-5). Every size is checked here, before any layout is built from it
 * (E_WEIGHTS_LAYOUT naming the file and field): integers from 1 up to transformer-onnx.ts's
 * CONFIG_LIMITS (layers 256, widths 65,536, image 4096, positions 4096, vocabulary 2^20), heads
 * dividing the hidden size, patch_size dividing image_size, 3 channels (the preprocessing makes
 * RGB), eos_token_id an id of the vocabulary.
 *
 * For text that has not been parsed yet (a fuzz case, a file): `parseClipConfig(parseJsonText(text,
 * file, "E_WEIGHTS_FORMAT", "a Hugging Face CLIPModel config.json"), file)`.
 */
export function parseClipConfig(json: unknown, file = "config.json"): ClipConfig {
  const fail = (what: string) => configError(file, what);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw fail("not a JSON object");
  const root = json as Record<string, unknown>;
  const L = CONFIG_LIMITS;
  const r = fieldReader(root, "config", fail);
  const projectionDim = r.width("projection_dim", 512);

  const tr = fieldReader(section(root, "text_config", fail), "text_config", fail);
  const tHidden = tr.width("hidden_size", 512);
  const vocabSize = tr.int("vocab_size", 49408, 1, L.vocab);
  const text: ClipTextConfig = {
    hiddenSize: tHidden,
    intermediateSize: tr.width("intermediate_size", 2048),
    numHiddenLayers: tr.layers("num_hidden_layers", 12),
    numAttentionHeads: tr.heads("num_attention_heads", 8, tHidden),
    layerNormEps: tr.eps("layer_norm_eps", 1e-5),
    hiddenAct: tr.act(),
    vocabSize,
    maxPositionEmbeddings: tr.int("max_position_embeddings", 77, 1, L.positions),
    eosTokenId: tr.int("eos_token_id", 49407, 0, vocabSize - 1),
  };

  const vr = fieldReader(section(root, "vision_config", fail), "vision_config", fail);
  const vHidden = vr.width("hidden_size", 768);
  const imageSize = vr.int("image_size", 224, 1, L.imageSide);
  const patchSize = vr.int("patch_size", 32, 1, imageSize);
  if (imageSize % patchSize !== 0) throw fail(`vision_config.image_size ${imageSize} is not a multiple of vision_config.patch_size ${patchSize}`);
  const vision: ClipVisionConfig = {
    hiddenSize: vHidden,
    intermediateSize: vr.width("intermediate_size", 3072),
    numHiddenLayers: vr.layers("num_hidden_layers", 12),
    numAttentionHeads: vr.heads("num_attention_heads", 12, vHidden),
    layerNormEps: vr.eps("layer_norm_eps", 1e-5),
    hiddenAct: vr.act(),
    imageSize,
    patchSize,
    numChannels: rgbChannels(vr.int("num_channels", 3, 1, L.imageSide), fail),
  };
  return { projectionDim, text, vision };
}

function blockConfig(c: ClipTowerConfig): TransformerBlockConfig {
  return { hidden: c.hiddenSize, heads: c.numAttentionHeads, intermediate: c.intermediateSize, eps: c.layerNormEps, act: c.hiddenAct };
}

function gridSize(v: ClipVisionConfig): number {
  if (v.imageSize % v.patchSize !== 0) throw configError("CLIP config", `image_size ${v.imageSize} is not a multiple of patch_size ${v.patchSize}`);
  return v.imageSize / v.patchSize;
}

// ---------------------------------------------------------------------------------------------
// Layout

export type ClipTower = "vision" | "text";

const VISION = "vision_model";
const TEXT = "text_model";

/** The vision tower's keys and shapes in the Hugging Face CLIPModel layout. */
export function visionLayout(config: ClipConfig): Map<string, number[]> {
  const v = config.vision;
  const d = v.hiddenSize;
  const grid = gridSize(v);
  const m = new Map<string, number[]>();
  m.set(`${VISION}.embeddings.class_embedding`, [d]);
  m.set(`${VISION}.embeddings.patch_embedding.weight`, [d, v.numChannels, v.patchSize, v.patchSize]);
  m.set(`${VISION}.embeddings.position_embedding.weight`, [grid * grid + 1, d]);
  m.set(`${VISION}.pre_layrnorm.weight`, [d]);
  m.set(`${VISION}.pre_layrnorm.bias`, [d]);
  for (let i = 0; i < v.numHiddenLayers; i++) {
    for (const [k, s] of transformerBlockLayout(`${VISION}.encoder.layers.${i}`, blockConfig(v))) m.set(k, s);
  }
  m.set(`${VISION}.post_layernorm.weight`, [d]);
  m.set(`${VISION}.post_layernorm.bias`, [d]);
  m.set("visual_projection.weight", [config.projectionDim, d]);
  return m;
}

function textLayout(config: ClipConfig): Map<string, number[]> {
  const t = config.text;
  const d = t.hiddenSize;
  const m = new Map<string, number[]>();
  m.set(`${TEXT}.embeddings.token_embedding.weight`, [t.vocabSize, d]);
  m.set(`${TEXT}.embeddings.position_embedding.weight`, [t.maxPositionEmbeddings, d]);
  for (let i = 0; i < t.numHiddenLayers; i++) {
    for (const [k, s] of transformerBlockLayout(`${TEXT}.encoder.layers.${i}`, blockConfig(t))) m.set(k, s);
  }
  m.set(`${TEXT}.final_layer_norm.weight`, [d]);
  m.set(`${TEXT}.final_layer_norm.bias`, [d]);
  m.set("text_projection.weight", [config.projectionDim, d]);
  return m;
}

/** Keys a CLIPModel checkpoint may carry that inference does not use. */
function isIgnorable(key: string): boolean {
  return key === "logit_scale" || key === `${TEXT}.embeddings.position_ids` || key === `${VISION}.embeddings.position_ids`;
}

function belongsTo(key: string, tower: ClipTower): boolean {
  return tower === "vision" ? key.startsWith(`${VISION}.`) || key.startsWith("visual_projection.") : key.startsWith(`${TEXT}.`) || key.startsWith("text_projection.");
}

function layoutError(what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_LAYOUT",
    `${what}: these are not CLIP weights in the Hugging Face CLIPModel layout (openai/clip-vit-* model.safetensors) ` +
      `matching the config.json given. Use the checkpoint folder's own config.json and model.safetensors.`,
  );
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Throws E_WEIGHTS_LAYOUT naming the first key (in file order) that the configured CLIPModel
 * does not have or has with another shape, then the first expected key that is missing;
 * E_WEIGHTS_DTYPE when a needed tensor is not float32. `towers` limits the check to one tower
 * (the other tower's keys are then ignored); `logit_scale` and `position_ids` buffers are
 * tolerated.
 */
export function checkClipLayout(sd: StateDict, config: ClipConfig, towers: ClipTower[] = ["vision", "text"]): void {
  const layout = new Map<string, number[]>();
  if (towers.includes("vision")) for (const [k, s] of visionLayout(config)) layout.set(k, s);
  if (towers.includes("text")) for (const [k, s] of textLayout(config)) layout.set(k, s);
  const others = (["vision", "text"] as ClipTower[]).filter((t) => !towers.includes(t));
  for (const [key, t] of sd) {
    const want = layout.get(key);
    if (!want) {
      if (isIgnorable(key) || others.some((o) => belongsTo(key, o))) continue;
      throw layoutError(`unexpected tensor '${key}'`);
    }
    if (!sameShape(t.shape, want)) throw layoutError(`tensor '${key}' has shape [${t.shape.join(", ")}], expected [${want.join(", ")}]`);
  }
  for (const key of layout.keys()) if (!sd.has(key)) throw layoutError(`tensor '${key}' is missing`);
  for (const key of layout.keys()) {
    const t = sd.get(key)!;
    if (isUnsupportedDtype(t)) throw dtypeError(t.file, key, t.dtype);
  }
}

// ---------------------------------------------------------------------------------------------
// Graphs

/**
 * ONNX model bytes for the vision tower: input `pixel_values` float32 [batch, channels, image,
 * image] (CLIPImageProcessor's output), output `image_embeds` [batch, projection_dim].
 */
export function buildClipVisionOnnx(sd: StateDict, config: ClipConfig): Uint8Array {
  checkClipLayout(sd, config, ["vision"]);
  const v = config.vision;
  const d = v.hiddenSize;
  const grid = gridSize(v);
  const g = new OnnxGraph();
  const e = `${VISION}.embeddings`;

  const patchW = g.initializer(`${e}.patch_embedding.weight`, [d, v.numChannels, v.patchSize, v.patchSize], sd.get(`${e}.patch_embedding.weight`)!.data);
  const conv = g.node("Conv", ["pixel_values", patchW], `${e}.patch_embedding`, {
    kernel_shape: [v.patchSize, v.patchSize],
    strides: [v.patchSize, v.patchSize],
  });
  // [b, d, grid, grid] -> [b, d, grid^2] -> [b, grid^2, d]
  const flat = g.node("Reshape", [conv, intsConstant(g, `${e}.flat_shape`, [0, d, -1])], `${e}.patches_flat`);
  const patches = g.node("Transpose", [flat], `${e}.patches`, { perm: [0, 2, 1] });
  // The class embedding, expanded to [b, 1, d].
  const cls = g.initializer(`${e}.class_embedding`, [1, 1, d], sd.get(`${e}.class_embedding`)!.data);
  const batch = g.node("Shape", ["pixel_values"], `${e}.batch`, { start: 0, end: 1 });
  const clsShape = g.node("Concat", [batch, intsConstant(g, `${e}.cls_tail`, [1, d])], `${e}.cls_shape`, { axis: 0 });
  const clsB = g.node("Expand", [cls, clsShape], `${e}.cls`);
  const tokens = g.node("Concat", [clsB, patches], `${e}.tokens`, { axis: 1 });
  const pos = g.initializer(`${e}.position_embedding.weight`, [grid * grid + 1, d], sd.get(`${e}.position_embedding.weight`)!.data);
  let x = g.node("Add", [tokens, pos], `${e}.out`);

  x = emitLayerNorm(g, sd, `${VISION}.pre_layrnorm`, x, d, v.layerNormEps);
  for (let i = 0; i < v.numHiddenLayers; i++) x = emitTransformerBlock(g, sd, `${VISION}.encoder.layers.${i}`, x, blockConfig(v));
  const first = g.node("Constant", [], `${VISION}.cls_index`, { value_int: 0 });
  const clsOut = g.node("Gather", [x, first], `${VISION}.cls_token`, { axis: 1 }); // [b, d]
  const pooled = emitLayerNorm(g, sd, `${VISION}.post_layernorm`, clsOut, d, v.layerNormEps);
  emitLinear(g, sd, "visual_projection", pooled, d, config.projectionDim, false, "image_embeds");

  return g.toModelBytes({
    name: "clip_vision",
    opset: OPSET,
    docString: `Hugging Face CLIPModel vision tower + visual_projection; diffeval converter version ${CLIP_CONVERTER_VERSION}`,
    inputs: [{ name: "pixel_values", dims: ["batch", v.numChannels, v.imageSize, v.imageSize] }],
    outputs: [{ name: "image_embeds", dims: ["batch", config.projectionDim] }],
  });
}

/**
 * ONNX model bytes for the text tower: input `input_ids` int64 [batch, max_position_embeddings]
 * (77 for CLIP), outputs `text_embeds` [batch, projection_dim] and `last_hidden_state`
 * [batch, 77, hidden] (after final_layer_norm, what Stable Diffusion's UNet receives).
 */
export function buildClipTextOnnx(sd: StateDict, config: ClipConfig): Uint8Array {
  checkClipLayout(sd, config, ["text"]);
  const t = config.text;
  const d = t.hiddenSize;
  const seq = t.maxPositionEmbeddings;
  const g = new OnnxGraph();
  const e = `${TEXT}.embeddings`;

  const tok = g.initializer(`${e}.token_embedding.weight`, [t.vocabSize, d], sd.get(`${e}.token_embedding.weight`)!.data);
  const emb = g.node("Gather", [tok, "input_ids"], `${e}.token_embedding`, { axis: 0 }); // [b, seq, d]
  const pos = g.initializer(`${e}.position_embedding.weight`, [seq, d], sd.get(`${e}.position_embedding.weight`)!.data);
  let x = g.node("Add", [emb, pos], `${e}.out`);

  const mask = causalMask(g, `${TEXT}.causal_mask`, seq);
  for (let i = 0; i < t.numHiddenLayers; i++) x = emitTransformerBlock(g, sd, `${TEXT}.encoder.layers.${i}`, x, blockConfig(t), { mask });
  const last = emitLayerNorm(g, sd, `${TEXT}.final_layer_norm`, x, d, t.layerNormEps, "last_hidden_state");

  // The EOS position [b, 1]: ArgMax (first index on ties) over float copies of the ids (exact:
  // ids < 2^24), or over (ids == eos_token_id).
  const FLOAT = 1;
  let key: string;
  if (t.eosTokenId === 2) {
    key = g.node("Cast", ["input_ids"], `${TEXT}.ids_float`, { to: FLOAT });
  } else {
    const eos = intsConstant(g, `${TEXT}.eos_token_id`, [t.eosTokenId]);
    const isEos = g.node("Equal", ["input_ids", eos], `${TEXT}.is_eos`);
    key = g.node("Cast", [isEos], `${TEXT}.is_eos_float`, { to: FLOAT });
  }
  const eosPos = g.node("ArgMax", [key], `${TEXT}.eos_position`, { axis: -1, keepdims: 1, select_last_index: 0 });
  const pooled = g.node("GatherND", [last, eosPos], `${TEXT}.pooled`, { batch_dims: 1 }); // [b, d]
  emitLinear(g, sd, "text_projection", pooled, d, config.projectionDim, false, "text_embeds");

  return g.toModelBytes({
    name: "clip_text",
    opset: OPSET,
    docString: `Hugging Face CLIPModel text tower + text_projection; diffeval converter version ${CLIP_CONVERTER_VERSION}`,
    inputs: [{ name: "input_ids", dims: ["batch", seq], elemType: "int64" }],
    outputs: [
      { name: "text_embeds", dims: ["batch", config.projectionDim] },
      { name: "last_hidden_state", dims: ["batch", seq, d] },
    ],
  });
}
