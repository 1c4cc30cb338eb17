/**
 * One pre-LayerNorm transformer encoder block on OnnxGraph, shared by the ViT-style builders
 * (CLIP's vision and text towers). The block, in the Hugging Face CLIPEncoderLayer naming:
 *
 *   h = x + out_proj(attention(layer_norm1(x)))
 *   y = h + fc2(act(fc1(layer_norm2(h))))
 *
 * attention: q, k, v = q_proj, k_proj, v_proj (each with a bias), split into `heads` heads of
 * head_dim = hidden / heads; scores = (q k^T) * head_dim^-0.5 (+ an additive mask), softmax over
 * the keys, times v, heads merged back, then out_proj. LayerNorm is ONNX's LayerNormalization
 * (opset 17) over the last axis. Activations: `quick_gelu` x * sigmoid(1.702 x) (OpenAI CLIP) and
 * `gelu` (exact, with erf).
 *
 * Weights are nn.Linear's [out, in]: they are stored transposed ([in, out]) so that a projection
 * is MatMul(x, W^T) + b on [batch, seq, in] activations.
 */
import { DiffevalError } from "../errors.js";
import { describeJson } from "../io/read-json.js";
import type { OnnxGraph } from "./onnx-graph.js";
import type { StateDict, TensorF32 } from "./pth.js";

export type Activation = "quick_gelu" | "gelu";

/**
 * The sizes a model config.json may declare (CLIP's and DINOv2's), checked when the config is
 * parsed, before any layout loop or allocation: a config is untrusted text, and `depth: 1e9`
 * would otherwise loop a billion times before the weights are even compared with it. The caps
 * are far beyond every released checkpoint (the largest ViTs: OpenCLIP bigG 48 layers, 1664
 * wide, MLP 8192; DINOv2 ViT-g 40 layers, 1536 wide; ViT-22B 48 layers, 6144 wide, MLP 24576;
 * images 224 to 518 pixels; CLIP's text context 77, Long-CLIP's 248; vocabularies below 2^18).
 */
export const CONFIG_LIMITS = Object.freeze({
  /** Transformer blocks (depth, num_hidden_layers). */
  layers: 256,
  /** Widths: hidden/embed size, MLP size, projection size (heads must divide the hidden size). */
  width: 65_536,
  /** Image and patch sides in pixels. */
  imageSide: 4096,
  /** Text positions (max_position_embeddings); the causal mask is positions^2 float32. */
  positions: 4096,
  /** Token vocabulary; also keeps ids exact as float32 (< 2^24) for the EOS ArgMax. */
  vocab: 1 << 20,
  /** Extra tokens (DINOv2 register tokens; released models have 4). */
  extraTokens: 256,
});

/** A config value in an error message: a number as written, anything else by kind and excerpt. */
export function configValue(v: unknown): string {
  return typeof v === "number" ? String(v) : describeJson(v);
}

/**
 * `v` when it is an integer in [min, max]; otherwise `fail` of a message naming `key`. Used by
 * the config parsers with their own error (which names the config file).
 */
export function intInRange(v: unknown, key: string, min: number, max: number, fail: (what: string) => Error): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw fail(`${key} is ${configValue(v)}, expected an integer from ${min} to ${max}`);
  }
  return v;
}

export interface TransformerBlockConfig {
  hidden: number;
  heads: number;
  intermediate: number;
  /** LayerNorm epsilon. */
  eps: number;
  act: Activation;
}

/** Every state-dict key of one block under `prefix` (e.g. "...layers.0") with its shape. */
export function transformerBlockLayout(prefix: string, cfg: TransformerBlockConfig): Map<string, number[]> {
  const { hidden: d, intermediate: f } = cfg;
  const m = new Map<string, number[]>();
  for (const ln of ["layer_norm1", "layer_norm2"]) {
    m.set(`${prefix}.${ln}.weight`, [d]);
    m.set(`${prefix}.${ln}.bias`, [d]);
  }
  for (const p of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
    m.set(`${prefix}.self_attn.${p}.weight`, [d, d]);
    m.set(`${prefix}.self_attn.${p}.bias`, [d]);
  }
  m.set(`${prefix}.mlp.fc1.weight`, [f, d]);
  m.set(`${prefix}.mlp.fc1.bias`, [f]);
  m.set(`${prefix}.mlp.fc2.weight`, [d, f]);
  m.set(`${prefix}.mlp.fc2.bias`, [d]);
  return m;
}

function tensor(sd: StateDict, key: string): TensorF32 {
  const t = sd.get(key);
  if (!t) throw new DiffevalError("E_WEIGHTS_LAYOUT", `tensor '${key}' is missing`);
  return t;
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** A 1-D int64 constant (Constant with value_ints). */
export function intsConstant(g: OnnxGraph, name: string, values: number[]): string {
  return g.node("Constant", [], name, { value_ints: values });
}

/** A float32 scalar initializer. */
export function floatScalar(g: OnnxGraph, name: string, value: number): string {
  return g.initializer(name, [], Float32Array.of(value));
}

/**
 * nn.Linear `key` on the last axis of `x`: MatMul with the transposed weight, then Add of the
 * bias when `bias` is true. Returns the output name (`key`, or `out` when given).
 */
export function emitLinear(g: OnnxGraph, sd: StateDict, key: string, x: string, inF: number, outF: number, bias: boolean, out?: string): string {
  const w = tensor(sd, `${key}.weight`);
  const wT = g.initializer(`${key}.weight_t`, [inF, outF], transpose2d(w.data, outF, inF));
  if (!bias) return g.node("MatMul", [x, wT], `${key}.matmul`, {}, out ?? key);
  const y = g.node("MatMul", [x, wT], `${key}.matmul`);
  const b = g.initializer(`${key}.bias`, [outF], tensor(sd, `${key}.bias`).data);
  return g.node("Add", [y, b], `${key}.add`, {}, out ?? key);
}

/** nn.LayerNorm `key` over the last axis (LayerNormalization, opset 17). */
export function emitLayerNorm(g: OnnxGraph, sd: StateDict, key: string, x: string, dim: number, eps: number, out?: string): string {
  const scale = g.initializer(`${key}.weight`, [dim], tensor(sd, `${key}.weight`).data);
  const bias = g.initializer(`${key}.bias`, [dim], tensor(sd, `${key}.bias`).data);
  return g.node("LayerNormalization", [x, scale, bias], `${key}.ln`, { axis: -1, epsilon: { float: eps } }, out ?? key);
}

function emitActivation(g: OnnxGraph, act: Activation, x: string, prefix: string): string {
  if (act === "quick_gelu") {
    // x * sigmoid(1.702 x)
    const k = floatScalar(g, `${prefix}.quick_gelu.k`, 1.702);
    const kx = g.node("Mul", [x, k], `${prefix}.quick_gelu.kx`);
    const s = g.node("Sigmoid", [kx], `${prefix}.quick_gelu.sigmoid`);
    return g.node("Mul", [x, s], `${prefix}.quick_gelu`);
  }
  // 0.5 x (1 + erf(x / sqrt(2)))
  const invSqrt2 = floatScalar(g, `${prefix}.gelu.inv_sqrt2`, Math.SQRT1_2);
  const one = floatScalar(g, `${prefix}.gelu.one`, 1);
  const half = floatScalar(g, `${prefix}.gelu.half`, 0.5);
  const e = g.node("Erf", [g.node("Mul", [x, invSqrt2], `${prefix}.gelu.scaled`)], `${prefix}.gelu.erf`);
  const p = g.node("Add", [e, one], `${prefix}.gelu.plus1`);
  return g.node("Mul", [g.node("Mul", [x, half], `${prefix}.gelu.halfx`), p], `${prefix}.gelu`);
}

/**
 * An additive causal mask [seq, seq] as an initializer: 0 on and below the diagonal, the most
 * negative float32 above it (what Hugging Face's causal mask fills in, torch.finfo(float32).min).
 */
export function causalMask(g: OnnxGraph, name: string, seq: number): string {
  const m = new Float32Array(seq * seq);
  const min = -3.4028234663852886e38;
  for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) m[i * seq + j] = min;
  return g.initializer(name, [seq, seq], m);
}

export interface BlockOptions {
  /** Name of an additive mask broadcastable to [batch, heads, seq, seq] (e.g. causalMask's). */
  mask?: string;
}

/**
 * Emits one block reading `x` [batch, seq, hidden] with the weights under `prefix`; returns the
 * name of its output [batch, seq, hidden].
 */
export function emitTransformerBlock(g: OnnxGraph, sd: StateDict, prefix: string, x: string, cfg: TransformerBlockConfig, opts: BlockOptions = {}): string {
  const { hidden: d, heads, intermediate: f, eps } = cfg;
  if (d % heads !== 0) throw new DiffevalError("E_WEIGHTS_LAYOUT", `hidden size ${d} is not a multiple of ${heads} heads`);
  const hd = d / heads;
  const a = `${prefix}.self_attn`;

  const ln1 = emitLayerNorm(g, sd, `${prefix}.layer_norm1`, x, d, eps);
  const q = emitLinear(g, sd, `${a}.q_proj`, ln1, d, d, true);
  const k = emitLinear(g, sd, `${a}.k_proj`, ln1, d, d, true);
  const v = emitLinear(g, sd, `${a}.v_proj`, ln1, d, d, true);
  // [batch, seq, hidden] -> [batch, seq, heads, head_dim]; 0 keeps the batch dimension.
  const split = intsConstant(g, `${a}.split_shape`, [0, -1, heads, hd]);
  const heads4 = (t: string, tag: string, perm: number[]): string =>
    g.node("Transpose", [g.node("Reshape", [t, split], `${a}.${tag}_split`)], `${a}.${tag}_heads`, { perm });
  const qh = heads4(q, "q", [0, 2, 1, 3]); // [b, h, s, hd]
  const khT = heads4(k, "k", [0, 2, 3, 1]); // [b, h, hd, s]
  const vh = heads4(v, "v", [0, 2, 1, 3]); // [b, h, s, hd]
  const raw = g.node("MatMul", [qh, khT], `${a}.scores_raw`);
  let scores = g.node("Mul", [raw, floatScalar(g, `${a}.scale`, hd ** -0.5)], `${a}.scores`);
  if (opts.mask) scores = g.node("Add", [scores, opts.mask], `${a}.scores_masked`);
  const probs = g.node("Softmax", [scores], `${a}.probs`, { axis: -1 });
  const ctx = g.node("MatMul", [probs, vh], `${a}.context`); // [b, h, s, hd]
  const merged = g.node(
    "Reshape",
    [g.node("Transpose", [ctx], `${a}.context_t`, { perm: [0, 2, 1, 3] }), intsConstant(g, `${a}.merge_shape`, [0, -1, d])],
    `${a}.merged`,
  );
  const attn = emitLinear(g, sd, `${a}.out_proj`, merged, d, d, true);
  const h = g.node("Add", [x, attn], `${prefix}.residual1`);

  const ln2 = emitLayerNorm(g, sd, `${prefix}.layer_norm2`, h, d, eps);
  const fc1 = emitLinear(g, sd, `${prefix}.mlp.fc1`, ln2, d, f, true);
  const act = emitActivation(g, cfg.act, fc1, `${prefix}.mlp`);
  const fc2 = emitLinear(g, sd, `${prefix}.mlp.fc2`, act, f, d, true);
  return g.node("Add", [h, fc2], `${prefix}.residual2`);
}
