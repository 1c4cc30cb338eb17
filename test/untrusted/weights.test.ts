/**
 * Regression tests for issue 17's findings on weight files (.pth in its zip and legacy forms,
 * .safetensors, and the pickle inside .pth): each hostile file is built here, a few KB at most,
 * and must end in a DiffevalError with the right code, in-process and through the real CLI
 * (exit 2, `error[CODE]`, within seconds and under a 768 MB RSS cap).
 */
import { existsSync, mkdirSync, copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { zipSync } from "fflate";
import { beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { unpickle } from "../../src/models/pickle.js";
import { readStateDict } from "../../src/models/pth.js";
import { readSafetensors } from "../../src/models/safetensors.js";
import { errorCodeOf, runCliCapped } from "../helpers/capped-run.js";
import { expectNamedExit } from "../helpers/named-exit.js";
import { fixture } from "../helpers/fixtures.js";
import { PickleWriter, floatStorage, legacyPth, stateDictPickle, zipPth, type FakeStorage, type FakeTensor } from "../models/pth-builder.js";

function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return { code: isDiffevalError(e) ? e.code : `not a DiffevalError: ${String(e)}`, message: (e as Error).message };
  }
  return { message: "no error" };
}

/** `fn` throws a DiffevalError `code` naming `file` within `ms`. */
function expectRefused(fn: () => unknown, code: string, file: string, ms = 1000): string {
  const t0 = performance.now();
  const err = errorOf(fn);
  expect(err.code, err.message).toBe(code);
  expect(err.message).toContain(file);
  expect(performance.now() - t0).toBeLessThan(ms);
  return err.message;
}

let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-untrusted-weights-"));
});

function writeHostile(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, name);
  writeFileSync(file, bytes);
  return file;
}

const capped = { maxRssMb: 768, timeoutMs: 15_000 } as const;
const cliEnv = () => ({ DIFFEVAL_CACHE: path.join(tmp, "cache") });

/** `diffeval fid` on a hostile .pth: exit 2 with `error[code]` naming the file, quickly, in bounded memory. */
async function expectFidRefuses(file: string, code: string): Promise<void> {
  const r = await runCliCapped(["fid", "--real", real, "--fake", fake, "--weights", file, "--device", "cpu"], { ...capped, env: cliEnv() });
  expectNamedExit(r, code, { maxMs: 15_000 });
  expect(r.stderr).toContain(path.basename(file));
}

// ---------------------------------------------------------------------------------------------
// Hostile bytes

const one = (key: string): FakeStorage => floatStorage(key, [1.5]);

/** A zip .pth holding one float tensor `t` over storage "0". */
function zipWith(t: Omit<FakeTensor, "key" | "storageType" | "storageKey">, storage: FakeStorage = one("0")): Uint8Array {
  const tensors: FakeTensor[] = [{ key: "w", storageType: "FloatStorage", storageKey: storage.key, ...t }];
  return zipPth(stateDictPickle(tensors, [storage], false), [storage]);
}

function legacyWith(t: Omit<FakeTensor, "key" | "storageType" | "storageKey">, storage: FakeStorage = one("0")): Uint8Array {
  const tensors: FakeTensor[] = [{ key: "w", storageType: "FloatStorage", storageKey: storage.key, ...t }];
  return legacyPth(stateDictPickle(tensors, [storage], true), [storage]);
}

/** NONE wrapped in `depth` TUPLE1s: a value nested `depth` deep from 1 + depth bytes. */
function nestedTuple(w: PickleWriter, depth: number): PickleWriter {
  w.op(0x4e);
  for (let i = 0; i < depth; i++) w.op(0x85);
  return w;
}

/**
 * `{"w": _rebuild_tensor_v2(persistent id, 0, shape, stride, False, OrderedDict())}` with the
 * persistent id's fields written by `pid` (after "storage", FloatStorage, key "0", "cpu").
 */
function oneTensorPickle(pid: (w: PickleWriter) => void, shape: number[] = [1], stride: number[] = [1]): Uint8Array {
  const w = new PickleWriter().proto().op(0x7d).str("w").global("torch._utils", "_rebuild_tensor_v2");
  w.tuple(() => {
    w.tuple(() => pid(w.str("storage").global("torch", "FloatStorage").str("0").str("cpu")));
    w.op(0x51).int(0).ints(shape).ints(stride).op(0x89).global("collections", "OrderedDict").op(0x29).op(0x52);
  });
  return w.op(0x52).op(0x73).stop().bytes();
}

/** LONG1: any integer, little-endian two's complement. */
function long1(w: PickleWriter, n: bigint): PickleWriter {
  const bytes: number[] = [];
  for (let v = n; v !== 0n || bytes.length === 0 || bytes[bytes.length - 1] & 0x80; v >>= 8n) bytes.push(Number(v & 0xffn));
  w.op(0x8a).op(bytes.length);
  for (const b of bytes) w.op(b);
  return w;
}

/** A state dict whose only key is a tuple nested `depth` deep. */
function nestedKeyPickle(depth: number): Uint8Array {
  const w = new PickleWriter().proto().op(0x7d);
  nestedTuple(w, depth).int(1).op(0x73); // SETITEM
  return w.stop().bytes();
}

/** Replaces the end-of-central-directory record with a zip64 one declaring `count` entries. */
function withZip64Count(zip: Uint8Array, count: bigint): Uint8Array {
  const eocd = zip.length - 22; // fflate writes no archive comment
  const src = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const cdSize = BigInt(src.getUint32(eocd + 12, true));
  const cdOffset = BigInt(src.getUint32(eocd + 16, true));
  const out = new Uint8Array(eocd + 56 + 20 + 22);
  out.set(zip.subarray(0, eocd));
  const v = new DataView(out.buffer);
  let at = eocd;
  v.setUint32(at, 0x06064b50, true); // zip64 end of central directory record (APPNOTE 4.3.14)
  v.setBigUint64(at + 4, 44n, true);
  v.setUint16(at + 12, 45, true);
  v.setUint16(at + 14, 45, true);
  v.setBigUint64(at + 24, count, true);
  v.setBigUint64(at + 32, count, true);
  v.setBigUint64(at + 40, cdSize, true);
  v.setBigUint64(at + 48, cdOffset, true);
  at += 56;
  v.setUint32(at, 0x07064b50, true); // locator (4.3.15)
  v.setBigUint64(at + 8, BigInt(eocd), true);
  v.setUint32(at + 16, 1, true);
  at += 20;
  v.setUint32(at, 0x06054b50, true); // EOCD with every field saturated
  v.setUint16(at + 8, 0xffff, true);
  v.setUint16(at + 10, 0xffff, true);
  v.setUint32(at + 12, 0xffffffff, true);
  v.setUint32(at + 16, 0xffffffff, true);
  return out;
}

/** Sets the uncompressed size of every central directory entry (what an unzipper allocates). */
function withDeclaredSizes(zip: Uint8Array, size: number): Uint8Array {
  const out = zip.slice();
  const v = new DataView(out.buffer);
  for (let i = 0; i + 46 <= out.length; i++) {
    if (v.getUint32(i, true) === 0x02014b50) v.setUint32(i + 24, size, true);
  }
  return out;
}

/** A safetensors file whose header is `json` (padded), with no data. */
function safetensorsWithHeader(json: string): Uint8Array {
  const body = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

const deepJson = (depth: number): string => "[".repeat(depth) + "]".repeat(depth);

/** A copy of the clip-tiny checkpoint folder whose model.safetensors is `bytes`. */
function clipFolderWith(name: string, bytes: Uint8Array): string {
  const clipDir = fixture("encoders", "clip-tiny");
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["config.json", "preprocessor_config.json"]) copyFileSync(path.join(clipDir, f), path.join(dir, f));
  writeFileSync(path.join(dir, "model.safetensors"), bytes);
  return dir;
}

// ---------------------------------------------------------------------------------------------

describe("untrusted weight files: generic exceptions", () => {
  it("generic exception: deeply nested JSON in a safetensors header (parseEntry)", async () => {
    for (const field of ["dtype", "shape", "data_offsets"]) {
      const entry = { dtype: "F32", shape: [0], data_offsets: [0, 0] } as Record<string, unknown>;
      const hostile = (depth: number) => JSON.stringify({ t: { ...entry, [field]: "@" } }).replace('"@"', deepJson(depth));
      expectRefused(() => readSafetensors(safetensorsWithHeader(hostile(100_000)), "deep.safetensors"), "E_WEIGHTS_FORMAT", "deep.safetensors");
      // Within the header's depth cap, the message still describes the value without walking it.
      const msg = expectRefused(() => readSafetensors(safetensorsWithHeader(hostile(50)), "deep.safetensors"), "E_WEIGHTS_FORMAT", "deep.safetensors");
      expect(msg).toContain(`${field} an array of 1 items`);
    }
    const json = JSON.stringify({ t: { dtype: "F32", shape: "@", data_offsets: [0, 0] } }).replace('"@"', deepJson(100_000));
    const dir = clipFolderWith("clip-deep", safetensorsWithHeader(json));
    const r = await runCliCapped(["features", real, "--encoder", "clip", "--out", path.join(tmp, "f.npy"), "--weights", dir, "--device", "cpu"], {
      ...capped,
      env: cliEnv(),
    });
    expect(r.killedFor).toBeUndefined();
    expect(r.code, r.stderr).toBe(2);
    expect(errorCodeOf(r.stderr), r.stderr).toBe("E_WEIGHTS_FORMAT");
    expect(r.stderr).toContain("model.safetensors");
  });

  it("generic exception: deeply nested pickled structures in a .pth (Array.join in the messages)", async () => {
    const nestedKey = zipPth(nestedKeyPickle(200_000), []);
    expectRefused(() => readStateDict(nestedKey, "nested-key.pth"), "E_WEIGHTS_FORMAT", "nested-key.pth");
    expect(errorOf(() => readStateDict(zipPth(nestedKeyPickle(3), []), "k.pth")).message).toContain("entry a tuple of 1 items is not a tensor");

    // The legacy protocol-version pickle and a storage view key, nested instead of an int / a str.
    const legacy = legacyPth(new Uint8Array(0), []);
    const protoAt = legacy.indexOf(0x80, 2); // the second pickle starts with PROTO
    const nestedProto = nestedTuple(new PickleWriter().proto(), 200_000).stop().bytes();
    const hostileLegacy = new Uint8Array([...legacy.subarray(0, protoAt), ...nestedProto, ...legacy.subarray(protoAt)]);
    const protoMsg = expectRefused(() => readStateDict(hostileLegacy, "nested-proto.pth"), "E_WEIGHTS_FORMAT", "nested-proto.pth");
    expect(protoMsg).toContain("unknown legacy protocol version a tuple of 1 items");
    const viewPkl = oneTensorPickle((w) => w.int(1).tuple(() => nestedTuple(w, 200_000).int(0).int(1)));
    const viewMsg = expectRefused(() => readStateDict(legacyPth(viewPkl, [one("0")]), "nested-view.pth"), "E_WEIGHTS_FORMAT", "nested-view.pth");
    expect(viewMsg).toContain("view record of storage 0 is malformed");

    await expectFidRefuses(writeHostile("nested-key.pth", nestedKey), "E_WEIGHTS_FORMAT");
    await expectFidRefuses(writeHostile("nested-proto.pth", hostileLegacy), "E_WEIGHTS_FORMAT");
  });

  it("generic exception: a .pth tensor promising 2^40 elements from a 1-element storage (gatherStrided)", async () => {
    const bytes = zipWith({ shape: [1 << 20, 1 << 20], stride: [0, 0] });
    const msg = expectRefused(() => readStateDict(bytes, "huge-view.pth"), "E_WEIGHTS_FORMAT", "huge-view.pth");
    expect(msg).toContain("archive/data/0");
    await expectFidRefuses(writeHostile("huge-view.pth", bytes), "E_WEIGHTS_FORMAT");
  });
});

describe("untrusted weight files: hangs", () => {
  it("hang: a .pth zip64 directory declaring 4 billion entries", async () => {
    const base = zipWith({ shape: [1] });
    // 2^32 - 2: a saturated 0xffffffff would make a general unzipper look for zip64 extras and stop.
    const bytes = withZip64Count(base, 0xfffffffen);
    const msg = expectRefused(() => readStateDict(bytes, "many-entries.pth"), "E_WEIGHTS_FORMAT", "many-entries.pth");
    expect(msg).toContain("4294967294 entries");
    // The zip64 record itself is read: the same archive with its true count loads.
    expect(readStateDict(withZip64Count(base, 3n), "zip64.pth").get("w")!.data[0]).toBe(1.5);
    await expectFidRefuses(writeHostile("many-entries.pth", bytes), "E_WEIGHTS_FORMAT");
  });

  it("hang: a .pth strided gather over 2^31 elements of a 1-element storage (legacy form)", async () => {
    const bytes = legacyWith({ shape: [1 << 30, 2], stride: [0, 0] });
    expectRefused(() => readStateDict(bytes, "slow-gather.pth"), "E_WEIGHTS_FORMAT", "slow-gather.pth");
    await expectFidRefuses(writeHostile("slow-gather.pth", bytes), "E_WEIGHTS_FORMAT");
  });
});

describe("untrusted weight files: memory blowups", () => {
  it("memory blowup: a .pth (zip form) expanding a 1-element storage to 2^28 elements", async () => {
    const bytes = zipWith({ shape: [1 << 14, 1 << 14], stride: [0, 0] });
    const msg = expectRefused(() => readStateDict(bytes, "expand.pth"), "E_WEIGHTS_FORMAT", "expand.pth");
    expect(msg).toContain("more elements than the 1 its storage (archive/data/0) holds");
    await expectFidRefuses(writeHostile("expand.pth", bytes), "E_WEIGHTS_FORMAT");
  });

  it("memory blowup: a .pth (legacy form) expanding a 1-element storage to 2^28 elements", async () => {
    const bytes = legacyWith({ shape: [1 << 28], stride: [0] });
    expectRefused(() => readStateDict(bytes, "expand-legacy.pth"), "E_WEIGHTS_FORMAT", "expand-legacy.pth");
    await expectFidRefuses(writeHostile("expand-legacy.pth", bytes), "E_WEIGHTS_FORMAT");
  });

  it("memory blowup: a .pth pointing thousands of strided views at one storage", async () => {
    // 5,000 memoized records each copying a transposed 256x256 view of one 256 KB storage: 1.3 GB
    // of copies from a 400 KB file.
    const storage = floatStorage("0", new Float32Array(256 * 256));
    const w = new PickleWriter().proto().op(0x7d);
    const memoize = (slot: number) => w.op(0x71).op(slot).op(0x30); // BINPUT slot, POP
    const get = (slot: number) => w.op(0x68).op(slot); // BINGET slot
    w.global("torch._utils", "_rebuild_tensor_v2");
    memoize(0);
    w.tuple(() => w.str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(256 * 256)).op(0x51);
    memoize(1);
    w.ints([256, 256]);
    memoize(2);
    w.ints([1, 256]);
    memoize(3);
    w.global("collections", "OrderedDict").op(0x29).op(0x52);
    memoize(4);
    w.mark();
    for (let i = 0; i < 5000; i++) {
      w.str(`t${i}`);
      get(0).tuple(() => {
        get(1).int(0);
        get(2);
        get(3).op(0x89);
        get(4);
      });
      w.op(0x52);
    }
    const bytes = zipPth(w.op(0x75).stop().bytes(), [storage]);
    const msg = expectRefused(() => readStateDict(bytes, "views.pth"), "E_WEIGHTS_FORMAT", "views.pth");
    expect(msg).toContain("copy more elements than the file's storages hold");
    await expectFidRefuses(writeHostile("views.pth", bytes), "E_WEIGHTS_FORMAT");
  });

  it("memory blowup: a legacy .pth storage declaring 2^40 elements in a few bytes", () => {
    const pkl = oneTensorPickle((w) => long1(w, 2n ** 40n).op(0x4e));
    const bytes = legacyPth(pkl, [{ key: "0", numel: 2 ** 40, bytes: new Uint8Array(16) }]);
    expectRefused(() => readStateDict(bytes, "legacy-count.pth"), "E_WEIGHTS_TRUNCATED", "legacy-count.pth");
  });
});

describe("untrusted weight files: accepted but inconsistent", () => {
  it("accepted but inconsistent: a .pth zip entry declaring 4 GB from a few bytes", () => {
    const pkl = stateDictPickle([{ key: "w", storageType: "FloatStorage", storageKey: "0", shape: [1] }], [one("0")], false);
    const deflated = zipSync({ "archive/data.pkl": [pkl, { level: 9 }], "archive/data/0": [one("0").bytes, { level: 0 }] });
    const msg = expectRefused(() => readStateDict(withDeclaredSizes(deflated, 0xfffffff0), "bomb.pth"), "E_WEIGHTS_FORMAT", "bomb.pth");
    expect(msg).toContain("archive/data");
    // A deflated entry is read, and inflated to exactly its declared size.
    expect(readStateDict(deflated, "deflated.pth").get("w")!.data[0]).toBe(1.5);
  });

  it.each([
    ["a negative offset", ["0v", -4, 4]],
    ["a NaN offset", ["0v", Number.NaN, 4]],
    ["a NaN size", ["0v", 0, Number.NaN]],
    ["a view past its root", ["0v", 2, 4]],
  ] as const)("accepted but inconsistent: a legacy .pth view with %s", (_label, view) => {
    const pkl = oneTensorPickle(
      (w) =>
        w.int(4).tuple(() => {
          w.str(view[0]);
          anyNumber(w, view[1]);
          anyNumber(w, view[2]);
        }),
      [4],
      [1],
    );
    const bytes = legacyPth(pkl, [floatStorage("0", [1, 2, 3, 4])]);
    const msg = expectRefused(() => readStateDict(bytes, "view.pth"), "E_WEIGHTS_FORMAT", "view.pth");
    expect(msg).toMatch(/view/);
  });

  it("accepted but inconsistent: a .pth storage declared twice with different sizes or types", () => {
    const w = new PickleWriter().proto().op(0x7d).mark();
    for (const [key, type, numel] of [["a", "FloatStorage", 1], ["b", "FloatStorage", 1000]] as const) {
      w.str(key).global("torch._utils", "_rebuild_tensor_v2").tuple(() => {
        w.tuple(() => w.str("storage").global("torch", type).str("0").str("cpu").int(numel));
        w.op(0x51).int(0).ints([1]).ints([1]).op(0x89).global("collections", "OrderedDict").op(0x29).op(0x52);
      });
      w.op(0x52);
    }
    const bytes = zipPth(w.op(0x75).stop().bytes(), [one("0")]);
    expect(expectRefused(() => readStateDict(bytes, "twice.pth"), "E_WEIGHTS_FORMAT", "twice.pth")).toContain("declared twice");
  });

  it("accepted but inconsistent: a .pth tensor with more than 64 dimensions", () => {
    const bytes = zipWith({ shape: new Array(65).fill(1) });
    expectRefused(() => readStateDict(bytes, "dims.pth"), "E_WEIGHTS_FORMAT", "dims.pth");
  });

  it("accepted but inconsistent: a safetensors shape whose element count overflows before a 0", () => {
    const json = JSON.stringify({ t: { dtype: "F32", shape: [2 ** 40, 2 ** 40, 0], data_offsets: [0, 0] } });
    expectRefused(() => readSafetensors(safetensorsWithHeader(json), "overflow.safetensors"), "E_WEIGHTS_FORMAT", "overflow.safetensors");
  });
});

/** An int (BININT) or any float (BINFLOAT, big-endian), as the pickle spells it. */
function anyNumber(w: PickleWriter, n: number): void {
  if (Number.isInteger(n)) {
    w.int(n);
    return;
  }
  const f = new DataView(new ArrayBuffer(8));
  f.setFloat64(0, n, false);
  w.op(0x47);
  for (let i = 0; i < 8; i++) w.op(f.getUint8(i));
}

describe("untrusted weight files: code execution refused", () => {
  const sentinel = path.join(os.tmpdir(), `diffeval-weights-sentinel-${process.pid}`);
  const touch = (w: PickleWriter) => w.tuple(() => w.str(`touch ${sentinel}`));
  const inZip = (pkl: Uint8Array) => zipPth(pkl, []);

  function refusedWith(code: string, pkl: Uint8Array): string {
    const msg = expectRefused(() => readStateDict(inZip(pkl), "evil.pth"), code, "evil.pth");
    expect(msg).toContain("archive/data.pkl");
    expect(existsSync(sentinel)).toBe(false);
    return msg;
  }

  it("code execution refused: GLOBAL os.system with REDUCE", () => {
    const w = new PickleWriter().proto().global("os", "system");
    touch(w);
    expect(refusedWith("E_UNSAFE_PICKLE", w.op(0x52).stop().bytes())).toContain("'os.system'");
  });

  it("code execution refused: REDUCE on something that is not an allowed callable", () => {
    // An allowed name that is not callable (a storage type), and a plain string.
    const storageCall = new PickleWriter().proto().global("torch", "FloatStorage");
    touch(storageCall);
    refusedWith("E_WEIGHTS_FORMAT", storageCall.op(0x52).stop().bytes());
    const str = new PickleWriter().proto().str("os.system");
    touch(str);
    refusedWith("E_WEIGHTS_FORMAT", str.op(0x52).stop().bytes());
  });

  it("code execution refused: BUILD (state applied to an object)", () => {
    // OrderedDict() then BUILD with a state naming os.system: refused at the global.
    const w = new PickleWriter().proto().global("collections", "OrderedDict").op(0x29).op(0x52);
    w.op(0x7d).str("__setstate__").global("os", "system").op(0x73).op(0x62).stop();
    refusedWith("E_UNSAFE_PICKLE", w.bytes());
    // A BUILD whose state is plain data sets nothing, on the value or on Object.prototype.
    const b = new PickleWriter().proto().global("collections", "OrderedDict").op(0x29).op(0x52);
    b.op(0x7d).str("__proto__").op(0x7d).str("polluted").op(0x88).op(0x73).op(0x73).op(0x62).stop();
    const { value } = unpickle(b.bytes(), { name: "build.pkl" });
    expect(value).toEqual(new Map());
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("code execution refused: INST and OBJ (protocol 0/1 import-and-call)", () => {
    const inst = new PickleWriter().proto().mark().str(`touch ${sentinel}`).op(0x69);
    for (const b of new TextEncoder().encode("os\nsystem\n")) inst.op(b);
    refusedWith("E_WEIGHTS_FORMAT", inst.stop().bytes());
    const obj = new PickleWriter().proto().mark().global("os", "system").str(`touch ${sentinel}`).op(0x6f).stop();
    refusedWith("E_UNSAFE_PICKLE", obj.bytes());
    // OBJ on an allowed class is refused as an opcode, not called.
    refusedWith("E_WEIGHTS_FORMAT", new PickleWriter().proto().mark().global("collections", "OrderedDict").op(0x6f).stop().bytes());
  });

  it("code execution refused: persistent_load of anything but a storage", () => {
    const w = new PickleWriter().proto();
    w.tuple(() => w.str("module").str("os.system"));
    refusedWith("E_WEIGHTS_FORMAT", w.op(0x51).stop().bytes());
    // PERSID (the protocol 0 spelling) and the copyreg extension opcodes EXT1/EXT2/EXT4.
    const persid = new PickleWriter().proto().op(0x50);
    for (const b of new TextEncoder().encode("os.system\n")) persid.op(b);
    refusedWith("E_WEIGHTS_FORMAT", persid.stop().bytes());
    for (const ext of [0x82, 0x83, 0x84]) refusedWith("E_WEIGHTS_FORMAT", new PickleWriter().proto().op(ext).op(1).op(0).op(0).op(0).stop().bytes());
    // A legacy file's sys_info pickle has no persistent ids at all.
    const legacy = legacyPth(new Uint8Array(0), []);
    const sysAt = legacy.indexOf(0x7d); // EMPTY_DICT of the sys_info pickle
    const hostile = new Uint8Array([...legacy.subarray(0, sysAt), 0x4e, 0x51, 0x2e]);
    expectRefused(() => readStateDict(hostile, "persid.pth"), "E_WEIGHTS_FORMAT", "persid.pth");
  });
});

describe("untrusted weight files: nesting and stack bounds", () => {
  it("nesting: MARKs nested past the unpickler's cap", () => {
    const w = new PickleWriter().proto();
    for (let i = 0; i < 5000; i++) w.mark();
    expect(expectRefused(() => unpickle(w.stop().bytes(), { name: "marks.pkl" }), "E_WEIGHTS_FORMAT", "marks.pkl")).toContain("MARKs nested");
  });

  it("nesting: a pickle stack or memo past its cap", () => {
    const stack = new Uint8Array((1 << 20) + 4).fill(0x4e); // NONE x 2^20 + ...
    stack.set([0x80, 0x02]);
    expect(expectRefused(() => unpickle(stack, { name: "stack.pkl" }), "E_WEIGHTS_FORMAT", "stack.pkl")).toContain("values on the pickle stack");
    const memo = new Uint8Array((1 << 18) + 8).fill(0x94); // MEMOIZE, each a new entry
    memo.set([0x80, 0x04, 0x4e]);
    expect(expectRefused(() => unpickle(memo, { name: "memo.pkl" }), "E_WEIGHTS_FORMAT", "memo.pkl")).toContain("memo entries");
  });

  it("nesting: a value nested a million deep is read, never walked recursively", () => {
    const bytes = nestedTuple(new PickleWriter().proto(), 1_000_000).stop().bytes();
    const { value } = unpickle(bytes, { name: "deep.pkl" });
    expect(Array.isArray(value)).toBe(true);
  });
});
