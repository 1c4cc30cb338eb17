/**
 * Mutations of valid files into hostile ones, as fast-check arbitraries.
 *
 * A case is a seed file (from the fixtures, or built by a target) plus one to five mutations
 * applied in order. Positions are fractions of the current length, so one mutation list fits any
 * seed. The mutations are the classes that found the defects of the audit in issue 17: bit flips,
 * truncation, insertion and deletion, length and count fields overwritten with huge or negative
 * integers, numbers in text headers (npy dicts, JSON) replaced by extreme ones, and deep nesting or
 * long runs of one character for text formats.
 *
 * Cases are drawn one at a time with `fc.sample(arb, {seed, numRuns: 1})`, seeded by (campaign
 * seed, case index): a case can be regenerated from its index alone, which is how the runner
 * recovers the bytes of a case whose worker died, and how a run resumes after it.
 */
import { unzipSync, zipSync } from "fflate";
import fc from "fast-check";
import { concatBytes as concat } from "../helpers/image-bytes.js";

export type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "byte"; at: number; value: number }
  | { kind: "integer"; at: number; width: 2 | 4 | 8; value: bigint; bigEndian: boolean }
  | { kind: "truncate"; at: number }
  | { kind: "delete"; at: number; length: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "duplicate"; from: number; to: number; length: number }
  | { kind: "number"; which: number; text: string }
  | { kind: "repeat"; at: number; text: string; times: number };

/** Values that break length and offset arithmetic: 0, 1, sign bits, all ones, beyond 2^32. */
const INTERESTING_INTEGERS: readonly bigint[] = [
  0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  0x100000000n, 0x10000000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn,
];

/** Numbers that break parsers of text: huge, negative, fractional, non-finite, beyond 2^53. */
const INTERESTING_NUMBERS: readonly string[] = [
  "0", "-1", "1.5", "1e308", "1e400", "-1e308", "NaN", "Infinity", "4294967296", "9007199254740993",
  "99999999999999999999", "1000000000", "400000000", "2147483648", "65", "1e-400",
];

/** Runs of one text that break recursive parsers and regex scanners. */
const REPEATS: readonly string[] = ["[", "{", '{"a":', "(", "{{", "\\", '"', "a", ",", "0"];

/**
 * Where in the file a mutation lands, as a fraction of its length. fast-check biases numbers
 * towards their bounds (its doubles are mostly 0 or tiny), which would put nearly every mutation
 * in the first bytes, the magic and header checks; three times in four the position is uniform.
 */
const fraction = fc.oneof(
  { weight: 3, arbitrary: fc.noBias(fc.integer({ min: 0, max: 0xffffffff })).map((x) => x / 2 ** 32) },
  { weight: 1, arbitrary: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) },
);

// Weighted so that most cases keep most of the file: truncation alone would otherwise end most
// cases at the first header check.
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fraction, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("byte" as const), at: fraction, value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff) }) },
  { weight: 4, arbitrary: fc.record({
    kind: fc.constant("integer" as const),
    at: fraction,
    width: fc.constantFrom(2 as const, 4 as const, 8 as const),
    value: fc.constantFrom(...INTERESTING_INTEGERS),
    bigEndian: fc.boolean(),
  }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fraction }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fraction, length: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), at: fraction, bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate" as const), from: fraction, to: fraction, length: fc.integer({ min: 1, max: 256 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("number" as const), which: fraction, text: fc.constantFrom(...INTERESTING_NUMBERS) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("repeat" as const),
      at: fraction,
      text: fc.constantFrom(...REPEATS),
      times: fc.constantFrom(2, 100, 10_000, 100_000),
    }),
  },
);

const mutations = fc.array(mutation, { minLength: 1, maxLength: 3 });

/**
 * How a target's seeds are structured, which decides the structure-aware edits tried besides
 * raw byte mutations: "zip" edits one archive entry and re-zips (so the edit reaches the parser
 * behind the container), "json" edits one value of the parsed document (so the edit reaches the
 * checks behind JSON.parse), "bytes" has raw mutations only.
 */
export type SeedFormat = "bytes" | "zip" | "json";

/** A JSON value put in place of another, as JSON text (deep nesting cannot go through stringify). */
const JSON_REPLACEMENTS: readonly string[] = [
  ...INTERESTING_NUMBERS.filter((n) => !/[A-Za-z]/.test(n) || n.includes("e")).filter((n) => n !== "1e400" && n !== "1e-400"),
  "1e400", // valid JSON, parsed as Infinity
  "null", "true", '""', "[]", "{}", '"NaN"', '"-1"',
  `"${"a".repeat(100_000)}"`,
  `"${"{".repeat(100_000)}"`,
  `${"[".repeat(100_000)}${"]".repeat(100_000)}`,
  `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`,
  `[${Array.from({ length: 200_000 }, (_, i) => i).join(",")}]`,
  `[${Array(100_000).fill("1.5").join(",")}]`,
  `[${Array(30).fill("[1,2]").join(",")}]`,
];

export type JsonEdit =
  | { op: "replace"; at: number; value: number }
  | { op: "delete"; at: number }
  | { op: "repeat"; at: number; times: number };

const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("replace" as const), at: fraction, value: fc.integer({ min: 0, max: JSON_REPLACEMENTS.length - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), at: fraction }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("repeat" as const), at: fraction, times: fc.constantFrom(2, 1000, 100_000) }) },
);

/** One fuzz case: which seed file, an optional structure-aware edit, then raw mutations in order. */
export interface FuzzCase {
  seedIndex: number;
  entry?: { which: number; mutations: Mutation[]; deflate: boolean };
  json?: JsonEdit[];
  mutations: Mutation[];
}

export function fuzzCaseArbitrary(format: SeedFormat, seedCount: number): fc.Arbitrary<FuzzCase> {
  const seedIndex = fc.integer({ min: 0, max: seedCount - 1 });
  const raw = fc.record({ seedIndex, mutations });
  if (format === "zip") {
    const entry = fc.record({ which: fraction, mutations, deflate: fc.boolean() });
    const inner = fc.record({ seedIndex, entry, mutations: fc.constant([] as Mutation[]) });
    return fc.oneof({ weight: 1, arbitrary: raw }, { weight: 2, arbitrary: inner });
  }
  if (format === "json") {
    const edits = fc.array(jsonEdit, { minLength: 1, maxLength: 3 });
    const inner = fc.record({ seedIndex, json: edits, mutations: fc.constant([] as Mutation[]) });
    return fc.oneof({ weight: 1, arbitrary: raw }, { weight: 2, arbitrary: inner });
  }
  return raw;
}

/** The case with index `i` of the campaign seeded by `seed` (the same every time). */
export function drawCase(format: SeedFormat, seedCount: number, seed: number, i: number): FuzzCase {
  const [c] = fc.sample(fuzzCaseArbitrary(format, seedCount), { seed: mixSeed(seed, i), numRuns: 1 });
  return c;
}

/** The case's bytes: its seed file with its edits and mutations applied. */
export function applyCase(seeds: readonly Uint8Array[], c: FuzzCase): Uint8Array {
  let bytes = seeds[c.seedIndex];
  if (c.entry) bytes = withEntryMutated(bytes, c.entry);
  if (c.json) bytes = withJsonEdited(bytes, c.json);
  return c.mutations.reduce((b, m) => applyMutation(b, m), bytes);
}

function withEntryMutated(zip: Uint8Array, edit: NonNullable<FuzzCase["entry"]>): Uint8Array {
  let entries: [string, Uint8Array][];
  try {
    entries = Object.entries(unzipSync(zip));
  } catch {
    return zip; // a seed of the target that is not an archive (an .npy beside .npz seeds)
  }
  if (entries.length === 0) return zip;
  const k = Math.floor(edit.which * entries.length);
  entries[k][1] = edit.mutations.reduce<Uint8Array>((b, m) => applyMutation(b, m), entries[k][1]);
  return zipSync(Object.fromEntries(entries.map(([name, data]) => [name, [data, { level: edit.deflate ? 6 : 0 }]])));
}

const MAX_REPEAT_BYTES = 4 * 2 ** 20;

/** Copies stop at ~4 MB: a bigger file is a different test (throughput), not a hostile one. */
function copiesOf(value: string, times: number): number {
  return Math.max(1, Math.min(times, Math.floor(MAX_REPEAT_BYTES / (value.length + 1))));
}

const MARK = "\u0000fuzz-mark\u0000";

function withJsonEdited(bytes: Uint8Array, edits: readonly JsonEdit[]): Uint8Array {
  let textOut = new TextDecoder().decode(bytes);
  for (const edit of edits) {
    try {
      const doc: unknown = JSON.parse(textOut);
      const slots = jsonSlots(doc);
      if (slots.length === 0) break;
      const [parent, key] = slots[Math.floor(edit.at * slots.length)];
      textOut = editedText(doc, parent, key, edit);
    } catch {
      break; // an earlier edit made the text invalid, or too deep to re-serialise: keep it as is
    }
  }
  return new TextEncoder().encode(textOut);
}

type Container = Record<string, unknown> | unknown[];

/** Every (container, key) holding a value, breadth first; the root document is not a slot. */
function jsonSlots(doc: unknown): [Container, string | number][] {
  const out: [Container, string | number][] = [];
  const queue: unknown[] = [doc];
  while (queue.length > 0 && out.length < 100_000) {
    const v = queue.shift();
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), queue.push(x)));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) out.push([v as Container, k]), queue.push(x);
  }
  return out;
}

function editedText(doc: unknown, parent: Container, key: string | number, edit: JsonEdit): string {
  const at = parent as Record<string | number, unknown>;
  if (edit.op === "delete") {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete at[key];
    return JSON.stringify(doc);
  }
  const old = JSON.stringify(at[key]) ?? "null";
  at[key] = MARK;
  const replacement = edit.op === "replace" ? JSON_REPLACEMENTS[edit.value] : `[${Array(copiesOf(old, edit.times)).fill(old).join(",")}]`;
  return JSON.stringify(doc).replace(JSON.stringify(MARK), () => replacement);
}

function mixSeed(seed: number, i: number): number {
  // A 32-bit integer hash (Wang-style avalanche) so neighbouring cases do not share a stream.
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) | 0;
}

function applyMutation(b: Uint8Array, m: Mutation): Uint8Array {
  const pos = (f: number) => Math.floor(f * b.length);
  switch (m.kind) {
    case "flip":
      return withByte(b, pos(m.at), (x) => x ^ (1 << m.bit));
    case "byte":
      return withByte(b, pos(m.at), () => m.value);
    case "integer":
      return withInteger(b, pos(m.at), m.width, m.value, m.bigEndian);
    case "truncate":
      return b.subarray(0, pos(m.at));
    case "delete":
      return concat(b.subarray(0, pos(m.at)), b.subarray(pos(m.at) + m.length));
    case "insert":
      return concat(b.subarray(0, pos(m.at)), m.bytes, b.subarray(pos(m.at)));
    case "duplicate": {
      const from = pos(m.from);
      return concat(b.subarray(0, pos(m.to)), b.subarray(from, from + m.length), b.subarray(pos(m.to)));
    }
    case "number":
      return withNumberReplaced(b, m.which, m.text);
    case "repeat": {
      const run = new TextEncoder().encode(m.text.repeat(m.times));
      return concat(b.subarray(0, pos(m.at)), run, b.subarray(pos(m.at)));
    }
  }
}

function withByte(b: Uint8Array, at: number, f: (x: number) => number): Uint8Array {
  if (b.length === 0) return b;
  const out = new Uint8Array(b); // a copy: Buffer#slice (a seed may be a Buffer) would be a view
  out[at] = f(out[at]) & 0xff;
  return out;
}

function withInteger(b: Uint8Array, at: number, width: number, value: bigint, bigEndian: boolean): Uint8Array {
  const out = new Uint8Array(b); // a copy: Buffer#slice (a seed may be a Buffer) would be a view
  for (let k = 0; k < width && at + k < out.length; k++) {
    const byte = Number((value >> BigInt(8 * k)) & 0xffn);
    out[bigEndian ? at + width - 1 - k : at + k] = byte;
  }
  return out.length === b.length ? out : b;
}

/** Replaces the `which`-th (as a fraction of their count) run of ASCII digits with `text`. */
function withNumberReplaced(b: Uint8Array, which: number, text: string): Uint8Array {
  // Only the first 64 KiB are scanned: headers (npy dicts, JSON configs) live there.
  const end = Math.min(b.length, 65_536);
  const runs: [number, number][] = [];
  for (let i = 0; i < end; i++) {
    if (b[i] >= 0x30 && b[i] <= 0x39) {
      const start = i;
      while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
      runs.push([start, i]);
    }
  }
  if (runs.length === 0) return b;
  const [start, stop] = runs[Math.floor(which * runs.length)];
  return concat(b.subarray(0, start), new TextEncoder().encode(text), b.subarray(stop));
}

