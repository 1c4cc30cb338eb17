import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { isUnsupportedDtype } from "../../src/models/pth.js";
import { halfToFloat, isSafetensors, readSafetensors } from "../../src/models/safetensors.js";
import { fixture } from "../helpers/fixtures.js";

function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return { code: isDiffevalError(e) ? e.code : undefined, message: (e as Error).message };
  }
  return { message: "no error" };
}

interface Spec {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file from tensors laid out back to back (header padded to 8 bytes, as the writer does). */
function build(tensors: Record<string, Spec>, opts: { metadata?: Record<string, string>; offsets?: Record<string, [number, number]> } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let at = 0;
  const parts: Uint8Array[] = [];
  for (const [k, t] of Object.entries(tensors)) {
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: opts.offsets?.[k] ?? [at, at + t.bytes.length] };
    at += t.bytes.length;
    parts.push(t.bytes);
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

const f32 = (v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const u16 = (v: number[]) => new Uint8Array(new Uint16Array(v).buffer);

describe("readSafetensors on clip-tiny/model.safetensors", () => {
  const file = fixture("encoders", "clip-tiny", "model.safetensors");
  const buf = new Uint8Array(readFileSync(file));
  const cfg = JSON.parse(readFileSync(fixture("encoders", "clip-tiny", "config.json"), "utf8"));

  it("reads every tensor with the shapes the config implies", () => {
    expect(isSafetensors(buf)).toBe(true);
    const sd = readSafetensors(buf, file);
    const v = cfg.vision_config;
    const t = cfg.text_config;
    const grid = (v.image_size / v.patch_size) ** 2;
    const expectShape: Record<string, number[]> = {
      "vision_model.embeddings.patch_embedding.weight": [v.hidden_size, 3, v.patch_size, v.patch_size],
      "vision_model.embeddings.class_embedding": [v.hidden_size],
      "vision_model.embeddings.position_embedding.weight": [grid + 1, v.hidden_size],
      "vision_model.encoder.layers.0.self_attn.q_proj.weight": [v.hidden_size, v.hidden_size],
      "vision_model.encoder.layers.1.mlp.fc1.weight": [v.intermediate_size, v.hidden_size],
      "visual_projection.weight": [cfg.projection_dim, v.hidden_size],
      "text_model.embeddings.token_embedding.weight": [t.vocab_size, t.hidden_size],
      "text_model.embeddings.position_embedding.weight": [t.max_position_embeddings, t.hidden_size],
      "text_projection.weight": [cfg.projection_dim, t.hidden_size],
      logit_scale: [],
    };
    for (const [k, shape] of Object.entries(expectShape)) {
      expect(sd.get(k)?.shape, k).toEqual(shape);
    }
    let values = 0;
    for (const [k, tensor] of sd) {
      if (isUnsupportedDtype(tensor)) continue;
      expect(tensor.data.length, k).toBe(tensor.shape.reduce((a, b) => a * b, 1));
      values += tensor.data.length;
      expect(tensor.data.every((x) => Number.isFinite(x)), k).toBe(true);
    }
    expect(values).toBeGreaterThan(49408 * 32);
    // Random weights: no tensor left at a trivial initial value (LayerNorm weights moved off 1).
    const ln = sd.get("vision_model.post_layernorm.weight")!.data;
    expect(ln.some((x) => x !== 1)).toBe(true);
  });

  it("refuses the file cut anywhere with E_WEIGHTS_TRUNCATED naming it", () => {
    for (const len of [0, 5, 8, 100, buf.length - 1, Math.floor(buf.length / 2)]) {
      const e = errorOf(() => readSafetensors(buf.subarray(0, len), "cut.safetensors"));
      expect(e.code, `length ${len}`).toBe("E_WEIGHTS_TRUNCATED");
      expect(e.message).toContain("cut.safetensors");
    }
  });
});

describe("readSafetensors on hand-built files", () => {
  it("reads F32 at any alignment and keeps the metadata out of the state dict", () => {
    const bytes = build({ a: { dtype: "F32", shape: [2, 2], bytes: f32([1, -2, 3.5, 1e-30]) } }, { metadata: { format: "pt" } });
    const sd = readSafetensors(bytes, "a.safetensors");
    expect([...sd.keys()]).toEqual(["a"]);
    expect(sd.get("a")!.shape).toEqual([2, 2]);
    expect([...sd.get("a")!.data]).toEqual([1, -2, 3.5, Math.fround(1e-30)]);
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    expect([...readSafetensors(shifted, "b").get("a")!.data]).toEqual([1, -2, 3.5, Math.fround(1e-30)]);
  });

  it("widens F16 exactly: normals, subnormals, zeros, infinities, NaN", () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const want = [1, -2, 65504, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, 0, -0, Infinity, -Infinity, NaN, 0.333251953125];
    const sd = readSafetensors(build({ h: { dtype: "F16", shape: [bits.length], bytes: u16(bits) } }), "h.safetensors");
    const got = [...sd.get("h")!.data];
    expect(got).toEqual(want);
    expect(Object.is(got[7], -0)).toBe(true);
    for (const [i, b] of bits.entries()) expect(Object.is(halfToFloat(b), want[i]) || (isNaN(want[i]) && isNaN(halfToFloat(b)))).toBe(true);
  });

  it("widens BF16 by shifting into the upper half of a float32", () => {
    const bits = [0x3f80, 0xc000, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x3eab];
    const sd = readSafetensors(build({ b: { dtype: "BF16", shape: [1, 7], bytes: u16(bits) } }), "b.safetensors");
    const got = [...sd.get("b")!.data];
    expect(got.slice(0, 5)).toEqual([1, -2, 2 ** -133, Infinity, -Infinity]);
    expect(got[5]).toBeNaN();
    expect(got[6]).toBe(new Float32Array(new Uint32Array([0x3eab0000]).buffer)[0]);
  });

  it("orders tensors by data offset and keeps other dtypes as placeholders that fail when used", () => {
    const i64 = new Uint8Array(new BigInt64Array([1n, 2n]).buffer);
    const sd = readSafetensors(
      build({ z: { dtype: "F32", shape: [1], bytes: f32([7]) }, ids: { dtype: "I64", shape: [2], bytes: i64 }, e: { dtype: "F32", shape: [0, 3], bytes: new Uint8Array(0) } }),
      "m.safetensors",
    );
    expect([...sd.keys()]).toEqual(["z", "ids", "e"]);
    const ids = sd.get("ids")!;
    expect(isUnsupportedDtype(ids)).toBe(true);
    expect(ids.shape).toEqual([2]);
    const e = errorOf(() => ids.data);
    expect(e.code).toBe("E_WEIGHTS_DTYPE");
    expect(e.message).toContain("ids");
    expect(e.message).toContain("m.safetensors");
    expect(sd.get("e")!.data.length).toBe(0);
  });

  const two = () => ({ a: { dtype: "F32", shape: [2], bytes: f32([1, 2]) }, b: { dtype: "F32", shape: [2], bytes: f32([3, 4]) } });

  it.each([
    ["overlapping offsets", { offsets: { b: [4, 12] as [number, number] } }, /overlaps/],
    ["a gap between tensors", { offsets: { a: [0, 8] as [number, number], b: [12, 20] as [number, number] } }, /gap/],
    ["a size that disagrees with the shape", { offsets: { b: [8, 12] as [number, number] } }, /needs 8 bytes/],
    ["reversed offsets", { offsets: { b: [16, 8] as [number, number] } }, /malformed data_offsets/],
  ])("refuses %s with E_WEIGHTS_FORMAT", (_what, opts, msg) => {
    const e = errorOf(() => readSafetensors(build(two(), opts), "bad.safetensors"));
    expect(e.code).toBe("E_WEIGHTS_FORMAT");
    expect(e.message).toMatch(msg);
    expect(e.message).toContain("bad.safetensors");
  });

  it("refuses offsets past the end of the file with E_WEIGHTS_TRUNCATED", () => {
    const e = errorOf(() => readSafetensors(build(two(), { offsets: { b: [8, 16], a: [0, 8] } }).subarray(0, 40), "t.safetensors"));
    expect(e.code).toBe("E_WEIGHTS_TRUNCATED");
    const past = errorOf(() => readSafetensors(build({ a: { dtype: "F32", shape: [4], bytes: f32([1, 2]) } }, { offsets: { a: [0, 16] } }), "p.safetensors"));
    expect(past.code).toBe("E_WEIGHTS_TRUNCATED");
    expect(past.message).toContain("'a'");
  });

  it("refuses trailing bytes, bad JSON, bad entries and non-safetensors files with E_WEIGHTS_FORMAT", () => {
    const ok = build(two());
    const trailing = new Uint8Array(ok.length + 4);
    trailing.set(ok);
    expect(errorOf(() => readSafetensors(trailing, "x")).code).toBe("E_WEIGHTS_FORMAT");

    const badJson = ok.slice();
    badJson[12] = 0x7d; // '}' in the middle of the header
    expect(errorOf(() => readSafetensors(badJson, "x")).code).toBe("E_WEIGHTS_FORMAT");

    const zip = new Uint8Array(64);
    zip.set([0x50, 0x4b, 0x03, 0x04]);
    const z = errorOf(() => readSafetensors(zip, "model.pth"));
    expect(z.code).toBe("E_WEIGHTS_FORMAT");
    expect(isSafetensors(zip)).toBe(false);

    for (const entry of [{ dtype: "F33", shape: [1], data_offsets: [0, 4] }, { dtype: "F32", shape: [-1], data_offsets: [0, 4] }, [1, 2]]) {
      const json = JSON.stringify({ a: entry });
      const b = new Uint8Array(8 + json.length + 4);
      new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
      b.set(new TextEncoder().encode(json), 8);
      expect(errorOf(() => readSafetensors(b, "x")).code).toBe("E_WEIGHTS_FORMAT");
    }
  });
});
