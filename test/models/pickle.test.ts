import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { isTensorRef, unpickle } from "../../src/models/pickle.js";
import { PickleWriter } from "./pth-builder.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isDiffevalError(e) ? e.code : `not a DiffevalError: ${String(e)}`;
  }
  return undefined;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

describe("unpickle: values", () => {
  it("decodes the constants, containers and memo a state dict uses", () => {
    const w = new PickleWriter().proto(2).op(0x7d).op(0x71).op(0); // EMPTY_DICT, BINPUT 0
    w.mark();
    w.str("neg").op(0x4a).u32(0xfffffffe); // BININT -2
    w.str("big").op(0x8a).op(9); // LONG1 2^64 + 1 (9 bytes)
    for (const b of [1, 0, 0, 0, 0, 0, 0, 0, 1]) w.op(b);
    w.str("pi").op(0x47); // BINFLOAT, big-endian
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, Math.PI, false);
    for (let i = 0; i < 8; i++) w.op(f.getUint8(i));
    w.str("tuple").int(7).shortStr("x").op(0x88).op(0x87); // TUPLE3 (7, "x", True)
    w.op(0x71).op(1); // BINPUT 1
    w.str("again").op(0x68).op(1); // BINGET 1
    w.str("list").op(0x5d).mark().int(300).op(0x4e).op(0x65); // [300, None]
    w.op(0x75).stop();
    const { value, end } = unpickle(w.bytes(), { name: "values.pkl" });
    expect(end).toBe(w.bytes().length);
    const d = value as Map<string, unknown>;
    expect([...d.keys()]).toEqual(["neg", "big", "pi", "tuple", "again", "list"]);
    expect(d.get("neg")).toBe(-2);
    expect(d.get("big")).toBe(2n ** 64n + 1n);
    expect(d.get("pi")).toBe(Math.PI);
    expect(d.get("tuple")).toEqual([7, "x", true]);
    expect(d.get("again")).toBe(d.get("tuple"));
    expect(d.get("list")).toEqual([300, null]);
  });

  it("builds tensor records from torch._utils._rebuild_tensor_v2 through the persistent id", () => {
    const w = new PickleWriter().proto();
    w.global("torch._utils", "_rebuild_tensor_v2").tuple(() => {
      w.tuple(() => w.str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(6));
      w.op(0x51).int(1).ints([2, 2]).ints([1, 3]).op(0x89).global("collections", "OrderedDict").op(0x29).op(0x52);
    });
    w.op(0x52).stop();
    const pids: unknown[] = [];
    const { value } = unpickle(w.bytes(), { name: "t.pkl", persistentLoad: (pid) => (pids.push(pid), "storage-0") });
    expect(isTensorRef(value)).toBe(true);
    expect(value).toMatchObject({ storage: "storage-0", storageOffset: 1, shape: [2, 2], stride: [1, 3] });
    expect((pids[0] as unknown[])[0]).toBe("storage");
    expect((pids[0] as unknown[])[1]).toMatchObject({ kind: "torch-storage-type", name: "FloatStorage", dtype: "float32", itemSize: 4 });
  });
});

describe("unpickle: refuses what it must not run", () => {
  const sentinel = path.join(os.tmpdir(), `diffeval-pickle-sentinel-${process.pid}`);

  /** GLOBAL module.name, then ("touch <sentinel>",) and REDUCE: the classic pickle exploit. */
  function exploit(module: string, name: string): Uint8Array {
    const w = new PickleWriter().proto().global(module, name);
    w.tuple(() => w.str(`touch ${sentinel}`));
    return w.op(0x52).stop().bytes();
  }

  it.each([
    ["os", "system"],
    ["posix", "system"],
    ["nt", "system"],
    ["builtins", "eval"],
    ["builtins", "exec"],
    ["__builtin__", "eval"],
    ["subprocess", "Popen"],
    ["torch", "load"],
    ["torch", "constructor"], // must not fall through to Object.prototype
    ["collections", "__proto__"],
  ])("refuses GLOBAL %s.%s with E_UNSAFE_PICKLE and runs nothing", (module, name) => {
    const bytes = exploit(module, name);
    expect(codeOf(() => unpickle(bytes, { name: "evil.pth" }))).toBe("E_UNSAFE_PICKLE");
    const msg = messageOf(() => unpickle(bytes, { name: "evil.pth" }));
    expect(msg).toContain("evil.pth");
    expect(msg).toContain(`'${module}.${name}'`);
    expect(existsSync(sentinel)).toBe(false);
  });

  it("refuses the protocol-4 STACK_GLOBAL spelling too", () => {
    const w = new PickleWriter().proto(4).shortStr("builtins").op(0x94).shortStr("eval").op(0x94).op(0x93);
    w.tuple(() => w.str("1+1"));
    w.op(0x52).stop();
    const msg = messageOf(() => unpickle(w.bytes(), { name: "evil4.pth" }));
    expect(codeOf(() => unpickle(w.bytes(), { name: "evil4.pth" }))).toBe("E_UNSAFE_PICKLE");
    expect(msg).toContain("'builtins.eval'");
  });

  it("refuses INST (protocol 0 import-and-call) as an unreadable opcode", () => {
    const w = new PickleWriter().proto(2).mark();
    w.op(0x69);
    for (const b of new TextEncoder().encode("os\nsystem\n")) w.op(b);
    w.stop();
    expect(codeOf(() => unpickle(w.bytes(), { name: "inst.pth" }))).toBe("E_WEIGHTS_FORMAT");
  });

  it("refuses REDUCE on a value that is not an allowed callable", () => {
    const w = new PickleWriter().proto().str("not callable").op(0x29).op(0x52).stop();
    expect(codeOf(() => unpickle(w.bytes(), { name: "r.pth" }))).toBe("E_WEIGHTS_FORMAT");
  });
});

describe("unpickle: damaged input", () => {
  it("reports a pickle cut short as E_WEIGHTS_TRUNCATED", () => {
    const full = new PickleWriter().proto().op(0x7d).mark().str("a long key name").int(5).op(0x75).stop().bytes();
    for (const cut of [1, 5, 12, full.length - 1]) {
      expect(codeOf(() => unpickle(full.subarray(0, cut), { name: "cut.pth" }))).toBe("E_WEIGHTS_TRUNCATED");
    }
  });

  it("refuses a megabyte-wide LONG4 integer at once instead of assembling it", () => {
    const w = new PickleWriter().proto().op(0x8b).u32(1 << 20);
    const bytes = new Uint8Array(w.bytes().length + (1 << 20) + 1);
    bytes.set(w.bytes());
    bytes[bytes.length - 1] = 0x2e;
    const t0 = performance.now();
    expect(codeOf(() => unpickle(bytes, { name: "wide.pth" }))).toBe("E_WEIGHTS_FORMAT");
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("reports an unknown opcode as E_WEIGHTS_FORMAT with its offset", () => {
    const bytes = Uint8Array.from([0x80, 0x02, 0xff, 0x2e]);
    expect(codeOf(() => unpickle(bytes, { name: "bad.pth" }))).toBe("E_WEIGHTS_FORMAT");
    expect(messageOf(() => unpickle(bytes, { name: "bad.pth" }))).toContain("0xff at byte 2");
  });
});
