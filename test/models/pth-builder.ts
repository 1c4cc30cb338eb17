/**
 * Writes small torch.save-style files byte by byte, so reader tests can cover what the fixtures
 * do not: views and strides, non-float storages, odd archive names, forbidden globals.
 * Opcodes as in CPython's Lib/pickletools.py; layouts as described in src/models/pth.ts.
 */
import { zipSync } from "fflate";
import { concatBytes } from "../helpers/image-bytes.js";

/** Low-level protocol-2 pickle writer. */
export class PickleWriter {
  private readonly parts: number[] = [];

  op(code: number): this {
    this.parts.push(code);
    return this;
  }
  proto(v = 2): this {
    return this.op(0x80).op(v);
  }
  mark(): this {
    return this.op(0x28);
  }
  stop(): this {
    return this.op(0x2e);
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.op(0x58).u32(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  shortStr(s: string): this {
    const b = new TextEncoder().encode(s);
    this.op(0x8c).op(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b).op(n);
    if (n >= 0 && n < 65536) return this.op(0x4d).op(n & 0xff).op(n >> 8);
    return this.op(0x4a).u32(n >>> 0);
  }
  global(module: string, name: string): this {
    this.op(0x63);
    for (const x of new TextEncoder().encode(`${module}\n${name}\n`)) this.parts.push(x);
    return this;
  }
  /** TUPLE of whatever the callback writes. */
  tuple(items: () => void): this {
    this.mark();
    items();
    return this.op(0x74);
  }
  ints(values: number[]): this {
    return this.tuple(() => values.forEach((v) => this.int(v)));
  }
  u32(n: number): this {
    this.parts.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export interface FakeTensor {
  key: string;
  /** torch storage class name, e.g. "FloatStorage", "LongStorage". */
  storageType: string;
  /** Key of the storage (tensors may share one). */
  storageKey: string;
  shape: number[];
  stride?: number[];
  offset?: number;
  /** Legacy format only: (view key, element offset, size) into the root storage. */
  view?: [string, number, number];
}

export interface FakeStorage {
  key: string;
  numel: number;
  bytes: Uint8Array;
}

function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** The state-dict pickle torch writes: {key: _rebuild_tensor_v2(persistent storage, ...)}. */
export function stateDictPickle(tensors: FakeTensor[], storages: FakeStorage[], legacy: boolean): Uint8Array {
  const w = new PickleWriter().proto().op(0x7d).mark();
  for (const t of tensors) {
    const numel = storages.find((s) => s.key === t.storageKey)!.numel;
    w.str(t.key).global("torch._utils", "_rebuild_tensor_v2").tuple(() => {
      w.tuple(() => {
        w.str("storage").global("torch", t.storageType).str(t.storageKey).str("cpu").int(numel);
        if (legacy) {
          if (t.view) w.tuple(() => w.str(t.view![0]).int(t.view![1]).int(t.view![2]));
          else w.op(0x4e);
        }
      });
      w.op(0x51); // BINPERSID
      w.int(t.offset ?? 0).ints(t.shape).ints(t.stride ?? contiguousStride(t.shape)).op(0x89);
      w.global("collections", "OrderedDict").op(0x29).op(0x52); // OrderedDict() via REDUCE
    });
    w.op(0x52);
  }
  return w.op(0x75).stop().bytes();
}

/** torch >= 1.6 zip layout; `archive` is the folder name torch takes from the file name. */
export function zipPth(dataPkl: Uint8Array, storages: FakeStorage[], opts: { archive?: string; byteorder?: string } = {}): Uint8Array {
  const a = opts.archive ?? "archive";
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  files[`${a}/data.pkl`] = [dataPkl, { level: 0 }];
  for (const s of storages) files[`${a}/data/${s.key}`] = [s.bytes, { level: 0 }];
  files[`${a}/version`] = [new TextEncoder().encode("3\n"), { level: 0 }];
  if (opts.byteorder) files[`${a}/byteorder`] = [new TextEncoder().encode(opts.byteorder), { level: 0 }];
  return zipSync(files);
}

/** Pre-1.6 layout: magic, protocol, sys_info, main pickle, key list, then (int64 count, bytes) each. */
export function legacyPth(dataPkl: Uint8Array, storages: FakeStorage[]): Uint8Array {
  const magic = new PickleWriter().proto().op(0x8a).op(10);
  // LONG1 0x1950a86a20f9469cfc6c, little-endian.
  for (const b of [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]) magic.op(b);
  const proto = new PickleWriter().proto().int(1001).stop();
  const sys = new PickleWriter().proto().op(0x7d).mark().str("protocol_version").int(1001).str("little_endian").op(0x88);
  sys.op(0x75).stop();
  const keys = new PickleWriter().proto().op(0x5d).mark();
  for (const s of storages) keys.str(s.key);
  keys.op(0x65).stop();
  const parts: Uint8Array[] = [magic.stop().bytes(), proto.bytes(), sys.bytes(), dataPkl, keys.bytes()];
  for (const s of storages) {
    const count = new Uint8Array(8);
    new DataView(count.buffer).setBigInt64(0, BigInt(s.numel), true);
    parts.push(count, s.bytes);
  }
  return concatBytes(...parts);
}

export function floatStorage(key: string, values: ArrayLike<number>): FakeStorage {
  const f = Float32Array.from(values);
  return { key, numel: f.length, bytes: new Uint8Array(f.buffer) };
}

export function longStorage(key: string, values: number[]): FakeStorage {
  const b = new BigInt64Array(values.map((v) => BigInt(v)));
  return { key, numel: b.length, bytes: new Uint8Array(b.buffer) };
}
