/**
 * A Stable Diffusion ONNX export folder (the layout diffusers' conversion script and optimum
 * write): `model_index.json`, `text_encoder/model.onnx`, `unet/model.onnx` (weights over 2 GB in
 * `model.onnx_data` or `weights.pb` beside it, found by onnxruntime when the model is opened from
 * its path), `vae_decoder/model.onnx`, `tokenizer/` and `scheduler/scheduler_config.json`.
 *
 * Exports differ in their inputs, so nothing is assumed: each session's input metadata says what
 * it expects and the feeders below give exactly that.
 * - text_encoder: `input_ids` int32 (diffusers' script) or int64 (optimum), [batch, 77].
 * - unet: `sample` and `encoder_hidden_states` float32 or float16; `timestep` float32 [1]
 *   (diffusers' script), float32 scalar (optimum >= 1.24) or int64 [1] (older optimum); integer
 *   timesteps are truncated as numpy's `np.array([t], dtype=...)` does.
 * - vae_decoder: `latent_sample` float32 or float16.
 * A folder missing a part, or a model whose inputs are not these (an SDXL UNet, say), is refused
 * with an error naming the file.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../../errors.js";
import { openSession, type DeviceName, type ResolvedDevice } from "../../models/session.js";
import { isPlainObject, parseJsonText } from "../../io/read-json.js";
import { loadClipTokenizer, type ClipTokenizer } from "../../text/clip-tokenizer.js";
import { fromHalfArray, toHalfArray } from "./float16.js";

/** `latents / scaling_factor` before decoding; every SD 1.x/2.x pipeline hard-codes this value. */
export const DEFAULT_VAE_SCALING = 0.18215;
/** Pixels per latent cell (the SD VAE halves the resolution three times). */
export const LATENT_FACTOR = 8;
/**
 * The largest UNet `sample_size` (latent side) accepted from unet/config.json: SD 1.x uses 64,
 * SD 2.x 96, SDXL 128; 1024 (8192-pixel images) leaves room without letting a corrupt config size
 * the default latents (channels x side^2 floats) in gigabytes.
 */
export const MAX_SAMPLE_SIZE = 1024;
/** The most latent channels a UNet input may declare: SD 1.x/2.x use 4, SD3 and Flux 16. */
export const MAX_LATENT_CHANNELS = 64;

type FloatType = "float32" | "float16";

interface InputSpec {
  name: string;
  type: ort.Tensor.Type;
  /** Dimensions: numbers where fixed, names (or undefined) where dynamic. */
  shape: ReadonlyArray<number | string | undefined>;
}

export interface SdExport {
  readonly dir: string;
  readonly device: ResolvedDevice;
  /** Devices passed over by `--device auto`, with the reason. */
  readonly skipped: string[];
  readonly tokenizer: ClipTokenizer;
  /** The raw `scheduler/scheduler_config.json` and its path. */
  readonly schedulerConfig: { json: unknown; file: string };
  readonly vaeScaling: number;
  /** Latent channels the UNet takes (4 for SD 1.x/2.x). */
  readonly latentChannels: number;
  /** Image size the UNet was trained at, when its config.json says (sample_size x 8). */
  readonly nativeSize: number | undefined;
  /** Whether the UNet works in float16 (then so do its inputs and outputs). */
  readonly halfPrecision: boolean;
  /** `[batch, 77, width]` text embeddings of `batch` rows of token ids. */
  encodeText(ids: Int32Array, batch: number): Promise<Float32Array>;
  /** The UNet's prediction for `batch` latents of `[channels, h, w]` at timestep `t`. */
  predict(sample: Float32Array, batch: number, h: number, w: number, t: number, embeddings: Float32Array): Promise<Float32Array>;
  /** The decoder's `[3, H, W]` image (values about [-1, 1]) of one scaled latent `[channels, h, w]`. */
  decode(latents: Float32Array, h: number, w: number): Promise<{ data: Float32Array; height: number; width: number }>;
  close(): Promise<void>;
}

const PARTS = ["text_encoder", "unet", "vae_decoder"] as const;
type Part = (typeof PARTS)[number];

/** What an export folder says besides its three models: read and checked before any is opened. */
export interface SdExportConfigs {
  root: string;
  tokenizer: ClipTokenizer;
  schedulerConfig: { json: unknown; file: string };
  vaeScaling: number;
  nativeSize: number | undefined;
}

/** Checks the folder's layout and reads its tokenizer, scheduler, VAE and UNet configs. */
export async function readSdExportConfigs(dir: string): Promise<SdExportConfigs> {
  const root = path.resolve(dir);
  checkLayout(root);
  const tokenizer = await loadClipTokenizer(path.join(root, "tokenizer"));
  const schedulerFile = path.join(root, "scheduler", "scheduler_config.json");
  const schedulerConfig = { json: await readJson(schedulerFile), file: schedulerFile };
  const vaeConfigFile = path.join(root, "vae_decoder", "config.json");
  const unetConfigFile = path.join(root, "unet", "config.json");
  const vaeScaling = vaeScalingOf(await readOptionalJson(vaeConfigFile), vaeConfigFile);
  const nativeSize = nativeSizeOf(await readOptionalJson(unetConfigFile), unetConfigFile);
  return { root, tokenizer, schedulerConfig, vaeScaling, nativeSize };
}

/** Checks the folder, opens the three models on `device` (all on the one `auto` picks first). */
export async function openSdExport(dir: string, device: DeviceName = "auto"): Promise<SdExport> {
  const { root, tokenizer, schedulerConfig, vaeScaling, nativeSize } = await readSdExportConfigs(dir);

  const sessions: Partial<Record<Part, ort.InferenceSession>> = {};
  let resolved: ResolvedDevice | undefined;
  let skipped: string[] = [];
  try {
    for (const part of PARTS) {
      const opened = await openSession(modelFile(root, part), resolved ?? device);
      sessions[part] = opened.session;
      if (!resolved) ({ device: resolved, skipped } = opened);
    }
  } catch (e) {
    await Promise.all(Object.values(sessions).map((s) => s.release()));
    throw e;
  }
  const text = sessions.text_encoder!;
  const unet = sessions.unet!;
  const vae = sessions.vae_decoder!;
  try {
    return bindExport({ root, device: resolved!, skipped, tokenizer, schedulerConfig, vaeScaling, nativeSize, text, unet, vae });
  } catch (e) {
    await Promise.all([text.release(), unet.release(), vae.release()]);
    throw e;
  }
}

function checkLayout(root: string): void {
  if (!existsSync(root)) throw layoutError(`${root} does not exist; give the folder of a Stable Diffusion ONNX export (optimum-cli export onnx, or diffusers' conversion script)`);
  const needed = [
    "model_index.json",
    ...PARTS.map((p) => path.join(p, "model.onnx")),
    path.join("tokenizer", "vocab.json"),
    path.join("tokenizer", "merges.txt"),
    path.join("scheduler", "scheduler_config.json"),
  ];
  const missing = needed.filter((f) => !existsSync(path.join(root, f)));
  if (missing.length > 0) {
    throw layoutError(
      `${root} is not a complete Stable Diffusion ONNX export: missing ${missing.join(", ")} ` +
        "(expected model_index.json, text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/)",
    );
  }
}

function modelFile(root: string, part: Part): string {
  return path.join(root, part, "model.onnx");
}

interface Bindings {
  root: string;
  device: ResolvedDevice;
  skipped: string[];
  tokenizer: ClipTokenizer;
  schedulerConfig: { json: unknown; file: string };
  vaeScaling: number;
  nativeSize: number | undefined;
  text: ort.InferenceSession;
  unet: ort.InferenceSession;
  vae: ort.InferenceSession;
}

/** The feeders of the three sessions, after checking that their inputs are what SD 1.x/2.x take. */
function bindExport(b: Bindings): SdExport {
  const textFile = modelFile(b.root, "text_encoder");
  const unetFile = modelFile(b.root, "unet");
  const vaeFile = modelFile(b.root, "vae_decoder");

  const textInputs = inputsOf(b.text, textFile, ["input_ids"]);
  const idsType = textInputs.input_ids.type;
  if (idsType !== "int32" && idsType !== "int64") throw inputError(textFile, `input_ids is ${idsType}; expected int32 or int64 token ids`);
  const textOutput = outputName(b.text, "last_hidden_state");

  const unetInputs = inputsOf(b.unet, unetFile, ["sample", "timestep", "encoder_hidden_states"]);
  const sampleType = floatType(unetInputs.sample, unetFile);
  const hiddenType = floatType(unetInputs.encoder_hidden_states, unetFile);
  const timestep = unetInputs.timestep;
  if (!["float32", "float16", "int64", "int32"].includes(timestep.type)) throw inputError(unetFile, `timestep is ${timestep.type}; expected float32, float16, int64 or int32`);
  if (timestep.shape.length > 1) throw inputError(unetFile, `timestep has rank ${timestep.shape.length}; expected a scalar or a vector`);
  if (unetInputs.sample.shape.length !== 4) throw inputError(unetFile, `sample has rank ${unetInputs.sample.shape.length}; expected [batch, channels, height, width]`);
  const channels = unetInputs.sample.shape[1];
  // A fixed channel count sizes every latent array; a dynamic one (a name, or -1) means SD's 4.
  if (typeof channels === "number" && channels > MAX_LATENT_CHANNELS) {
    throw inputError(unetFile, `sample has ${channels} channels; Stable Diffusion UNets take 4 (at most ${MAX_LATENT_CHANNELS} are accepted)`);
  }
  const latentChannels = typeof channels === "number" && channels > 0 ? channels : 4;
  const unetOutput = outputName(b.unet, "out_sample");

  const vaeInputs = inputsOf(b.vae, vaeFile, ["latent_sample"]);
  const latentType = floatType(vaeInputs.latent_sample, vaeFile);
  const vaeOutput = outputName(b.vae, "sample");

  const textWidth = b.text.outputMetadata.find((m) => m.name === textOutput);
  const hiddenWidth = unetInputs.encoder_hidden_states.shape.at(-1);
  if (textWidth?.isTensor && typeof textWidth.shape.at(-1) === "number" && typeof hiddenWidth === "number" && textWidth.shape.at(-1) !== hiddenWidth) {
    throw inputError(unetFile, `encoder_hidden_states is ${hiddenWidth} wide but the text encoder gives ${textWidth.shape.at(-1)}: the two models are from different exports`);
  }
  const vaeChannels = vaeInputs.latent_sample.shape[1];
  if (typeof vaeChannels === "number" && vaeChannels !== latentChannels) {
    throw inputError(vaeFile, `latent_sample has ${vaeChannels} channels but the UNet's sample has ${latentChannels}`);
  }

  const contextLength = b.tokenizer.contextLength;

  return {
    dir: b.root,
    device: b.device,
    skipped: b.skipped,
    tokenizer: b.tokenizer,
    schedulerConfig: b.schedulerConfig,
    vaeScaling: b.vaeScaling,
    latentChannels,
    nativeSize: b.nativeSize,
    halfPrecision: sampleType === "float16",

    async encodeText(ids, batch) {
      const data = idsType === "int64" ? BigInt64Array.from(ids, (v) => BigInt(v)) : ids;
      return run(b.text, textFile, { input_ids: new ort.Tensor(idsType, data, [batch, contextLength]) }, textOutput);
    },

    async predict(sample, batch, h, w, t, embeddings) {
      const feeds: Record<string, ort.Tensor> = {
        sample: floatTensor(sampleType, sample, [batch, latentChannels, h, w]),
        timestep: timestepTensor(timestep, t),
        encoder_hidden_states: floatTensor(hiddenType, embeddings, [batch, contextLength, embeddings.length / (batch * contextLength)]),
      };
      return run(b.unet, unetFile, feeds, unetOutput);
    },

    async decode(latents, h, w) {
      const result = await b.vae.run({ latent_sample: floatTensor(latentType, latents, [1, latentChannels, h, w]) });
      const image = result[vaeOutput] as ort.Tensor;
      const dims = image.dims;
      if (dims.length !== 4 || dims[1] !== 3) throw inputError(vaeFile, `output ${vaeOutput} has shape [${dims.join(", ")}]; expected [1, 3, height, width]`);
      const data = readFloats(image, vaeFile);
      disposeAll(result);
      return { data, height: dims[2], width: dims[3] };
    },

    async close() {
      await Promise.all([b.text.release(), b.unet.release(), b.vae.release()]);
    },
  };
}

/** The named inputs' specs; any other input (an SDXL UNet's `text_embeds`, say) is refused. */
function inputsOf<K extends string>(session: ort.InferenceSession, file: string, names: readonly K[]): Record<K, InputSpec> {
  const specs: Partial<Record<K, InputSpec>> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw inputError(file, `input ${meta.name} is not a tensor`);
    if (!(names as readonly string[]).includes(meta.name)) {
      throw inputError(
        file,
        `has an input ${meta.name} that Stable Diffusion 1.x/2.x models do not take (inputs: ${session.inputNames.join(", ")}; expected ${names.join(", ")}); SDXL and other pipelines are not supported`,
      );
    }
    specs[meta.name as K] = { name: meta.name, type: meta.type, shape: meta.shape };
  }
  const missing = names.filter((n) => !specs[n]);
  if (missing.length > 0) throw inputError(file, `lacks the input${missing.length > 1 ? "s" : ""} ${missing.join(", ")} (it has ${session.inputNames.join(", ")})`);
  return specs as Record<K, InputSpec>;
}

/** The output called `preferred`, or the first output when the export named it otherwise. */
function outputName(session: ort.InferenceSession, preferred: string): string {
  return session.outputNames.includes(preferred) ? preferred : session.outputNames[0];
}

function floatType(spec: InputSpec, file: string): FloatType {
  if (spec.type === "float32" || spec.type === "float16") return spec.type;
  throw inputError(file, `input ${spec.name} is ${spec.type}; expected float32 or float16`);
}

function floatTensor(type: FloatType, data: Float32Array, dims: number[]): ort.Tensor {
  return type === "float16" ? new ort.Tensor("float16", toHalfArray(data), dims) : new ort.Tensor("float32", data, dims);
}

/** `np.array([t], dtype)` (or a scalar, for exports that take one). */
function timestepTensor(spec: InputSpec, t: number): ort.Tensor {
  const dims = spec.shape.length === 0 ? [] : [1];
  switch (spec.type) {
    case "int64":
      return new ort.Tensor("int64", BigInt64Array.of(BigInt(Math.trunc(t))), dims);
    case "int32":
      return new ort.Tensor("int32", Int32Array.of(Math.trunc(t)), dims);
    case "float16":
      return new ort.Tensor("float16", toHalfArray([t]), dims);
    default:
      return new ort.Tensor("float32", Float32Array.of(t), dims);
  }
}

async function run(session: ort.InferenceSession, file: string, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const result = await session.run(feeds);
  const data = readFloats(result[output] as ort.Tensor, file);
  disposeAll(result);
  return data;
}

function readFloats(t: ort.Tensor, file: string): Float32Array {
  if (t.type === "float32") return (t.data as Float32Array).slice();
  if (t.type === "float16") return fromHalfArray(t.data as Uint16Array);
  throw inputError(file, `gives ${t.type} output; expected float32 or float16`);
}

function disposeAll(result: ort.InferenceSession.ReturnType): void {
  for (const v of Object.values(result)) v.dispose?.();
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw layoutError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseJsonText(text, file, "E_SD_EXPORT", "a diffusers/optimum config file");
}

/** vae_decoder/config.json's `scaling_factor`: a finite number > 0 when given (JSON's 1e400 reads
 * as Infinity), else SD's constant; a value of another type is ignored, as before. */
function vaeScalingOf(config: Record<string, unknown> | undefined, file: string): number {
  const v = config?.scaling_factor;
  if (typeof v !== "number") return DEFAULT_VAE_SCALING;
  if (Number.isFinite(v) && v > 0) return v;
  throw layoutError(`${file}: scaling_factor is ${v}; expected a finite number > 0 (SD 1.x/2.x use ${DEFAULT_VAE_SCALING})`);
}

/** unet/config.json's `sample_size` in pixels when it is one integer latent side (diffusers also
 * allows a [height, width] pair, which leaves the default size); out of range is refused. */
function nativeSizeOf(config: Record<string, unknown> | undefined, file: string): number | undefined {
  const v = config?.sample_size;
  if (typeof v !== "number") return undefined;
  if (Number.isInteger(v) && v >= 1 && v <= MAX_SAMPLE_SIZE) return v * LATENT_FACTOR;
  throw layoutError(`${file}: sample_size is ${v}; expected an integer latent side from 1 to ${MAX_SAMPLE_SIZE} (SD 1.x uses 64, SD 2.x 96)`);
}

async function readOptionalJson(file: string): Promise<Record<string, unknown> | undefined> {
  if (!existsSync(file)) return undefined;
  const v = await readJson(file);
  return isPlainObject(v) ? v : undefined;
}

function layoutError(message: string): DiffevalError {
  return new DiffevalError("E_SD_EXPORT", message);
}

function inputError(file: string, problem: string): DiffevalError {
  return new DiffevalError("E_SD_MODEL_INPUTS", `${file}: ${problem}`);
}
