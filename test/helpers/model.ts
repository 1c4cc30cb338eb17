/**
 * The fixture FID Inception weights as files tests can open: the gunzipped .pth files and the
 * converted .onnx, cached in <projectRoot>/.cache/test-models/ (gitignored) across runs.
 * Each file is written to a temporary name and renamed, so a crashed run never leaves half a file.
 * The graph with sFID's `spatial` output is a separate file (random-fid-inception-spatial.onnx).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import * as ort from "onnxruntime-node";
import { buildInceptionOnnx, INCEPTION_CONVERTER_VERSION, INCEPTION_SPATIAL_VERSION } from "../../src/models/inception-onnx.js";
import { readStateDict } from "../../src/models/pth.js";
import { fixture, projectRoot } from "./fixtures.js";

export const testModelsDir = path.join(projectRoot, ".cache", "test-models");

/** sha256 of the uncompressed fixture files (../shared/fixtures/README.md, weights/). */
const FIXTURE_SHA256 = {
  zip: "0683ca3999b739575d559f55b71bce1fc5083751702c85662f4a4137882e91ca",
  legacy: "dc3ddfc910cf98fed6993f211ce2b5c8e01484de4be30e4f158fc9606d9f5f1e",
};

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function writeAtomic(file: string, bytes: Uint8Array | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
}

const pthPromises = new Map<boolean, Promise<string>>();

/** Path of the gunzipped fixture .pth (zip format, or the legacy pickle format). */
export function fixtureStateDictPath(legacy: boolean): Promise<string> {
  let p = pthPromises.get(legacy);
  if (!p) {
    p = Promise.resolve().then(() => gunzippedFixture(legacy));
    pthPromises.set(legacy, p);
  }
  return p;
}

function gunzippedFixture(legacy: boolean): string {
  const base = legacy ? "random-fid-inception-legacy-format.pth" : "random-fid-inception.pth";
  const want = FIXTURE_SHA256[legacy ? "legacy" : "zip"];
  const out = path.join(testModelsDir, base);
  if (existsSync(out) && sha256(readFileSync(out)) === want) return out;
  const bytes = gunzipSync(readFileSync(fixture("weights", `${base}.gz`)));
  if (sha256(bytes) !== want) throw new Error(`fixture ${base}.gz does not unpack to sha256 ${want}`);
  writeAtomic(out, bytes);
  return out;
}

let modelPromise: Promise<string> | undefined;
let spatialModelPromise: Promise<string> | undefined;

/**
 * Path of the fixture weights converted to ONNX. Reused while its `.key` companion records the
 * same converter version and .pth sha256; rebuilt otherwise.
 */
export function fixtureModelPath(): Promise<string> {
  modelPromise ??= fixtureStateDictPath(false).then((p) => convertedModel(p, false));
  return modelPromise;
}

/**
 * Path of the fixture weights converted with the extra sFID output (`buildInceptionOnnx(sd,
 * { spatial: true })`: pool3, logits, spatial [batch, 2023]). Its key adds INCEPTION_SPATIAL_VERSION.
 */
export function fixtureSpatialModelPath(): Promise<string> {
  spatialModelPromise ??= fixtureStateDictPath(false).then((p) => convertedModel(p, true));
  return spatialModelPromise;
}

function convertedModel(pthPath: string, spatial: boolean): string {
  const pth = readFileSync(pthPath);
  // The plain key is unchanged from before the spatial variant existed, so old caches stay valid.
  const version = spatial ? `${INCEPTION_CONVERTER_VERSION} spatial ${INCEPTION_SPATIAL_VERSION}` : `${INCEPTION_CONVERTER_VERSION}`;
  const key = `${version}\n${sha256(pth)}\n`;
  const out = path.join(testModelsDir, spatial ? "random-fid-inception-spatial.onnx" : "random-fid-inception.onnx");
  const keyFile = `${out}.key`;
  if (existsSync(out) && existsSync(keyFile) && readFileSync(keyFile, "utf8") === key) return out;
  writeAtomic(out, buildInceptionOnnx(readStateDict(pth, pthPath), { spatial }));
  writeAtomic(keyFile, key);
  return out;
}

/** An onnxruntime CPU session over model bytes, as the builders' tests need. */
export function cpuSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { executionProviders: ["cpu"], graphOptimizationLevel: "all" });
}
