/**
 * The FID Inception network (pytorch-fid's `fid_inception_v3`) as an ONNX graph built from its
 * state dict (`pt_inception-2015-12-05-6726825d.pth`).
 *
 * Architecture: torchvision's Inception3 (torchvision/models/inception.py) with 1008 classes, no
 * AuxLogits, and pytorch-fid's patches (src/pytorch_fid/inception.py): FIDInceptionA/C/E_1 average
 * their pool branch with count_include_pad=False (TensorFlow's behaviour), and FIDInceptionE_2
 * (Mixed_7c) max-pools its pool branch. Every conv is BasicConv2d: Conv2d(bias=False) ->
 * BatchNorm2d(eps=0.001) -> ReLU. After Mixed_7c: global average pool -> `pool3` (2048), then
 * fc -> `logits` (1008, with the bias; torch-fidelity's Inception Score drops the bias itself).
 *
 * The input is the tensor that reaches Conv2d_1a_3x3 (already resized and scaled to [-1, 1]).
 * With `{ spatial: true }` the graph also outputs sFID's spatial features (see SPATIAL_DIM).
 */
import { DiffevalError } from "../errors.js";
import { OnnxGraph } from "./onnx-graph.js";
import { dtypeError, isUnsupportedDtype, type StateDict } from "./pth.js";

/**
 * Bump whenever the graph this file builds changes (ops, folding, names, opset): cached .onnx
 * files are keyed on it together with the weights' sha256.
 */
export const INCEPTION_CONVERTER_VERSION = 1;

/**
 * Bump whenever the nodes behind the optional `spatial` output change. The default graph (no
 * `spatial` output) does not depend on it, so INCEPTION_CONVERTER_VERSION keys that one alone;
 * a cached spatial graph must be keyed on both.
 */
export const INCEPTION_SPATIAL_VERSION = 1;

/** torchvision BasicConv2d: nn.BatchNorm2d(out_channels, eps=0.001). */
const BN_EPS = 0.001;
const NUM_CLASSES = 1008;
const POOL3_DIM = 2048;
const OPSET = 17;

/**
 * sFID's feature size (Nash et al. 2021, "Generating images with sparse representations"): the
 * first 7 channels of the TF graph's `mixed_6/conv:0`, a 17 x 17 map, flattened: 17 * 17 * 7.
 *
 * Which tensor that is, and how the reference flattens it:
 * - The reference is the ADM evaluator (openai/guided-diffusion, evaluations/evaluator.py):
 *   `FID_SPATIAL_NAME = "mixed_6/conv:0"`; `_create_feature_graph` takes it from
 *   classify_image_graph_def.pb (inception-2015-12-05, the graph this file reproduces) and keeps
 *   `spatial[..., :7]` of that NHWC tensor; `compute_activations` then does
 *   `spatial_pred.reshape([spatial_pred.shape[0], -1])`, numpy C order, so feature
 *   `(h * 17 + w) * 7 + c` is channel c at row h, column w: channels vary fastest.
 * - TF block `mixed_6` is torchvision's Mixed_6d and its scope `conv` is `branch1x1`:
 *   torch-fidelity's converter from that very graph (utils/util_convert_inception_weights.py, the
 *   table "obtained through semi-automatic matching by the shapes of tensors"; it pops every Const
 *   and fails on any it cannot place) maps "mixed_6/conv/conv2d_params" -> "Mixed_6d.branch1x1.conv"
 *   and "mixed_6/conv/batchnorm" -> "Mixed_6d.branch1x1.bn". The TF blocks run mixed, mixed_1,
 *   mixed_2 = Mixed_5b-5d; mixed_3 = 6a; mixed_4..mixed_7 = 6b..6e; mixed_8 = 7a; mixed_9, mixed_10
 *   = 7b, 7c. Mixed_6d.branch1x1 is a 1x1 conv 768 -> 192 on the 17 x 17 grid, as required.
 * - `mixed_6/conv:0` is the whole conv unit's output, after BatchNorm and ReLU: in that graph a
 *   unit's BatchNormWithGlobalNormalization op is `<scope>/batchnorm` (hvy/chainer-inception-score's
 *   download.py reads `get_operation_by_name("<scope>/batchnorm").get_attr("variance_epsilon")`)
 *   and its Conv2D op is `<scope>/Conv2D` (weight-dump scripts for that graph read
 *   `get_operation_by_name(gname + '/Conv2D')` for strides and padding), so the op named `<scope>`
 *   itself is the unit's last op, the ReLU that feeds the block's concat. The same repository's
 *   inception_score.py mirrors the TF scopes: `mixed_6` -> ('conv', Tower([conv, bn_conv, relu])),
 *   first in the concat. (Inferred from op names: no op-type listing of the graph was at hand.)
 * - PyTorch ports agree: ports of the ADM evaluator on pytorch-fid's network take
 *   `Mixed_6d.branch1x1(x)` (BasicConv2d: conv, bn, relu) on Mixed_6c's output, and ports on
 *   NVIDIA's TorchScript inception-2015-12-05.pt stop at `layers.mixed_6.conv`. Some of those
 *   flatten `[:, :7]` in NCHW order (channel slowest): the Frechet distance is the same under any
 *   fixed permutation of the features, but ADM's reference batches (`mu_s`, `sigma_s`) are in the
 *   NHWC order, which is the one emitted here.
 * Checked in test/models/inception-spatial.test.ts against a float64 conv + BN + ReLU computed
 * from the state dict's Mixed_6d.branch1x1 weights on Mixed_6c's output.
 */
export const SPATIAL_DIM = 2023;
/** The torchvision module whose output is TF's `mixed_6/conv:0` (see SPATIAL_DIM). */
const SPATIAL_MODULE = "Mixed_6d.branch1x1";
/** ADM: `spatial = spatial[..., :7]`. */
const SPATIAL_CHANNELS = 7;

// ---------------------------------------------------------------------------------------------
// The architecture as data, walked once to list the expected weights and once to emit the graph.

type Step =
  | { op: "conv"; name: string; out: number; kernel: [number, number]; stride: number; pad: [number, number] }
  | { op: "maxpool"; stride: number; pad: number }
  /** 3x3 stride 1 pad 1, count_include_pad=False (pytorch-fid's FID patch). */
  | { op: "avgpool" }
  /** Branches read the same input; their outputs are concatenated on channels in this order. */
  | { op: "fork"; branches: Step[][] };

interface Block {
  /** State-dict prefix ("" for the stem convs). */
  module: string;
  steps: Step[];
}

function conv(name: string, out: number, kernel: number | [number, number], stride = 1, pad: number | [number, number] = 0): Step {
  const k: [number, number] = typeof kernel === "number" ? [kernel, kernel] : kernel;
  const p: [number, number] = typeof pad === "number" ? [pad, pad] : pad;
  return { op: "conv", name, out, kernel: k, stride, pad: p };
}

const fork = (...branches: Step[][]): Step => ({ op: "fork", branches });
const maxPool3 = (stride: number, pad = 0): Step => ({ op: "maxpool", stride, pad });
const avgPool3: Step = { op: "avgpool" };

/** InceptionA / FIDInceptionA: 1x1 | 1x1,5x5 | 1x1,3x3,3x3 | avgpool,1x1. */
function inceptionA(module: string, poolFeatures: number): Block {
  return {
    module,
    steps: [
      fork(
        [conv("branch1x1", 64, 1)],
        [conv("branch5x5_1", 48, 1), conv("branch5x5_2", 64, 5, 1, 2)],
        [conv("branch3x3dbl_1", 64, 1), conv("branch3x3dbl_2", 96, 3, 1, 1), conv("branch3x3dbl_3", 96, 3, 1, 1)],
        [avgPool3, conv("branch_pool", poolFeatures, 1)],
      ),
    ],
  };
}

/** InceptionB (Mixed_6a, torchvision's, unpatched): 3x3/2 | 1x1,3x3,3x3/2 | maxpool/2. */
function inceptionB(module: string): Block {
  return {
    module,
    steps: [
      fork(
        [conv("branch3x3", 384, 3, 2)],
        [conv("branch3x3dbl_1", 64, 1), conv("branch3x3dbl_2", 96, 3, 1, 1), conv("branch3x3dbl_3", 96, 3, 2)],
        [maxPool3(2)],
      ),
    ],
  };
}

/** InceptionC / FIDInceptionC with factorised 7x7s: 1x1 | 1x7,7x1 | 7x1,1x7,7x1,1x7 | avgpool,1x1. */
function inceptionC(module: string, c7: number): Block {
  const row = (name: string, out: number): Step => conv(name, out, [1, 7], 1, [0, 3]);
  const col = (name: string, out: number): Step => conv(name, out, [7, 1], 1, [3, 0]);
  return {
    module,
    steps: [
      fork(
        [conv("branch1x1", 192, 1)],
        [conv("branch7x7_1", c7, 1), row("branch7x7_2", c7), col("branch7x7_3", 192)],
        [
          conv("branch7x7dbl_1", c7, 1),
          col("branch7x7dbl_2", c7),
          row("branch7x7dbl_3", c7),
          col("branch7x7dbl_4", c7),
          row("branch7x7dbl_5", 192),
        ],
        [avgPool3, conv("branch_pool", 192, 1)],
      ),
    ],
  };
}

/** InceptionD (Mixed_7a, torchvision's, unpatched): 1x1,3x3/2 | 1x1,1x7,7x1,3x3/2 | maxpool/2. */
function inceptionD(module: string): Block {
  return {
    module,
    steps: [
      fork(
        [conv("branch3x3_1", 192, 1), conv("branch3x3_2", 320, 3, 2)],
        [
          conv("branch7x7x3_1", 192, 1),
          conv("branch7x7x3_2", 192, [1, 7], 1, [0, 3]),
          conv("branch7x7x3_3", 192, [7, 1], 1, [3, 0]),
          conv("branch7x7x3_4", 192, 3, 2),
        ],
        [maxPool3(2)],
      ),
    ],
  };
}

/**
 * InceptionE: 1x1 | 1x1,(1x3 | 3x1) | 1x1,3x3,(1x3 | 3x1) | pool,1x1. FIDInceptionE_1 (Mixed_7b)
 * average-pools without the padding; FIDInceptionE_2 (Mixed_7c) max-pools 3x3 s1 p1.
 */
function inceptionE(module: string, pool: "avg" | "max"): Block {
  const split = (a: string, b: string): Step =>
    fork([conv(a, 384, [1, 3], 1, [0, 1])], [conv(b, 384, [3, 1], 1, [1, 0])]);
  return {
    module,
    steps: [
      fork(
        [conv("branch1x1", 320, 1)],
        [conv("branch3x3_1", 384, 1), split("branch3x3_2a", "branch3x3_2b")],
        [conv("branch3x3dbl_1", 448, 1), conv("branch3x3dbl_2", 384, 3, 1, 1), split("branch3x3dbl_3a", "branch3x3dbl_3b")],
        [pool === "avg" ? avgPool3 : maxPool3(1, 1), conv("branch_pool", 192, 1)],
      ),
    ],
  };
}

/** Inception3._forward up to Mixed_7c, with pytorch-fid's block substitutions. */
const FID_INCEPTION: Block[] = [
  {
    module: "",
    steps: [
      conv("Conv2d_1a_3x3", 32, 3, 2),
      conv("Conv2d_2a_3x3", 32, 3),
      conv("Conv2d_2b_3x3", 64, 3, 1, 1),
      maxPool3(2),
      conv("Conv2d_3b_1x1", 80, 1),
      conv("Conv2d_4a_3x3", 192, 3),
      maxPool3(2),
    ],
  },
  inceptionA("Mixed_5b", 32),
  inceptionA("Mixed_5c", 64),
  inceptionA("Mixed_5d", 64),
  inceptionB("Mixed_6a"),
  inceptionC("Mixed_6b", 128),
  inceptionC("Mixed_6c", 160),
  inceptionC("Mixed_6d", 160),
  inceptionC("Mixed_6e", 192),
  inceptionD("Mixed_7a"),
  inceptionE("Mixed_7b", "avg"),
  inceptionE("Mixed_7c", "max"),
];

/** A conv step with its resolved state-dict prefix and input channels. */
interface ResolvedConv {
  key: string;
  inC: number;
  step: Extract<Step, { op: "conv" }>;
}

/** Visits every step in forward order, tracking channels; returns the output channel count. */
function walkSteps(steps: Step[], module: string, inC: number, visit: (step: Step, key: string, inC: number) => void): number {
  let c = inC;
  for (const step of steps) {
    if (step.op === "fork") {
      c = step.branches.reduce((sum, b) => sum + walkSteps(b, module, c, visit), 0);
      continue;
    }
    visit(step, step.op === "conv" ? qualify(module, step.name) : module, c);
    if (step.op === "conv") c = step.out;
  }
  return c;
}

function qualify(module: string, name: string): string {
  return module ? `${module}.${name}` : name;
}

function fidInceptionConvs(): ResolvedConv[] {
  const out: ResolvedConv[] = [];
  let c = 3;
  for (const block of FID_INCEPTION) {
    c = walkSteps(block.steps, block.module, c, (step, key, inC) => {
      if (step.op === "conv") out.push({ key, inC, step });
    });
  }
  if (c !== POOL3_DIM) throw new Error(`FID Inception description ends with ${c} channels, not ${POOL3_DIM}`);
  return out;
}

/** Every key of the FID Inception state dict with its shape, in torchvision's order. */
function expectedLayout(): Map<string, number[]> {
  const layout = new Map<string, number[]>();
  for (const { key, inC, step } of fidInceptionConvs()) {
    layout.set(`${key}.conv.weight`, [step.out, inC, ...step.kernel]);
    for (const p of ["weight", "bias", "running_mean", "running_var"]) layout.set(`${key}.bn.${p}`, [step.out]);
  }
  layout.set("fc.weight", [NUM_CLASSES, POOL3_DIM]);
  layout.set("fc.bias", [NUM_CLASSES]);
  return layout;
}

// ---------------------------------------------------------------------------------------------
// Layout check

function layoutError(what: string, hint = ""): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_LAYOUT",
    `${what}: these are not the FID Inception weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth: ` +
      `472 tensors, 1008-class fc, no AuxLogits).${hint} Use the standard FID weights file.`,
  );
}

function torchvisionHint(key: string): string {
  return key.startsWith("AuxLogits.") || key === "fc.weight" || key === "fc.bias"
    ? " It looks like torchvision's ImageNet inception_v3 (1000 classes, AuxLogits), which gives different features."
    : "";
}

/**
 * Throws E_WEIGHTS_LAYOUT naming the first key (in file order) that FID Inception does not have
 * or has with another shape, then the first expected key that is missing; E_WEIGHTS_DTYPE if a
 * needed tensor is not float32. BatchNorm `num_batches_tracked` counters (newer torch adds them to
 * every state dict) are tolerated: they do not take part in inference.
 */
export function checkInceptionLayout(sd: StateDict): void {
  const layout = expectedLayout();
  for (const [key, t] of sd) {
    const want = layout.get(key);
    if (!want) {
      if (isBatchNormCounter(key, layout)) continue;
      throw layoutError(`unexpected tensor '${key}'`, torchvisionHint(key));
    }
    if (!sameShape(t.shape, want)) {
      throw layoutError(`tensor '${key}' has shape [${t.shape.join(", ")}], expected [${want.join(", ")}]`, torchvisionHint(key));
    }
  }
  for (const key of layout.keys()) {
    if (!sd.has(key)) throw layoutError(`tensor '${key}' is missing`);
  }
  for (const key of layout.keys()) {
    const t = sd.get(key)!;
    if (isUnsupportedDtype(t)) throw dtypeError(t.file, key, t.dtype);
  }
}

function isBatchNormCounter(key: string, layout: Map<string, number[]>): boolean {
  const suffix = ".bn.num_batches_tracked";
  return key.endsWith(suffix) && layout.has(`${key.slice(0, -suffix.length)}.bn.running_mean`);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export interface InceptionLayoutSummary {
  tensors: number;
  values: number;
  convLayers: number;
  fcClasses: number;
  /** e.g. "472 tensors, 23,885,392 values, 94 conv layers, fc 2048 -> 1008" */
  text: string;
  /** The text, so that `${summary}` prints it. */
  toString(): string;
}

/** What `model info` prints about an FID Inception state dict (checked or not). */
export function inceptionLayoutSummary(sd: StateDict): InceptionLayoutSummary {
  let values = 0;
  let convLayers = 0;
  for (const [key, t] of sd) {
    values += t.shape.reduce((a, b) => a * b, 1);
    if (key.endsWith(".conv.weight")) convLayers++;
  }
  const fc = sd.get("fc.weight")?.shape ?? [0, 0];
  const text =
    `${sd.size} tensors, ${values.toLocaleString("en-US")} values, ${convLayers} conv layers, ` + `fc ${fc[1]} -> ${fc[0]}`;
  return { tensors: sd.size, values, convLayers, fcClasses: fc[0], text, toString: () => text };
}

// ---------------------------------------------------------------------------------------------
// Graph

/**
 * Folds BatchNorm (eval mode) into the conv before it: BN(conv(x, w)) = conv(x, w') + b' with
 *   s = gamma / sqrt(running_var + eps),  w'[o] = w[o] * s[o],  b'[o] = beta[o] - running_mean[o] * s[o].
 * Computed in float64 and rounded once to float32, so the folded weights are as close to the
 * reference's two-step float32 arithmetic as one rounding allows.
 */
function foldBatchNorm(sd: StateDict, key: string, out: number): { weight: Float32Array; bias: Float32Array } {
  const w = sd.get(`${key}.conv.weight`)!.data;
  const gamma = sd.get(`${key}.bn.weight`)!.data;
  const beta = sd.get(`${key}.bn.bias`)!.data;
  const mean = sd.get(`${key}.bn.running_mean`)!.data;
  const variance = sd.get(`${key}.bn.running_var`)!.data;
  const perOut = w.length / out;
  const weight = new Float32Array(w.length);
  const bias = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const s = gamma[o] / Math.sqrt(variance[o] + BN_EPS);
    for (let i = o * perOut; i < (o + 1) * perOut; i++) weight[i] = w[i] * s;
    bias[o] = beta[o] - mean[o] * s;
  }
  return { weight, bias };
}

/** The tensor a BasicConv2d ends with: conv (BN folded) -> ReLU. */
function reluOutput(key: string): string {
  return `${key}.relu`;
}

/** Emits the nodes of one step; returns the name of its output. */
function emitStep(g: OnnxGraph, sd: StateDict, step: Step, module: string, input: string, inC: number, id: () => string): { out: string; c: number } {
  switch (step.op) {
    case "conv": {
      const key = qualify(module, step.name);
      const { weight, bias } = foldBatchNorm(sd, key, step.out);
      // Both initializers are BN-folded (see foldBatchNorm); named after the conv's state-dict key.
      const w = g.initializer(`${key}.conv.weight`, [step.out, inC, ...step.kernel], weight);
      const b = g.initializer(`${key}.conv.bias`, [step.out], bias);
      const [ph, pw] = step.pad;
      const y = g.node("Conv", [input, w, b], `${key}.conv`, {
        kernel_shape: step.kernel,
        strides: [step.stride, step.stride],
        pads: [ph, pw, ph, pw],
      });
      return { out: g.node("Relu", [y], reluOutput(key)), c: step.out };
    }
    case "maxpool": {
      const p = step.pad;
      const name = `${module || "stem"}.maxpool_${id()}`;
      return { out: g.node("MaxPool", [input], name, { kernel_shape: [3, 3], strides: [step.stride, step.stride], pads: [p, p, p, p] }), c: inC };
    }
    case "avgpool": {
      const name = `${module}.avgpool_${id()}`;
      const attrs = { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 0 };
      return { out: g.node("AveragePool", [input], name, attrs), c: inC };
    }
    case "fork": {
      const outs = step.branches.map((b) => emitSteps(g, sd, b, module, input, inC, id));
      const name = `${module}.concat_${id()}`;
      return { out: g.node("Concat", outs.map((o) => o.out), name, { axis: 1 }), c: outs.reduce((s, o) => s + o.c, 0) };
    }
  }
}

function emitSteps(g: OnnxGraph, sd: StateDict, steps: Step[], module: string, input: string, inC: number, id: () => string): { out: string; c: number } {
  let cur = { out: input, c: inC };
  for (const step of steps) cur = emitStep(g, sd, step, module, cur.out, cur.c, id);
  return cur;
}

/**
 * sFID's `spatial` [batch, 2023] from the [batch, 192, 17, 17] branch1x1 output: the first 7
 * channels (Slice), to NHWC (Transpose), flattened per image (Reshape to [0, 2023], where 0 keeps
 * the batch dimension, so an empty batch works too), exactly ADM's `spatial[..., :7]` then
 * `reshape([n, -1])`. The int64 operands are Constant nodes with `value_ints` (opset >= 12).
 */
function emitSpatial(g: OnnxGraph): void {
  const ints = (name: string, values: number[]): string => g.node("Constant", [], `spatial.${name}`, { value_ints: values });
  const starts = ints("starts", [0]);
  const ends = ints("ends", [SPATIAL_CHANNELS]);
  const axes = ints("axes", [1]);
  const first7 = g.node("Slice", [reluOutput(SPATIAL_MODULE), starts, ends, axes], "spatial.slice");
  const nhwc = g.node("Transpose", [first7], "spatial.nhwc", { perm: [0, 2, 3, 1] });
  const shape = ints("shape", [0, SPATIAL_DIM]);
  g.node("Reshape", [nhwc, shape], "spatial.flatten", {}, "spatial");
}

export interface InceptionOnnxOptions {
  /** Add a third output `spatial` [batch, SPATIAL_DIM], sFID's features (see SPATIAL_DIM). */
  spatial?: boolean;
}

/**
 * ONNX model bytes (opset 17) for the FID Inception network: input `images` float32
 * [batch, 3, 299, 299] (already normalised), outputs `pool3` [batch, 2048] and `logits`
 * [batch, 1008], and with `spatial: true` also `spatial` [batch, 2023]. Without it the bytes are
 * those of INCEPTION_CONVERTER_VERSION's graph; the spatial nodes come after all the others.
 * Checks the layout first (E_WEIGHTS_LAYOUT / E_WEIGHTS_DTYPE).
 */
export function buildInceptionOnnx(sd: StateDict, opts: InceptionOnnxOptions = {}): Uint8Array {
  checkInceptionLayout(sd);
  const g = new OnnxGraph();
  let n = 0;
  const id = (): string => String(n++);
  let cur = { out: "images", c: 3 };
  for (const block of FID_INCEPTION) cur = emitSteps(g, sd, block.steps, block.module, cur.out, cur.c, id);
  // AdaptiveAvgPool2d((1, 1)) then torch.flatten(x, 1).
  const gap = g.node("GlobalAveragePool", [cur.out], "avgpool");
  const pool3 = g.node("Flatten", [gap], "flatten", { axis: 1 }, "pool3");
  const fcW = g.initializer("fc.weight", [NUM_CLASSES, POOL3_DIM], sd.get("fc.weight")!.data);
  const fcB = g.initializer("fc.bias", [NUM_CLASSES], sd.get("fc.bias")!.data);
  // nn.Linear: y = x W^T + b, i.e. Gemm with transB = 1.
  g.node("Gemm", [pool3, fcW, fcB], "fc", { transB: 1 }, "logits");
  if (opts.spatial) emitSpatial(g);
  const docString = `pytorch-fid FID Inception v3, BatchNorm folded; diffeval converter version ${INCEPTION_CONVERTER_VERSION}`;
  return g.toModelBytes({
    name: "fid_inception_v3",
    opset: OPSET,
    docString: opts.spatial ? `${docString}; sFID spatial output version ${INCEPTION_SPATIAL_VERSION}` : docString,
    inputs: [{ name: "images", dims: ["batch", 3, 299, 299] }],
    outputs: [
      { name: "pool3", dims: ["batch", POOL3_DIM] },
      { name: "logits", dims: ["batch", NUM_CLASSES] },
      ...(opts.spatial ? [{ name: "spatial", dims: ["batch", SPATIAL_DIM] }] : []),
    ],
  });
}

