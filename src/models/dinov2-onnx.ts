/**
 * DINOv2 (the torch-hub `DinoVisionTransformer`, e.g. `dinov2_vitl14_pretrain.pth`) as an ONNX
 * graph built from its state dict. Input `pixel_values` float32 [batch, 3, size, size] (dgm-eval's
 * transform: bicubic to 224, /255, ImageNet mean/std), output `features` [batch, embed_dim]: the
 * normalised class token (`x_norm_clstoken`), what FD-DINOv2 uses.
 *
 * The network, in the reference code's key names:
 *   patch_embed.proj: Conv2d (kernel = stride = patch_size, with bias) -> [b, grid^2, d]
 *   x = concat(cls_token, patches) + position embedding (1 + grid^2 rows)
 *   register_tokens (when num_register_tokens > 0) inserted after the class token
 *   blocks.i:  x = x + ls1(attn(norm1(x)));  x = x + ls2(mlp(norm2(x)))
 *     attn: fused qkv Linear (rows q | k | v, with bias), heads, softmax(q k^T * hd^-0.5) v, proj
 *     mlp: fc1 -> exact GELU (erf) -> fc2;  lsN: LayerScale, x * gamma (absent when init_values
 *     is None/0)
 *   norm; the class token (row 0).
 * LayerNorm epsilon 1e-6 everywhere.
 *
 * Position embedding: the checkpoint holds a M x M grid (M = img_size / patch_size, 37 for the
 * released 518-pixel models). The reference `interpolate_pos_encoding` resamples it to the input
 * grid g with `F.interpolate(mode="bicubic", antialias=False, scale_factor=(g + offset) / M)`
 * (offset = interpolate_offset, 0.1), unless the input grid already equals M. Because a
 * `scale_factor` is passed (recompute_scale_factor left unset), torch's output size is
 * floor(M * scale_factor) = g, but the kernel maps output pixel i to the source coordinate
 * (i + 0.5) / scale_factor - 0.5 (not (i + 0.5) * M / g - 0.5). It is done here once, at
 * conversion, in float64: Keys' cubic convolution with a = -0.75 (torch's), taps at
 * floor(x) - 1 .. floor(x) + 2 clamped to the border, align_corners False. With
 * interpolate_offset 0 the reference passes `size` instead: the plain ratio M / g.
 */
import { DiffevalError } from "../errors.js";
import { OnnxGraph } from "./onnx-graph.js";
import { dtypeError, isUnsupportedDtype, type StateDict, type TensorF32 } from "./pth.js";
import { CONFIG_LIMITS, configValue, emitLayerNorm, emitLinear, floatScalar, intInRange, intsConstant, transpose2d } from "./transformer-onnx.js";

/** Bump whenever the graphs this file builds change (cached .onnx files are keyed on it). */
export const DINOV2_CONVERTER_VERSION = 1;

const OPSET = 17;
/** nn.LayerNorm's eps in DinoVisionTransformer (partial(nn.LayerNorm, eps=1e-6)). */
const LN_EPS = 1e-6;
/** torch's bicubic coefficient (upsample_bicubic2d). */
const CUBIC_A = -0.75;

/** The DinoVisionTransformer constructor arguments the builder uses. */
export interface Dinov2Config {
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** LayerScale's init value; 0 (None in Python) means no LayerScale (no ls1/ls2 keys). */
  initValues: number;
  numRegisterTokens: number;
  interpolateOffset: number;
}

/** torch hub's `dinov2_vitl14` (dgm-eval's default): the defaults of parseDinov2Config. */
export const DINOV2_VITL14_CONFIG: Readonly<Dinov2Config> = Object.freeze({
  imgSize: 518,
  patchSize: 14,
  inChans: 3,
  embedDim: 1024,
  depth: 24,
  numHeads: 16,
  mlpRatio: 4,
  initValues: 1.0,
  numRegisterTokens: 0,
  interpolateOffset: 0.1,
});

function configError(what: string, file = "DINOv2 config"): DiffevalError {
  return new DiffevalError("E_WEIGHTS_LAYOUT", `${file}: ${what}`);
}

/**
 * Reads DinoVisionTransformer constructor arguments in the reference code's snake_case names
 * (`img_size`, `patch_size`, `in_chans`, `embed_dim`, `depth`, `num_heads`, `mlp_ratio`,
 * `init_values` (null = no LayerScale), `ffn_layer` ("mlp" only), `block_chunks` (0 only),
 * `num_register_tokens`, `interpolate_antialias` (false only), `interpolate_offset`). Fields left
 * out take torch hub's `dinov2_vitl14` values (DINOV2_VITL14_CONFIG). Other keys are ignored.
 * `file` (the config.json) is named in errors.
 *
 * Every size is checked here, before dinov2Layout loops over `depth` or anything is allocated
 * (E_WEIGHTS_LAYOUT naming the file and field): integers from 1 up to transformer-onnx.ts's
 * CONFIG_LIMITS (depth 256, embed_dim and the MLP width 65,536, img_size 4096), num_heads
 * dividing embed_dim, patch_size dividing img_size (the position grid is img_size / patch_size
 * square), in_chans 3 (the preprocessing makes RGB), num_register_tokens 0..256, mlp_ratio > 0,
 * interpolate_offset in [0, 1) (the reference's is 0.1), init_values finite.
 *
 * For text that has not been parsed yet (a fuzz case, a file): `parseDinov2Config(parseJsonText(
 * text, file, "E_WEIGHTS_FORMAT", "the DINOv2 constructor arguments (config.json)"), file)`.
 */
export function parseDinov2Config(json: unknown, file = "DINOv2 config"): Dinov2Config {
  const fail = (what: string) => configError(what, file);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw fail("not a JSON object");
  const o = json as Record<string, unknown>;
  const D = DINOV2_VITL14_CONFIG;
  const L = CONFIG_LIMITS;
  const ffn = o.ffn_layer ?? "mlp";
  if (ffn !== "mlp") throw fail(`ffn_layer ${configValue(ffn)} is not supported (only "mlp"; the SwiGLU ViT-g is not)`);
  if (o.block_chunks !== undefined && o.block_chunks !== 0) throw fail(`block_chunks ${configValue(o.block_chunks)} is not supported (only 0, the torch-hub layout)`);
  if (o.interpolate_antialias !== undefined && o.interpolate_antialias !== false) throw fail("interpolate_antialias true is not supported");
  for (const k of ["qkv_bias", "proj_bias", "ffn_bias"]) {
    if (o[k] !== undefined && o[k] !== true) throw fail(`${k} ${configValue(o[k])} is not supported (only true)`);
  }
  // A field left out takes its default; null is refused (the reference would fail on None),
  // except init_values, where None means no LayerScale.
  const field = (key: string, dflt: number): unknown => (o[key] === undefined ? dflt : o[key]);
  const int = (key: string, dflt: number, min: number, max: number) => intInRange(field(key, dflt), key, min, max, fail);
  const real = (key: string, dflt: number, ok: (v: number) => boolean, range: string): number => {
    const v = field(key, dflt);
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) throw fail(`${key} is ${configValue(v)}, expected ${range}`);
    return v;
  };

  const imgSize = int("img_size", D.imgSize, 1, L.imageSide);
  const patchSize = int("patch_size", D.patchSize, 1, imgSize);
  if (imgSize % patchSize !== 0) throw fail(`img_size ${imgSize} is not a multiple of patch_size ${patchSize}`);
  const inChans = int("in_chans", D.inChans, 1, L.imageSide);
  if (inChans !== 3) throw fail(`in_chans is ${inChans}; only 3 (RGB, what the image preprocessing makes) is supported`);
  const embedDim = int("embed_dim", D.embedDim, 1, L.width);
  const numHeads = int("num_heads", D.numHeads, 1, embedDim);
  if (embedDim % numHeads !== 0) throw fail(`num_heads ${numHeads} does not divide embed_dim ${embedDim}`);
  const mlpRatio = real("mlp_ratio", D.mlpRatio, (v) => v > 0, "a positive number");
  const hidden = Math.trunc(embedDim * mlpRatio);
  if (hidden < 1 || hidden > L.width) throw fail(`mlp_ratio ${mlpRatio} makes an MLP ${hidden} wide, expected 1 to ${L.width}`);
  return {
    imgSize,
    patchSize,
    inChans,
    embedDim,
    depth: int("depth", D.depth, 1, L.layers),
    numHeads,
    mlpRatio,
    // null is the reference's init_values=None: no LayerScale.
    initValues: o.init_values === null ? 0 : real("init_values", D.initValues, () => true, "a number or null"),
    numRegisterTokens: int("num_register_tokens", D.numRegisterTokens, 0, L.extraTokens),
    interpolateOffset: real("interpolate_offset", D.interpolateOffset, (v) => v >= 0 && v < 1, "a number from 0 up to 1 (the reference's is 0.1)"),
  };
}

/** The source grid side M (pos_embed holds 1 + M^2 rows). */
function sourceGrid(c: Dinov2Config): number {
  if (c.imgSize % c.patchSize !== 0) throw configError(`img_size ${c.imgSize} is not a multiple of patch_size ${c.patchSize}`);
  return c.imgSize / c.patchSize;
}

/** Mlp hidden size: int(embed_dim * mlp_ratio), as the reference code computes it. */
function mlpHidden(c: Dinov2Config): number {
  return Math.trunc(c.embedDim * c.mlpRatio);
}

// ---------------------------------------------------------------------------------------------
// Layout

/** Every key of the configured model with its shape, in the reference state dict's order. */
export function dinov2Layout(c: Dinov2Config): Map<string, number[]> {
  const d = c.embedDim;
  const M = sourceGrid(c);
  const f = mlpHidden(c);
  const m = new Map<string, number[]>();
  m.set("cls_token", [1, 1, d]);
  m.set("pos_embed", [1, 1 + M * M, d]);
  if (c.numRegisterTokens > 0) m.set("register_tokens", [1, c.numRegisterTokens, d]);
  m.set("patch_embed.proj.weight", [d, c.inChans, c.patchSize, c.patchSize]);
  m.set("patch_embed.proj.bias", [d]);
  for (let i = 0; i < c.depth; i++) {
    const p = `blocks.${i}`;
    m.set(`${p}.norm1.weight`, [d]);
    m.set(`${p}.norm1.bias`, [d]);
    m.set(`${p}.attn.qkv.weight`, [3 * d, d]);
    m.set(`${p}.attn.qkv.bias`, [3 * d]);
    m.set(`${p}.attn.proj.weight`, [d, d]);
    m.set(`${p}.attn.proj.bias`, [d]);
    if (c.initValues) m.set(`${p}.ls1.gamma`, [d]);
    m.set(`${p}.norm2.weight`, [d]);
    m.set(`${p}.norm2.bias`, [d]);
    m.set(`${p}.mlp.fc1.weight`, [f, d]);
    m.set(`${p}.mlp.fc1.bias`, [f]);
    m.set(`${p}.mlp.fc2.weight`, [d, f]);
    m.set(`${p}.mlp.fc2.bias`, [d]);
    if (c.initValues) m.set(`${p}.ls2.gamma`, [d]);
  }
  m.set("norm.weight", [d]);
  m.set("norm.bias", [d]);
  return m;
}

function layoutError(what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_LAYOUT",
    `${what}: these are not DINOv2 weights in the torch-hub DinoVisionTransformer layout ` +
      `(dinov2_vit*14_pretrain.pth) matching the configuration given.`,
  );
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Throws E_WEIGHTS_LAYOUT naming the first key (in file order) that the configured model does
 * not have or has with another shape, then the first expected key that is missing;
 * E_WEIGHTS_DTYPE when a needed tensor is not float32. `mask_token` (training only) is tolerated.
 */
export function checkDinov2Layout(sd: StateDict, config: Dinov2Config): void {
  const layout = dinov2Layout(config);
  for (const [key, t] of sd) {
    if (key === "mask_token") continue;
    const want = layout.get(key);
    if (!want) throw layoutError(`unexpected tensor '${key}'`);
    if (!sameShape(t.shape, want)) throw layoutError(`tensor '${key}' has shape [${t.shape.join(", ")}], expected [${want.join(", ")}]`);
  }
  for (const key of layout.keys()) if (!sd.has(key)) throw layoutError(`tensor '${key}' is missing`);
  for (const key of layout.keys()) {
    const t = sd.get(key)!;
    if (isUnsupportedDtype(t)) throw dtypeError(t.file, key, t.dtype);
  }
}

// ---------------------------------------------------------------------------------------------
// Position-embedding resampling (torch's upsample_bicubic2d, align_corners False, no antialias)

function cubic1(x: number): number {
  // |x| <= 1
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}

function cubic2(x: number): number {
  // 1 < |x| < 2
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/**
 * For each of `outSize` output positions: the 4 source indices (border-clamped) and weights of
 * torch's bicubic kernel, with source coordinate (i + 0.5) * scale - 0.5 where `scale` is the
 * source step per output pixel (1 / scale_factor when a scale_factor was given).
 */
export function bicubicTaps(inSize: number, outSize: number, scale: number): { index: Int32Array; weight: Float64Array } {
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    const real = scale * (i + 0.5) - 0.5;
    // guard_index_and_lambda: index capped at the last pixel, lambda clamped to [0, 1].
    const i0 = Math.min(Math.floor(real), inSize - 1);
    const t = Math.min(Math.max(real - i0, 0), 1);
    const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let j = 0; j < 4; j++) {
      index[i * 4 + j] = Math.max(0, Math.min(inSize - 1, i0 - 1 + j));
      weight[i * 4 + j] = w[j];
    }
  }
  return { index, weight };
}

/**
 * Resamples a row-major [M * M, d] grid of position embeddings (the patch rows of `pos_embed`)
 * to [g * g, d] as the reference `interpolate_pos_encoding` does for a g x g input grid; float64
 * arithmetic, float32 result. Returns a copy when g equals M (the reference skips interpolation).
 */
export function resamplePositionGrid(grid: Float32Array, M: number, d: number, g: number, interpolateOffset: number): Float32Array {
  if (grid.length !== M * M * d) throw new Error(`position grid has ${grid.length} values, expected ${M}x${M}x${d}`);
  if (g === M) return Float32Array.from(grid);
  let scale: number;
  if (interpolateOffset) {
    const scaleFactor = (g + interpolateOffset) / M;
    const outSize = Math.floor(M * scaleFactor);
    if (outSize !== g) throw configError(`interpolate_offset ${interpolateOffset} gives a ${outSize}-wide grid for a ${g}-wide input`);
    scale = 1 / scaleFactor;
  } else {
    scale = M / g;
  }
  const { index, weight } = bicubicTaps(M, g, scale);
  // Separable: rows first ([g, M, d]), then columns ([g, g, d]).
  const tmp = new Float64Array(g * M * d);
  for (let y = 0; y < g; y++)
    for (let x = 0; x < M; x++)
      for (let j = 0; j < 4; j++) {
        const w = weight[y * 4 + j];
        const src = (index[y * 4 + j] * M + x) * d;
        const dst = (y * M + x) * d;
        for (let c = 0; c < d; c++) tmp[dst + c] += w * grid[src + c];
      }
  const out = new Float64Array(g * g * d);
  for (let y = 0; y < g; y++)
    for (let x = 0; x < g; x++)
      for (let j = 0; j < 4; j++) {
        const w = weight[x * 4 + j];
        const src = (y * M + index[x * 4 + j]) * d;
        const dst = (y * g + x) * d;
        for (let c = 0; c < d; c++) out[dst + c] += w * tmp[src + c];
      }
  return Float32Array.from(out);
}

// ---------------------------------------------------------------------------------------------
// Graph

function tensor(sd: StateDict, key: string): TensorF32 {
  return sd.get(key)!;
}

/** One Linear from raw nn.Linear weights [outF, inF] and bias [outF]. */
function linearFrom(g: OnnxGraph, name: string, x: string, w: Float32Array, b: Float32Array, inF: number, outF: number): string {
  const wT = g.initializer(`${name}.weight_t`, [inF, outF], transpose2d(w, outF, inF));
  const bias = g.initializer(`${name}.bias`, [outF], b);
  return g.node("Add", [g.node("MatMul", [x, wT], `${name}.matmul`), bias], `${name}.add`, {}, name);
}

function emitGelu(g: OnnxGraph, x: string, prefix: string): string {
  // 0.5 x (1 + erf(x / sqrt(2)))
  const e = g.node("Erf", [g.node("Mul", [x, floatScalar(g, `${prefix}.inv_sqrt2`, Math.SQRT1_2)], `${prefix}.scaled`)], `${prefix}.erf`);
  const p = g.node("Add", [e, floatScalar(g, `${prefix}.one`, 1)], `${prefix}.plus1`);
  return g.node("Mul", [g.node("Mul", [x, floatScalar(g, `${prefix}.half`, 0.5)], `${prefix}.halfx`), p], prefix);
}

function emitLayerScale(g: OnnxGraph, sd: StateDict, key: string, x: string, c: Dinov2Config): string {
  if (!c.initValues) return x;
  const gamma = g.initializer(`${key}.gamma`, [c.embedDim], tensor(sd, `${key}.gamma`).data);
  return g.node("Mul", [x, gamma], key);
}

function emitDinoBlock(g: OnnxGraph, sd: StateDict, p: string, x: string, c: Dinov2Config): string {
  const d = c.embedDim;
  const heads = c.numHeads;
  const hd = d / heads;
  const f = mlpHidden(c);
  const a = `${p}.attn`;

  const n1 = emitLayerNorm(g, sd, `${p}.norm1`, x, d, LN_EPS);
  const qkvW = tensor(sd, `${a}.qkv.weight`).data;
  const qkvB = tensor(sd, `${a}.qkv.bias`).data;
  // The fused weight's rows are q | k | v (reshape(B, N, 3, heads, hd) in the reference).
  const [q, k, v] = ["q", "k", "v"].map((n, i) =>
    linearFrom(g, `${a}.qkv.${n}`, n1, qkvW.subarray(i * d * d, (i + 1) * d * d), qkvB.subarray(i * d, (i + 1) * d), d, d),
  );
  const split = intsConstant(g, `${a}.split_shape`, [0, -1, heads, hd]);
  const heads4 = (t: string, tag: string, perm: number[]): string =>
    g.node("Transpose", [g.node("Reshape", [t, split], `${a}.${tag}_split`)], `${a}.${tag}_heads`, { perm });
  const qh = heads4(q, "q", [0, 2, 1, 3]);
  const khT = heads4(k, "k", [0, 2, 3, 1]);
  const vh = heads4(v, "v", [0, 2, 1, 3]);
  const raw = g.node("MatMul", [qh, khT], `${a}.scores_raw`);
  const scores = g.node("Mul", [raw, floatScalar(g, `${a}.scale`, hd ** -0.5)], `${a}.scores`);
  const probs = g.node("Softmax", [scores], `${a}.probs`, { axis: -1 });
  const ctx = g.node("MatMul", [probs, vh], `${a}.context`);
  const merged = g.node(
    "Reshape",
    [g.node("Transpose", [ctx], `${a}.context_t`, { perm: [0, 2, 1, 3] }), intsConstant(g, `${a}.merge_shape`, [0, -1, d])],
    `${a}.merged`,
  );
  const attn = emitLinear(g, sd, `${a}.proj`, merged, d, d, true);
  const h = g.node("Add", [x, emitLayerScale(g, sd, `${p}.ls1`, attn, c)], `${p}.residual1`);

  const n2 = emitLayerNorm(g, sd, `${p}.norm2`, h, d, LN_EPS);
  const fc1 = emitLinear(g, sd, `${p}.mlp.fc1`, n2, d, f, true);
  const fc2 = emitLinear(g, sd, `${p}.mlp.fc2`, emitGelu(g, fc1, `${p}.mlp.gelu`), f, d, true);
  return g.node("Add", [h, emitLayerScale(g, sd, `${p}.ls2`, fc2, c)], `${p}.residual2`);
}

export interface Dinov2BuildOptions {
  /** Side of the square input in pixels (a multiple of patch_size); 224 (dgm-eval's) by default. */
  inputSize?: number;
}

/**
 * ONNX model bytes: input `pixel_values` float32 [batch, in_chans, inputSize, inputSize], output
 * `features` [batch, embed_dim] (x_norm_clstoken). Checks the layout first (E_WEIGHTS_LAYOUT /
 * E_WEIGHTS_DTYPE); the position grid is resampled here for `inputSize`.
 */
export function buildDinov2Onnx(sd: StateDict, config: Dinov2Config, opts: Dinov2BuildOptions = {}): Uint8Array {
  checkDinov2Layout(sd, config);
  const c = config;
  const d = c.embedDim;
  if (d % c.numHeads !== 0) throw configError(`embed_dim ${d} is not a multiple of num_heads ${c.numHeads}`);
  const size = opts.inputSize ?? 224;
  if (!Number.isInteger(size) || size <= 0 || size % c.patchSize !== 0) {
    throw new DiffevalError("E_USAGE", `DINOv2 input size ${size} is not a positive multiple of the patch size ${c.patchSize}`);
  }
  const gIn = size / c.patchSize;
  const M = sourceGrid(c);
  const g = new OnnxGraph();

  const patchW = g.initializer("patch_embed.proj.weight", [d, c.inChans, c.patchSize, c.patchSize], tensor(sd, "patch_embed.proj.weight").data);
  const patchB = g.initializer("patch_embed.proj.bias", [d], tensor(sd, "patch_embed.proj.bias").data);
  const conv = g.node("Conv", ["pixel_values", patchW, patchB], "patch_embed.proj", {
    kernel_shape: [c.patchSize, c.patchSize],
    strides: [c.patchSize, c.patchSize],
  });
  // [b, d, g, g] -> [b, d, g^2] -> [b, g^2, d]
  const flat = g.node("Reshape", [conv, intsConstant(g, "patch_embed.flat_shape", [0, d, -1])], "patch_embed.flat");
  const patches = g.node("Transpose", [flat], "patch_embed.tokens", { perm: [0, 2, 1] });

  // Position embedding for this input: the class row as is, the patch grid resampled.
  const posSrc = tensor(sd, "pos_embed").data;
  const pos = new Float32Array((1 + gIn * gIn) * d);
  pos.set(posSrc.subarray(0, d), 0);
  pos.set(resamplePositionGrid(posSrc.subarray(d), M, d, gIn, c.interpolateOffset), d);
  // The class token with its position row added at conversion (a float32 add, as torch does).
  const clsData = tensor(sd, "cls_token").data;
  const clsPos = Float32Array.from(clsData, (v, i) => Math.fround(v + pos[i]));
  const cls = g.initializer("cls_token_pos", [1, 1, d], clsPos);
  const patchPos = g.initializer("pos_embed.patches", [gIn * gIn, d], pos.subarray(d));
  const patchesPos = g.node("Add", [patches, patchPos], "patch_tokens");

  const batch = g.node("Shape", ["pixel_values"], "batch", { start: 0, end: 1 });
  const expand = (name: string, rows: number): string => {
    const shape = g.node("Concat", [batch, intsConstant(g, `${name}.tail`, [rows, d])], `${name}.shape`, { axis: 0 });
    return g.node("Expand", [name, shape], `${name}.expanded`);
  };
  const parts = [expand(cls, 1)];
  if (c.numRegisterTokens > 0) {
    const reg = g.initializer("register_tokens", [1, c.numRegisterTokens, d], tensor(sd, "register_tokens").data);
    parts.push(expand(reg, c.numRegisterTokens));
  }
  parts.push(patchesPos);
  let x = g.node("Concat", parts, "tokens", { axis: 1 });

  for (let i = 0; i < c.depth; i++) x = emitDinoBlock(g, sd, `blocks.${i}`, x, c);
  const first = g.node("Constant", [], "cls_index", { value_int: 0 });
  const clsOut = g.node("Gather", [x, first], "cls_out", { axis: 1 }); // [b, d]
  // LayerNorm is per token, so normalising the class token alone equals norm(x)[:, 0].
  emitLayerNorm(g, sd, "norm", clsOut, d, LN_EPS, "features");

  return g.toModelBytes({
    name: "dinov2",
    opset: OPSET,
    docString: `DINOv2 DinoVisionTransformer x_norm_clstoken at ${size}x${size}; diffeval converter version ${DINOV2_CONVERTER_VERSION}`,
    inputs: [{ name: "pixel_values", dims: ["batch", c.inChans, size, size] }],
    outputs: [{ name: "features", dims: ["batch", d] }],
  });
}
