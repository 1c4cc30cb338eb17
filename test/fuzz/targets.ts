/**
 * Every parser of untrusted bytes in diffeval, as one registry of fuzz targets (issue 17). A
 * target names the parser, gives valid seed files (small fixtures, or files built here when the
 * fixtures are too large to mutate thousands of times), and runs the parser the way a command does
 * on one case. The worker (worker.ts) classifies each run: a result, a DiffevalError, or anything
 * else (a bug). New parsers join here, and `npm test` and `npm run fuzz` pick them up.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { runGate } from "../../src/cli/gate.js";
import { decodeBmp } from "../../src/io/bmp.js";
import { readPairsCsv } from "../../src/io/csv.js";
import { decodeImage } from "../../src/io/decode.js";
import { readNpy, writeNpy, type NpyArray } from "../../src/io/npy.js";
import { writeFeaturesNpz } from "../../src/io/features-file.js";
import { readNpz, readStatsNpz, writeNpz, writeStatsNpz } from "../../src/io/npz.js";
import { readStatsFile } from "../../src/io/npz-file.js";
import { readShardPart, writeShardPart } from "../../src/io/shard-file.js";
import { openImageSource } from "../../src/io/sources.js";
import { clipConfigFromPreprocessorJson } from "../../src/preprocess/clip.js";
import { parseClipConfig, visionLayout } from "../../src/models/clip-onnx.js";
import { dinov2Layout, parseDinov2Config } from "../../src/models/dinov2-onnx.js";
import { onnxInitializerOf, readOnnxMetadata } from "../../src/models/onnx-metadata.js";
import { unpickle } from "../../src/models/pickle.js";
import { readStateDict } from "../../src/models/pth.js";
import { readSafetensors } from "../../src/models/safetensors.js";
import { readControlPairsCsv } from "../../src/pipeline/control.js";
import { resolveStatsSource } from "../../src/pipeline/resolve-source.js";
import { parseManifest } from "../../src/reference/manifest.js";
import { estimateJpegQuality } from "../../src/robustness/jpeg-quality.js";
import { readJpegHeader } from "../../src/robustness/jpeg-header.js";
import { readSdExportConfigs } from "../../src/generators/onnx-sd/export-folder.js";
import { createScheduler, parseSchedulerConfig } from "../../src/generators/onnx-sd/schedulers/index.js";
import { parseJsonText } from "../../src/io/read-json.js";
import { loadClipTokenizer } from "../../src/text/clip-tokenizer.js";
import { parseResults } from "../../src/gate/results.js";
import { parseRule, parseRulesFile } from "../../src/gate/rules.js";
import { readManifest } from "../../src/sweep/manifest.js";
import { loadPrompts } from "../../src/sweep/prompts.js";
import { loadSweepSpec } from "../../src/sweep/spec.js";
import { createAccumulator, accumulate, finalizeGaussian } from "../../src/stats/gaussian.js";
import type { ShardMeta } from "../../src/stats/shards.js";
import { fixture, projectRoot } from "../helpers/fixtures.js";
import { bmp24 } from "../helpers/image-bytes.js";
import { buildTar } from "../helpers/tar-writer.js";
import { buildZip } from "../helpers/zip-writer.js";
import { floatStorage, legacyPth, longStorage, stateDictPickle, zipPth, PickleWriter } from "../models/pth-builder.js";
import onnxProto from "onnx-proto";
import type { SeedFormat } from "./mutate.js";

export interface FuzzTarget {
  /** Short name, used on the command line (`npm run fuzz -- --targets npy,zip`) and in reports. */
  readonly name: string;
  /** What the target feeds the bytes to, for the report. */
  readonly parser: string;
  /** The seeds' structure, for structure-aware edits (mutate.ts). */
  readonly format: SeedFormat;
  /**
   * Why the parser never refuses, for the few that by design answer every input (so the suite
   * does not expect refusals from them).
   */
  readonly tolerant?: string;
  /** Valid files to mutate (loaded once per process). */
  seeds(): Uint8Array[];
  /** Runs the parser on one case; `scratch` is an empty-or-reused folder of this worker's own. */
  run(bytes: Uint8Array, scratch: string): Promise<unknown>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (s: string) => encoder.encode(s);
const file = (...parts: string[]) => new Uint8Array(readFileSync(fixture(...parts)));

/** Writes the case to `scratch/name` and returns its path (file-reading parsers read from disk). */
function caseFile(scratch: string, name: string, bytes: Uint8Array): string {
  const p = path.join(scratch, name);
  writeFileSync(p, bytes);
  return p;
}

/** A small Gaussian (d = 6) fitted to fixed rows, for stats and shard seeds. */
function smallGaussianAccumulator() {
  const d = 6;
  const rows = new Float32Array(10 * d).map((_, i) => Math.sin(i * 1.7) + (i % d) * 0.1);
  const acc = createAccumulator(d);
  accumulate(acc, { n: 10, d, data: rows });
  return acc;
}

function configJson(b: Uint8Array, name: string): unknown {
  return parseJsonText(decoder.decode(b), name, "E_WEIGHTS_FORMAT", "an encoder config");
}

function npySeeds(): Uint8Array[] {
  const f4: NpyArray = { dtype: "<f4", shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 3) };
  const f8: NpyArray = { dtype: "<f8", shape: [5], data: Float64Array.from([1, 2, 3, 4, 5]) };
  const u1: NpyArray = { dtype: "|u1", shape: [2, 2, 3], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) };
  return [writeNpy(f4), writeNpy(f8), writeNpy(u1)];
}

/** Image arrays as ADM and numpy write them: NHWC and NCHW uint8, stored and deflated, a float [-1, 1]. */
function arraySeeds(): Uint8Array[] {
  const u8 = (shape: number[]) => Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i * 29) & 0xff);
  const f4 = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
  return [
    writeNpz({ arr_0: { dtype: "|u1", shape: [3, 4, 5, 3], data: u8([3, 4, 5, 3]) } }),
    writeNpz({ arr_0: { dtype: "|u1", shape: [2, 3, 4, 4], data: u8([2, 3, 4, 4]) } }, { compress: true }),
    writeNpy({ dtype: "|u1", shape: [2, 6, 6, 1], data: u8([2, 6, 6, 1]) }),
    writeNpz({ arr_0: { dtype: "<f4", shape: [2, 4, 4, 3], data: f4([2, 4, 4, 3]) } }),
  ];
}

function statsSeeds(): Uint8Array[] {
  const g = finalizeGaussian(smallGaussianAccumulator());
  return [
    writeStatsNpz(g, { protocol: "clean", n: 10 }),
    file("reference", "stats_d64_real_savez.npz"),
    file("reference", "stats_d64_real_savez_compressed.npz"),
  ];
}

function smallPng(): Uint8Array {
  return file("images", "odd", "tiny.png");
}

/** A BMP with varied pixel values (the reader's own layout logic is what is fuzzed). */
function bmpSeed(width: number, height: number, topDown: boolean): Uint8Array {
  return bmp24(width, height, Array.from({ length: width * height * 3 }, (_, i) => (i * 37) & 0xff), topDown);
}

function pthSeeds(legacy: boolean): Uint8Array[] {
  const storages = [floatStorage("0", [1, 2, 3, 4, 5, 6]), longStorage("1", [7, 8])];
  const tensors = [
    { key: "conv.weight", storageType: "FloatStorage", storageKey: "0", shape: [2, 3] },
    { key: "conv.bias", storageType: "FloatStorage", storageKey: "0", shape: [2], stride: [3], offset: 1 },
    { key: "steps", storageType: "LongStorage", storageKey: "1", shape: [2] },
  ];
  const pkl = stateDictPickle(tensors, storages, legacy);
  return legacy ? [legacyPth(pkl, storages)] : [zipPth(pkl, storages), file("encoders", "dinov2-tiny", "dinov2-tiny.pth")];
}

function safetensorsSeed(): Uint8Array {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const b = new Uint16Array([0x3c00, 0x4000]); // float16 1, 2
  const header = {
    __metadata__: { format: "pt" },
    "a.weight": { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    "b.bias": { dtype: "F16", shape: [2], data_offsets: [24, 28] },
  };
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += " ";
  const out = new Uint8Array(8 + json.length + 28);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(text(json), 8);
  out.set(new Uint8Array(a.buffer), 8 + json.length);
  out.set(new Uint8Array(b.buffer), 8 + json.length + 24);
  return out;
}

function pickleSeed(): Uint8Array {
  const w = new PickleWriter().proto().op(0x7d).mark();
  w.str("a").int(1).str("b").shortStr("x").str("c").int(70000);
  w.str("d").global("collections", "OrderedDict").op(0x29).op(0x52);
  return w.op(0x75).stop().bytes();
}

function onnxSeed(): Uint8Array {
  const { onnx } = onnxProto;
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "diffeval-fuzz",
    metadataProps: [{ key: "diffeval.weights_sha256", value: "ab".repeat(32) }],
    graph: {
      name: "g",
      node: [{ opType: "Relu", input: ["x"], output: ["y"] }],
      // Most of the seed is the initializer's data, so many mutations change values, not structure.
      initializer: [{ name: "w", dims: [4, 64], dataType: 1, rawData: new Uint8Array(Float32Array.from({ length: 256 }, (_, i) => i / 7).buffer) }],
    },
  }).finish();
}

/**
 * A valid CLIP tokenizer small enough to load thousands of times (the fixture's 49,408-token
 * vocabulary takes ~0.4 s): the 256 byte tokens of CLIP's byte-to-unicode alphabet (GPT-2's
 * bytes_to_unicode) in both forms, a few merges and the special tokens.
 */
const TINY_TOKENIZER = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  const merges = [["a", "t</w>"], ["c", "at</w>"], ["p", "h"], ["ph", "o"], ["o", "f</w>"]];
  const tokens = [...chars, ...chars.map((c) => `${c}</w>`), ...merges.map(([l, r]) => l + r), "<|startoftext|>", "<|endoftext|>"];
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  return {
    vocab: text(JSON.stringify(vocab)),
    merges: text(`#version: 0.2\n${merges.map((m) => m.join(" ")).join("\n")}\n`),
    config: text(JSON.stringify({ bos_token: "<|startoftext|>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>", model_max_length: 77 })),
  };
})();

/** The configs of an ONNX SD export as one JSON seed: each part is written to its own file. */
const SD_EXPORT_CONFIGS = {
  model_index: { _class_name: "OnnxStableDiffusionPipeline", _diffusers_version: "0.30.0", unet: ["diffusers", "OnnxRuntimeModel"] },
  unet: { _class_name: "UNet2DConditionModel", sample_size: 64, in_channels: 4, out_channels: 4, cross_attention_dim: 768 },
  vae_decoder: { _class_name: "AutoencoderKL", scaling_factor: 0.18215, latent_channels: 4 },
};

/**
 * An export folder in `scratch` whose configs come from the case: its parts when it parses as
 * the seed's object, else the raw bytes in every config. The models are empty files: only the
 * layout check looks at them before the configs are read.
 */
function sdExportFolder(scratch: string, b: Uint8Array): string {
  const root = path.join(scratch, "sd-export");
  for (const part of ["text_encoder", "unet", "vae_decoder", "scheduler", "tokenizer"]) mkdirSync(path.join(root, part), { recursive: true });
  for (const part of ["text_encoder", "unet", "vae_decoder"]) writeFileSync(path.join(root, part, "model.onnx"), "");
  writeFileSync(path.join(root, "tokenizer", "vocab.json"), TINY_TOKENIZER.vocab);
  writeFileSync(path.join(root, "tokenizer", "merges.txt"), TINY_TOKENIZER.merges);
  writeFileSync(path.join(root, "tokenizer", "tokenizer_config.json"), TINY_TOKENIZER.config);
  writeFileSync(path.join(root, "scheduler", "scheduler_config.json"), readFileSync(fixture("sd", "sd-tiny", "scheduler", "scheduler_config.json")));
  const files = { model_index: "model_index.json", unet: "unet/config.json", vae_decoder: "vae_decoder/config.json" };
  const contents = configParts(b, Object.keys(files)) ?? { model_index: b, unet: b, vae_decoder: b };
  for (const [key, file] of Object.entries(files)) {
    rmSync(path.join(root, file), { force: true });
    if (contents[key] !== undefined) writeFileSync(path.join(root, file), contents[key]);
  }
  return root;
}

/** Each part's JSON text (undefined when absent), or undefined when `b` is not such an object. */
function configParts(b: Uint8Array, keys: string[]): Record<string, string | Uint8Array | undefined> | undefined {
  try {
    const v: unknown = JSON.parse(decoder.decode(b));
    if (!v || typeof v !== "object" || Array.isArray(v)) return undefined;
    const parts = v as Record<string, unknown>;
    return Object.fromEntries(keys.map((k) => [k, parts[k] === undefined ? undefined : JSON.stringify(parts[k])]));
  } catch {
    return undefined; // not JSON, or nested too deep to re-serialise here: the raw bytes go in
  }
}

const SHARD_META: ShardMeta = {
  kind: "diffeval-stats-shard",
  format: 1,
  protocol: "clean",
  weights_sha256: "ab".repeat(32),
  source: "./real",
  source_fingerprint: "cd".repeat(32),
  source_count: 20,
  shard: { index: 0, count: 2, start: 0, end: 10 },
  n: 10,
  skipped: 0,
  d: 6,
  tool_version: "0.1.0",
  date: "2026-12-07T00:00:00Z",
};

const SWEEP_SPEC = {
  name: "fuzz",
  generator: { type: "analytic" },
  prompts: ["red circle", "blue square"],
  negative_prompts: ["", "green"],
  guidance_scales: [1, 3, 7.5],
  seeds_per_prompt: 2,
  size: [32, 32],
  prompt_template: "a photo of {prompt}, {sampler}",
  axes: { sampler: ["euler", "ddim"] },
  metrics: ["fid", "kid"],
  reference: { source: "analytic:real", count: 8 },
};

const GATE_RESULTS = {
  schema: "diffeval-sweep-results/1",
  protocol: "clean",
  weights_sha256: "ab".repeat(32),
  version: "0.1.0",
  real: "./real",
  n_real: 100,
  cells: [
    { params: { cfg_scale: 1, negative_prompt: "" }, metrics: { fid: 30.5, kid: 0.01, precision: 0.7 }, fake: "runs/a", n_fake: 50, seconds: 3 },
    { params: { cfg_scale: 7.5, negative_prompt: "x" }, metrics: { fid: 20.25, kid: 0.005, precision: 0.8 }, fake: "runs/b", n_fake: 50, seconds: 3 },
  ],
};

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  {
    name: "npy",
    format: "bytes",
    parser: "io/npy.ts readNpy (buffer)",
    seeds: npySeeds,
    run: async (b) => readNpy(b, "case.npy"),
  },
  {
    name: "npz-buffer",
    format: "zip",
    parser: "io/npz.ts readNpz + readStatsNpz (buffer)",
    seeds: statsSeeds,
    run: async (b) => {
      readNpz(b, "case.npz");
      return readStatsNpz(b, "case.npz");
    },
  },
  {
    name: "npz-file",
    format: "zip",
    parser: "io/npz-file.ts readStatsFile (streamed from disk)",
    seeds: statsSeeds,
    run: (b, scratch) => readStatsFile(caseFile(scratch, "case.npz", b)),
  },
  {
    name: "shard-part",
    format: "zip",
    parser: "io/shard-file.ts readShardPart",
    seeds: () => [writeShardPart(smallGaussianAccumulator(), SHARD_META)],
    run: async (b) => readShardPart(b, "case.npz"),
  },
  {
    name: "zip-source",
    format: "zip",
    parser: "io/sources.ts openImageSource on a .zip, every entry read",
    seeds: () => [
      buildZip([{ name: "a.png", data: smallPng() }, { name: "sub/b.bmp", data: bmpSeed(3, 2, false) }]),
      buildZip([{ name: "a.png", data: smallPng(), deflate: true }, { name: "c.png", data: smallPng(), deflate: true }]),
    ],
    run: async (b, scratch) => {
      const source = await openImageSource(caseFile(scratch, "case.zip", b));
      try {
        for (const item of source.items) await item.read();
        return source.items.length;
      } finally {
        await source.close();
      }
    },
  },
  {
    name: "tar-source",
    format: "bytes",
    parser: "io/tar.ts via openImageSource on a .tar, every entry read",
    seeds: () => [
      buildTar([
        { name: "a.png", data: smallPng() },
        { name: `${"x".repeat(120)}.png`, data: smallPng(), longName: "gnu", magic: "gnu" },
        { name: `${"y".repeat(120)}.png`, data: smallPng(), longName: "pax" },
        { name: "d/", type: "5" },
        { name: "b.png", data: smallPng(), base256: true },
      ]),
    ],
    run: async (b, scratch) => {
      const source = await openImageSource(caseFile(scratch, "case.tar", b));
      try {
        for (const item of source.items) await item.read();
        return source.items.length;
      } finally {
        await source.close();
      }
    },
  },
  {
    name: "array-source",
    format: "zip",
    parser: "io/array-source.ts via openImageSource on an image .npz/.npy, rows read in order and the last again",
    seeds: arraySeeds,
    run: async (b, scratch) => {
      // A float array needs its range, as on the command line (--array-range -1,1).
      const isFloat = decoder.decode(b.subarray(0, 4096)).includes("'<f");
      const isNpz = b[0] === 0x50; // "PK"
      const source = await openImageSource(caseFile(scratch, isNpz ? "case.npz" : "case.npy", b), isFloat ? { arrayRange: [-1, 1] } : {});
      try {
        for (const item of source.items.slice(0, 16)) await item.read();
        await source.items.at(-1)?.read(); // back to the start of a deflated entry, then to its end
        return source.items.length;
      } finally {
        await source.close();
      }
    },
  },
  {
    name: "features-file",
    format: "zip",
    parser: "io/features-file.ts readFeaturesFile + pipeline/resolve-source.ts resolveStatsSource (features --out x.npz)",
    seeds: () => [
      writeFeaturesNpz({ n: 3, d: 4, data: Float32Array.from({ length: 12 }, (_, i) => Math.cos(i)) }, ["a.png", "b.png", "c.png"], {
        kind: "diffeval-features",
        encoder: "dinov2",
        protocol: "dinov2",
        weights_sha256: "a".repeat(64),
        n: 3,
        d: 4,
      }),
    ],
    run: (b, scratch) => resolveStatsSource(caseFile(scratch, "case.npz", b)),
  },
  {
    name: "pth-zip",
    format: "zip",
    parser: "models/pth.ts readStateDict (torch >= 1.6 zip)",
    seeds: () => pthSeeds(false),
    run: async (b) => readStateDict(b, "case.pth").size,
  },
  {
    name: "pth-legacy",
    format: "bytes",
    parser: "models/pth.ts readStateDict (legacy pickle)",
    seeds: () => pthSeeds(true),
    run: async (b) => readStateDict(b, "case.pth").size,
  },
  {
    name: "pickle",
    format: "bytes",
    parser: "models/pickle.ts unpickle",
    seeds: () => [pickleSeed()],
    run: async (b) => unpickle(b, { name: "case.pkl" }).end,
  },
  {
    name: "safetensors",
    format: "bytes",
    parser: "models/safetensors.ts readSafetensors",
    seeds: () => [safetensorsSeed()],
    run: async (b) => readSafetensors(b, "case.safetensors").size,
  },
  {
    name: "onnx-metadata",
    format: "bytes",
    parser: "models/onnx-metadata.ts readOnnxMetadata",
    seeds: () => [onnxSeed()],
    run: async (b) => readOnnxMetadata(b, "case.onnx"),
  },
  {
    name: "onnx-initializer",
    format: "bytes",
    parser: "models/onnx-metadata.ts onnxInitializerOf (the Inception Score's fc weights)",
    seeds: () => [onnxSeed()],
    run: async (b) => onnxInitializerOf(b, "case.onnx", "w"),
  },
  {
    name: "clip-config",
    format: "json",
    parser: "models/clip-onnx.ts parseClipConfig + visionLayout (config.json)",
    seeds: () => [file("encoders", "clip-tiny", "config.json")],
    run: async (b) => visionLayout(parseClipConfig(configJson(b, "config.json"), "config.json")),
  },
  {
    name: "clip-preprocessor-config",
    format: "json",
    parser: "preprocess/clip.ts clipConfigFromPreprocessorJson (preprocessor_config.json)",
    seeds: () => [file("encoders", "clip-tiny", "preprocessor_config.json")],
    run: async (b) => clipConfigFromPreprocessorJson(configJson(b, "preprocessor_config.json"), "preprocessor_config.json"),
  },
  {
    name: "dinov2-config",
    format: "json",
    parser: "models/dinov2-onnx.ts parseDinov2Config + dinov2Layout (config.json)",
    seeds: () => [file("encoders", "dinov2-tiny", "config.json")],
    run: async (b) => dinov2Layout(parseDinov2Config(configJson(b, "config.json"), "config.json")),
  },
  {
    name: "bmp",
    format: "bytes",
    parser: "io/bmp.ts decodeBmp",
    seeds: () => [bmpSeed(3, 2, false), bmpSeed(4, 3, true)],
    run: async (b) => decodeBmp(b, "case.bmp").width,
  },
  {
    name: "image-decode",
    format: "bytes",
    parser: "io/decode.ts decodeImage (sharp/libvips, BMP)",
    seeds: () => [smallPng(), file("images", "odd", "gray.png"), file("images", "real", "real_0004.jpg"), file("images", "odd", "cmyk.jpg"), bmpSeed(5, 4, false)],
    run: async (b) => (await decodeImage(b, "case.img")).width,
  },
  {
    name: "jpeg-header",
    format: "bytes",
    tolerant: "a JPEG whose header cannot be read has no quality estimate (undefined), not an error",
    parser: "robustness/jpeg-header.ts readJpegHeader + jpeg-quality.ts estimateJpegQuality",
    seeds: () => [file("images", "real", "real_0004.jpg"), file("images", "odd", "cmyk.jpg"), file("images", "odd", "truncated.jpg")],
    run: async (b) => {
      const header = readJpegHeader(b);
      return header && estimateJpegQuality(header);
    },
  },
  {
    name: "scheduler-config",
    format: "json",
    parser: "generators/onnx-sd/schedulers parseSchedulerConfig + createScheduler",
    seeds: () => [file("sd", "sd-tiny", "scheduler", "scheduler_config.json")],
    run: async (b) => {
      const json = parseJsonText(decoder.decode(b), "scheduler_config.json", "E_SD_EXPORT", "a scheduler config");
      const config = parseSchedulerConfig(json, "scheduler_config.json");
      return createScheduler(config.kind, config, 4);
    },
  },
  {
    name: "sd-export-configs",
    format: "json",
    parser: "generators/onnx-sd/export-folder.ts readSdExportConfigs (model_index, unet and VAE config.json)",
    seeds: () => [text(JSON.stringify(SD_EXPORT_CONFIGS))],
    run: async (b, scratch) => readSdExportConfigs(sdExportFolder(scratch, b)),
  },
  {
    name: "clip-tokenizer",
    format: "json",
    parser: "text/clip-tokenizer.ts loadClipTokenizer (vocab.json, merges.txt)",
    seeds: () => [TINY_TOKENIZER.vocab, TINY_TOKENIZER.merges],
    run: async (b, scratch) => {
      // The case replaces whichever file it was mutated from; the others stay valid.
      const dir = path.join(scratch, "tokenizer");
      mkdirSync(dir, { recursive: true });
      const isVocab = b[0] === 0x7b; // "{"
      writeFileSync(path.join(dir, "vocab.json"), isVocab ? b : TINY_TOKENIZER.vocab);
      writeFileSync(path.join(dir, "merges.txt"), isVocab ? TINY_TOKENIZER.merges : b);
      writeFileSync(path.join(dir, "tokenizer_config.json"), TINY_TOKENIZER.config);
      return (await loadClipTokenizer(dir)).encode("a photo of a cat");
    },
  },
  {
    name: "sweep-spec",
    format: "json",
    parser: "sweep/spec.ts loadSweepSpec",
    seeds: () => [text(JSON.stringify(SWEEP_SPEC, null, 1))],
    run: (b, scratch) => loadSweepSpec(caseFile(scratch, "sweep.json", b)),
  },
  {
    name: "prompts",
    format: "json",
    parser: "sweep/prompts.ts loadPrompts (.txt, .jsonl, .json list, COCO captions)",
    seeds: () => [
      text("# prompts\na red circle\n\na blue square\n"),
      text('{"prompt": "a cat", "image_id": 42}\n{"caption": "a dog"}\n'),
      text(JSON.stringify(["a cat", "a dog"])),
      text(JSON.stringify({ images: [{ id: 1, file_name: "COCO_val2014_000000000001.jpg" }, { id: 2, file_name: "COCO_val2014_000000000002.jpg" }], annotations: [{ image_id: 1, caption: "a cat" }, { image_id: 2, caption: "a dog" }] })),
    ],
    run: async (b, scratch) => {
      const first = b.find((x) => x > 0x20);
      const ext = first === 0x7b && decoder.decode(b.subarray(0, 200)).includes('"prompt"') ? "jsonl" : first === 0x7b || first === 0x5b ? "json" : "txt";
      return loadPrompts({ kind: "file", file: caseFile(scratch, `prompts.${ext}`, b), seed: 0, n: 2 });
    },
  },
  {
    name: "gate-results",
    format: "json",
    parser: "gate/results.ts parseResults + cli/gate.ts runGate against a baseline (update too)",
    seeds: () => [text(JSON.stringify(GATE_RESULTS, null, 1)), text(JSON.stringify({ fid: 12.5, protocol: "clean", weights_sha256: "ab".repeat(32), n_real: 10, n_fake: 10, version: "0.1.0" }))],
    run: async (b, scratch) => {
      parseResults(decoder.decode(b), "case.json");
      const current = caseFile(scratch, "current.json", b);
      const baseline = caseFile(scratch, "baseline.json", text(JSON.stringify(GATE_RESULTS)));
      const sink = () => {};
      await runGate({ current, baseline, rules: ["fid:+1", "precision:-0.1"], out: sink, err: sink });
      return runGate({ current, baseline: path.join(scratch, "fresh-baseline.json"), updateBaseline: true, out: sink, err: sink });
    },
  },
  {
    name: "gate-rules",
    format: "json",
    parser: "gate/rules.ts parseRulesFile",
    seeds: () => [text(JSON.stringify({ rules: ["fid:+0.5", "kid:+10%", "precision:-0.05", "fid[cfg_scale=7.5]:+1"] }))],
    run: async (b) => parseRulesFile(decoder.decode(b), "rules.json"),
  },
  {
    name: "gate-rule",
    format: "bytes",
    parser: "gate/rules.ts parseRule (a --rule argument)",
    seeds: () => ["fid:+0.5", "kid:+10%", "precision:-0.05", "fid[cfg_scale=7.5,sampler=euler]:+1"].map(text),
    run: async (b) => parseRule(decoder.decode(b)),
  },
  {
    name: "reference-manifest",
    format: "json",
    parser: "reference/manifest.ts parseManifest",
    seeds: () => [new Uint8Array(readFileSync(path.join(projectRoot, "reference-stats", "manifest.json")))],
    run: async (b) => parseManifest(parseJsonText(decoder.decode(b), "manifest.json", "E_MANIFEST", "the manifest"), "manifest.json"),
  },
  {
    name: "pairs-csv",
    format: "bytes",
    parser: "io/csv.ts readPairsCsv",
    seeds: () => [text('image,prompt\na.png,"a cat, sitting"\nsub/b.jpg,"a ""quoted"" dog"\n'), text("prompt,image\r\nx,y.png\r\n")],
    run: (b, scratch) => readPairsCsv(caseFile(scratch, "pairs.csv", b)),
  },
  {
    name: "control-pairs-csv",
    format: "bytes",
    parser: "pipeline/control.ts readControlPairsCsv (diffeval control --pairs)",
    seeds: () => [text('image,control\na.png,"b.png"\nb.png,a.png\n'), text("control,image\r\nb.png,a.png\r\n")],
    run: (b, scratch) => {
      for (const name of ["a.png", "b.png"]) writeFileSync(path.join(scratch, name), smallPng());
      return readControlPairsCsv(caseFile(scratch, "pairs.csv", b));
    },
  },
  {
    name: "sweep-manifest",
    format: "bytes",
    tolerant: "a damaged or torn line is skipped (that image is regenerated), so a killed sweep resumes",
    parser: "sweep/manifest.ts readManifest (manifest.jsonl of a sweep's output folder)",
    seeds: () => [
      text(
        [
          JSON.stringify({ status: "done", key: "k1", cell: "cfg_scale=1", prompt_index: 0, seed: 1, file: "images/a.png", sha256: "ab".repeat(32), params: { cfg_scale: 1 }, prompt: "a cat", used: { seed: 1 }, seconds: 0.5, time: "2026-12-07T00:00:00Z" }),
          JSON.stringify({ status: "failed", key: "k2", cell: "cfg_scale=1", prompt_index: 1, seed: 2, params: { cfg_scale: 1 }, prompt: "a dog", error: "boom", attempts: 3, time: "2026-12-07T00:00:00Z" }),
        ].join("\n") + "\n",
      ),
    ],
    run: async (b, scratch) => {
      caseFile(scratch, "manifest.jsonl", b);
      return (await readManifest(scratch)).size;
    },
  },
];

export function fuzzTarget(name: string): FuzzTarget {
  const t = FUZZ_TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target ${name}; targets: ${FUZZ_TARGETS.map((x) => x.name).join(", ")}`);
  return t;
}
