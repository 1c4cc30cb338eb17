/**
 * The one error type of diffeval, and the closed list of its codes. `code` is stable and
 * machine-readable (tests and scripts match on it); `message` names the file or value at fault and
 * says what to do about it. The CLI prints `error[CODE]: message` and exits 2 (usage or input
 * error); E_GATE_FAILED alone exits 1 (DESIGN.md, "Types at the seams").
 */

/** What a code means and what the user does about it: one row of README.md's "Errors" table. */
export interface ErrorCodeInfo {
  /** When the code is raised. */
  readonly when: string;
  /** What to do about it. */
  readonly fix: string;
}

/**
 * Every code diffeval raises, one per kind of problem (no synonyms). README.md's "Errors" table
 * lists exactly these rows, word for word; test/errors.test.ts holds the two together and checks
 * that every code string in src/ is one of them.
 */
export const ERROR_CODES = {
  // Command line and library arguments
  E_USAGE: {
    when: "an option, argument or library parameter is missing, malformed or out of range (an unknown metric, encoder or device, a bad seed, a non-positive count)",
    fix: "correct the value the message names; `diffeval COMMAND --help` lists the options",
  },
  E_INTERNAL: {
    when: "an unexpected failure inside diffeval (a bug, not your input)",
    fix: "rerun with DIFFEVAL_DEBUG=1 and report the stack trace",
  },
  E_OUTPUT: {
    when: "an output file or cache entry cannot be written (a full disk, a file-size limit, no permission); the file is left as it was, with no partial copy",
    fix: "free space or choose another --out (for the cache, point DIFFEVAL_CACHE at another folder); check the folder's permissions",
  },

  // Image sources and images
  E_SOURCE: {
    when: "a source (folder, list file, zip or tar archive, tar shard pattern, stats file or reference name) does not exist, cannot be read, or is a malformed archive",
    fix: "check the path, or name a reference from `diffeval stats list`",
  },
  E_EMPTY_SOURCE: {
    when: "a source holds no images",
    fix: "point it at the folder, list, zip or tar that holds the images (.png, .jpg, .jpeg, .webp, .bmp)",
  },
  E_ZIP_UNSAFE: {
    when: "a zip or tar source has an entry with an absolute or `..` path",
    fix: "re-create the archive with relative entry names",
  },
  E_IMAGE_DECODE: {
    when: "an image file is corrupt, truncated or in an unsupported format",
    fix: "re-export it as PNG, remove it, or pass `--skip-bad` to skip such files with a warning",
  },
  E_IMAGE_TOO_LARGE: {
    when: "an image has more pixels than the decoder allows (a guard against decompression bombs)",
    fix: "downscale the image, or remove it from the source",
  },
  E_IMAGE_TOO_SMALL: {
    when: "an image is smaller than the metric's window (SSIM, MS-SSIM)",
    fix: "use larger images, or a metric without a minimum size",
  },
  E_IMAGE_SIZE_MISMATCH: {
    when: "two images a metric compares pixel by pixel differ in size",
    fix: "resize both sides to one size first",
  },

  // Features, statistics and the metrics computed from them
  E_TOO_FEW_SAMPLES: {
    when: "a metric or statistic gets fewer images, feature rows or pairs than it needs (a covariance needs 2)",
    fix: "add images, lower the metric's subset or split count, or drop that metric",
  },
  E_FEATURE_DIM: {
    when: "feature or statistics dimensions disagree: two sides from different encoders, or a stats file whose mu and sigma do not fit",
    fix: "compute both sides with the same encoder and weights; recompute a damaged stats file",
  },
  E_NONFINITE: {
    when: "features, embeddings or statistics hold NaN or Inf, or a row a metric must normalise has zero length",
    fix: "check the images and the weights, retry with `--device cpu`, or recompute the statistics",
  },
  E_DEGENERATE_FEATURES: {
    when: "the features do not vary (all rows alike), so a distribution fit does not exist",
    fix: "check that the images differ and that the encoder produced real features",
  },

  // Array and statistics files
  E_NPY_FORMAT: {
    when: "a .npy file is not a readable NumPy array (bad magic, header or shape, or truncated)",
    fix: "re-save it with `np.save`",
  },
  E_NPY_DTYPE: {
    when: "a .npy array has a dtype diffeval does not read",
    fix: "save a plain little-endian float32 or float64 array",
  },
  E_NPZ_FORMAT: {
    when: "a .npz file is not a readable zip archive",
    fix: "write statistics with `np.savez` or `diffeval stats`",
  },
  E_NPZ_PICKLE: {
    when: "a .npy or .npz array holds pickled Python objects, which diffeval never loads",
    fix: "save plain float arrays",
  },
  E_STATS_FORMAT: {
    when: "a statistics file lacks `mu`/`sigma`, has an unusable dtype, a sigma that is not symmetric, or a malformed `meta` entry",
    fix: "write it with `diffeval stats` or pytorch-fid's `--save-stats`",
  },
  E_FEATURES_FORMAT: {
    when: "a features file (`.npz`, or `.npy` with its `.json` sidecar) lacks `features`, `files` or `meta`, holds features that are not a float32 N x D array, or names a different number of files than it has rows",
    fix: "write it with `diffeval features SOURCE --out feats.npz`",
  },
  E_PROTOCOL: {
    when: "an unknown protocol or preprocessing name",
    fix: "use one of the names the message lists (`clean`, `legacy-pytorch`, `legacy-tensorflow`)",
  },
  E_PROTOCOL_MISMATCH: {
    when: "two sides were computed under different protocols, weights or encoders, so their numbers are not comparable",
    fix: "recompute one side to match the other, or pass `--force` where the command offers it",
  },

  // Sharded statistics
  E_SHARD_FORMAT: {
    when: "a shard part's file or meta is incomplete or from an unknown format version",
    fix: "recompute the part with `diffeval stats SOURCE --shard I/N --out part-I.npz`",
  },
  E_SHARD_MISMATCH: {
    when: "shard parts come from different jobs (protocol, weights, source or shard count differ)",
    fix: "merge only the parts of one job",
  },
  E_SHARD_MISSING: {
    when: "shard parts are missing from a merge",
    fix: "compute the missing parts, then merge all N",
  },
  E_SHARD_DUPLICATE: {
    when: "the same shard part is given twice to a merge",
    fix: "pass each shard once",
  },

  // Reference statistics
  E_MANIFEST: {
    when: "the reference statistics manifest cannot be read or is malformed",
    fix: "fix the JSON file the message names",
  },
  E_REFERENCE_UNKNOWN: {
    when: "no reference statistics have the given name",
    fix: "run `diffeval stats list` for the known names",
  },
  E_REFERENCE_MISSING: {
    when: "reference statistics are not in the cache and downloading is disabled",
    fix: "run `diffeval stats fetch NAME` where the network is reachable, or save the URL the message names at the path it names",
  },
  E_REFERENCE_SHA256: {
    when: "cached or downloaded reference statistics have the wrong sha256",
    fix: "delete the file and fetch it again",
  },
  E_REFERENCE_MISMATCH: {
    when: "a reference statistics file records a protocol or weights other than its manifest entry says",
    fix: "fix the manifest entry or the file",
  },
  E_COCO_FORMAT: {
    when: "a COCO captions file does not have the COCO layout",
    fix: "pass `captions_val2014.json` from the COCO 2014 annotations",
  },

  // Model weights, conversion and execution
  E_WEIGHTS_MISSING: {
    when: "a weights file or folder is missing or unreadable, or not cached while downloading is disabled",
    fix: "pass `--weights FILE`, or run `diffeval model fetch` where the network is reachable (or save the URL the message names at the path it names)",
  },
  E_WEIGHTS_UNKNOWN: {
    when: "an unknown weights id",
    fix: "use one of the ids the message lists",
  },
  E_WEIGHTS_SHA256: {
    when: "a weights file has the wrong sha256",
    fix: "delete the file and download it again",
  },
  E_WEIGHTS_FORMAT: {
    when: "a weights file is not a readable PyTorch, safetensors, ONNX or JSON file",
    fix: "re-download it, or re-save it with `torch.save(model.state_dict())`",
  },
  E_WEIGHTS_TRUNCATED: {
    when: "a weights file ends early (an interrupted download?)",
    fix: "delete it and download it again",
  },
  E_WEIGHTS_DTYPE: {
    when: "a weights tensor is stored in a dtype other than float32",
    fix: "save the weights as float32",
  },
  E_WEIGHTS_LAYOUT: {
    when: "a weights file or checkpoint folder does not hold the network the command expects (wrong model, missing tensors or config)",
    fix: "pass the weights the message names (pytorch-fid's Inception, a Hugging Face CLIP folder, torch-hub DINOv2)",
  },
  E_UNSAFE_PICKLE: {
    when: "a .pth file's pickle references Python code beyond a plain tensor state dict",
    fix: "re-save it with `torch.save(model.state_dict(), path)`",
  },
  E_DOWNLOAD: {
    when: "a download failed; nothing was saved",
    fix: "check the network, then rerun (or place the file by hand)",
  },
  E_MODEL_OUTPUTS: {
    when: "an ONNX model lacks an output or initializer diffeval needs",
    fix: "pass the `.pth` weights, or an ONNX file converted by `diffeval model convert`",
  },
  E_DEVICE: {
    when: "onnxruntime could not start on the requested device",
    fix: "use `--device cpu`, or install the GPU runtime or driver the message names",
  },
  E_LINALG_BACKEND: {
    when: "the onnxruntime worker for float64 linear algebra is unavailable or failed",
    fix: "check the onnxruntime-node install; rerun with DIFFEVAL_DEBUG=1 for details",
  },

  // Text: tokenizer, prompt pairs, groups
  E_TOKENIZER_MISSING: {
    when: "the CLIP tokenizer files cannot be read",
    fix: "pass a Hugging Face CLIP folder with vocab.json and merges.txt",
  },
  E_TOKENIZER_FORMAT: {
    when: "a CLIP tokenizer file is malformed",
    fix: "re-download the tokenizer files",
  },
  E_TOKENIZER_TOO_LONG: {
    when: "a prompt has more tokens than the text encoder's context",
    fix: "shorten the prompt, or let the tokenizer truncate it (its default)",
  },
  E_PAIRS_FORMAT: {
    when: "a pairs CSV (image,prompt for clipscore and subject; image,control for control) is unreadable or malformed",
    fix: "write a CSV with the header the command names (`image,prompt` or `image,control`) and one row per pair",
  },
  E_GROUPS: {
    when: "a groups file is unreadable, malformed, or misses an image",
    fix: "give one line `image name<TAB>group` per image, or a JSON object from image name to group",
  },

  // Generators
  E_GENERATOR_SPEC: {
    when: "a generator's configuration is invalid (URL, workflow, argv, timeouts, model options)",
    fix: "fix the generator section of the sweep spec",
  },
  E_GENERATOR_REQUEST: {
    when: "a generation request asks for something the generator cannot do (size, cfg, steps, sampler, seed, prompt, extra field)",
    fix: "change the value the message names in the sweep spec or on the command line",
  },
  E_GENERATOR: {
    when: "a generator failed at run time (service error, command exit, timeout, no image returned)",
    fix: "read the generator's output in the message; failed requests are retried by the next run",
  },
  E_SD_EXPORT: {
    when: "a Stable Diffusion ONNX export folder is incomplete or unreadable",
    fix: "export the model with optimum (`optimum-cli export onnx`) and pass that folder",
  },
  E_SD_MODEL_INPUTS: {
    when: "a Stable Diffusion ONNX model has inputs diffeval does not drive (e.g. SDXL's)",
    fix: "use a Stable Diffusion 1.x/2.x export",
  },
  E_SD_NAN: {
    when: "the Stable Diffusion model produced NaN or Inf (an fp16 export overflowing, or broken weights)",
    fix: "use an fp32 export, or check the weights",
  },
  E_SCHEDULER: {
    when: "a scheduler config file is malformed or its settings are out of range",
    fix: "fix the scheduler_config.json the message names, or pick another `--scheduler`",
  },

  // Sweeps
  E_SWEEP_SPEC: {
    when: "a sweep spec or its prompts file is unreadable or invalid",
    fix: "fix the field the message names",
  },
  E_SWEEP_FAILED: {
    when: "some image requests of a sweep failed; the cells were evaluated without them",
    fix: "run the same command again to retry them",
  },
  E_SWEEP_ABORTED: {
    when: "a sweep was stopped before it finished; finished images are kept",
    fix: "run the same command again to resume",
  },

  // CI gate
  E_GATE_RULE: {
    when: "a gate rule or rules file is malformed, names an unknown metric, or matches no cell",
    fix: "fix the rule (`metric[param=value]:+bound`); docs/ci-gate.md has the syntax",
  },
  E_GATE_INPUT: {
    when: "a gate results or baseline file is unreadable or not in a results format",
    fix: "pass the output of `fid --json`, `metrics --json` or a sweep's results.json; start a baseline with `--update-baseline`",
  },
  E_GATE_FAILED: {
    when: "a metric regressed beyond its rule, or a cell is missing (exit 1)",
    fix: "read the gate's table; fix the regression or adopt the new numbers with `--update-baseline`",
  },
} as const satisfies Record<`E_${string}`, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `value` is one of the codes (for codes that cross a boundary as plain strings, e.g. from a worker). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export class DiffevalError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DiffevalError";
    this.code = code;
  }
}

export function isDiffevalError(e: unknown, code?: ErrorCode): e is DiffevalError {
  return e instanceof DiffevalError && (code === undefined || e.code === code);
}
