/**
 * Weight conversion time: the 95 MB fixture .pth (zip and legacy format) -> state dict -> ONNX
 * bytes. `read` is the file read plus readStateDict; `build` is buildInceptionOnnx (layout check,
 * BatchNorm folding, graph and protobuf serialisation). Median of REPS runs, in seconds.
 */
import { readFileSync } from "node:fs";
import { buildInceptionOnnx } from "../src/models/inception-onnx.js";
import { readStateDict } from "../src/models/pth.js";
import { fixtureStateDictPath } from "../test/helpers/model.js";

const REPS = Number(process.env.BENCH_CONVERT_REPS ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function secondsSince(t0: number): number {
  return (performance.now() - t0) / 1000;
}

async function timeFormat(legacy: boolean): Promise<{ read: number; build: number; total: number; bytes: number }> {
  const file = await fixtureStateDictPath(legacy);
  const reads: number[] = [];
  const builds: number[] = [];
  const totals: number[] = [];
  let bytes = 0;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    const sd = readStateDict(readFileSync(file), file);
    const read = secondsSince(t0);
    const t1 = performance.now();
    bytes = buildInceptionOnnx(sd).length;
    builds.push(secondsSince(t1));
    reads.push(read);
    totals.push(secondsSince(t0));
  }
  return { read: median(reads), build: median(builds), total: median(totals), bytes };
}

export async function benchConvert(): Promise<Record<string, number>> {
  const zip = await timeFormat(false);
  const legacy = await timeFormat(true);
  return {
    zip_read_s: zip.read,
    zip_build_s: zip.build,
    zip_total_s: zip.total,
    legacy_read_s: legacy.read,
    legacy_build_s: legacy.build,
    legacy_total_s: legacy.total,
    onnx_mb: zip.bytes / 1e6,
  };
}
