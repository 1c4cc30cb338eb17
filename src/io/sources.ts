/**
 * Image sources: a folder (walked recursively), a text file listing image paths, a .zip archive,
 * or tar archives (one .tar, a list file of .tar shards, or a pattern such as `data/shard-*.tar`,
 * see glob.ts). Each becomes a list of items whose bytes are read on demand, in a stable order, so
 * that feature rows, caches and random subsets are reproducible.
 *
 * Conventions, chosen to match the reference tools' file lists:
 * - Extensions: png, jpg, jpeg, webp, bmp, tif, tiff, case-insensitive (pytorch-fid's
 *   IMAGE_EXTENSIONS and clean-fid's EXTENSIONS, less the formats nobody generates: pgm, ppm).
 * - Order: by relative path ('/'-separated), compared by Unicode code point, which is what
 *   Python's `sorted()` over the paths does in clean-fid (`sorted(glob(f"{dir}/**\/*.{ext}",
 *   recursive=True))`).
 * - Hidden files and folders (names starting with ".") are skipped, as Python's glob skips them;
 *   in archives also `__MACOSX/` (macOS resource forks, which are not images).
 * - Archive entry names are used like paths in a folder: absolute and `..` names refuse the
 *   archive; `.` and empty segments are dropped (`./a.png` is `a.png`, as `tar -cf x.tar .` writes).
 */
import { open, readFile, readdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { isArrayFile, openArrayImages, type ArrayImageOptions } from "./array-source.js";
import { seededSubsetIndices } from "../random/mulberry32.js";
import { globFiles, isGlobPattern } from "./glob.js";
import { isTarFile, listTar, readTarEntry } from "./tar.js";
import { openZip } from "./zip.js";

export interface ImageItem {
  /** Display path, relative to the source ('/'-separated). */
  name: string;
  /** Where the image is, for error messages: its file path, or `archive.zip:entry`. */
  location: string;
  read(): Promise<Uint8Array>;
}

export type ImageSourceKind = "folder" | "list" | "zip" | "tar" | "array";

export interface ImageSource {
  kind: ImageSourceKind;
  items: ImageItem[];
  close(): Promise<void>;
}

/** `arrayKey` and `arrayRange` (io/array-source.ts) say which array of an .npz and what a float array's range is. */
export interface ImageSourceOptions extends ArrayImageOptions {
  /** Keep a random subset of at most this many images (in source order). */
  limit?: number;
  /** Seed of the subset draw (default 0), so the same seed gives the same subset. */
  seed?: number;
}

/** The image-choosing options alone, out of a command's options (every caller that opens a source passes these). */
export function imageSourceOptions(opts: ImageSourceOptions): ImageSourceOptions {
  const { limit, seed, arrayKey, arrayRange } = opts;
  return { limit, seed, arrayKey, arrayRange };
}

export const IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"] as const;

export function hasImageExtension(name: string): boolean {
  const ext = path.extname(name).slice(1).toLowerCase();
  return (IMAGE_EXTENSIONS as readonly string[]).includes(ext);
}

export async function openImageSource(spec: string, opts: ImageSourceOptions = {}): Promise<ImageSource> {
  const st = await stat(spec).catch(() => null);
  if (!st && !isGlobPattern(spec)) throw new DiffevalError("E_SOURCE", `${spec}: no such file or folder`);
  let source: ImageSource;
  if (!st) source = await openTarShards(await globShards(spec));
  else if (st.isDirectory()) source = { kind: "folder", items: await folderItems(spec), close: async () => {} };
  else if (await isArrayFile(spec)) source = { kind: "array", ...(await openArrayImages(spec, opts)) };
  else if (await isZipFile(spec)) source = await openZipSource(spec);
  else if (await isTarFile(spec)) source = { kind: "tar", items: await tarItems(spec), close: async () => {} };
  else source = await openListSource(spec);
  if (source.items.length === 0) {
    await source.close();
    throw new DiffevalError("E_EMPTY_SOURCE", `${spec}: ${emptyReason(source.kind)}`);
  }
  return { ...source, items: subset(source.items, opts) };
}

function emptyReason(kind: ImageSourceKind): string {
  const exts = IMAGE_EXTENSIONS.map((e) => `.${e}`).join(", ");
  if (kind === "list") return "the list names no images (blank lines and # comments are skipped)";
  const where = kind === "folder" ? "folder (searched recursively" : kind === "tar" ? "tar archive (searched" : `${kind} archive (searched`;
  return `no images in this ${where} for ${exts}, any letter case; hidden files skipped)`;
}

// ---------------------------------------------------------------------------------------------
// Order and subsets

/** Plain code-point order (UTF-8 byte order equals code-point order; JS `<` compares UTF-16). */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function sortedByName<T extends { name: string }>(items: T[]): T[] {
  const keyed = items.map((item) => ({ item, key: Buffer.from(item.name, "utf8") }));
  keyed.sort((x, y) => Buffer.compare(x.key, y.key));
  return keyed.map((k) => k.item);
}

/**
 * The `--limit N --seed S` subset of a source's items (or of a features file's rows, so that both
 * forms of one source give the same subset): at most `limit`, drawn by seed, kept in source order.
 */
export function subset<T>(items: T[], opts: Pick<ImageSourceOptions, "limit" | "seed">): T[] {
  const { limit, seed = 0 } = opts;
  if (limit === undefined) return items;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new DiffevalError("E_USAGE", `limit must be a positive integer, got ${limit}`);
  }
  if (!Number.isInteger(seed)) throw new DiffevalError("E_USAGE", `seed must be an integer, got ${seed}`);
  if (limit >= items.length) return items;
  return seededSubsetIndices(items.length, limit, seed).map((i) => items[i]);
}

// ---------------------------------------------------------------------------------------------
// Folder

async function folderItems(root: string): Promise<ImageItem[]> {
  const files: string[] = [];
  await walk(root, "", files, new Set([await realpath(root)]));
  return sortedByName(files.map((rel) => fileItem(rel, path.join(root, ...rel.split("/")))));
}

/** Collects image paths relative to root; follows symlinks, skipping folders already visited. */
async function walk(root: string, rel: string, out: string[], seen: Set<string>): Promise<void> {
  const dir = path.join(root, rel);
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SOURCE", `${dir}: cannot read folder (${e.code ?? e.message})`);
  });
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const childRel = rel ? `${rel}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      const st = await stat(full).catch(() => null); // a dangling link is ignored
      isDir = !!st?.isDirectory();
      isFile = !!st?.isFile();
    }
    if (isDir) {
      const real = await realpath(full);
      if (seen.has(real)) continue;
      seen.add(real);
      await walk(root, childRel, out, seen);
    } else if (isFile && hasImageExtension(entry.name)) {
      out.push(childRel);
    }
  }
}

function fileItem(name: string, file: string): ImageItem {
  return {
    name,
    location: file,
    read: async () => {
      const buf = await readFile(file).catch((e: NodeJS.ErrnoException) => {
        throw new DiffevalError("E_SOURCE", `${file}: cannot read (${e.code ?? e.message})`);
      });
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// List file

/** A list of images, or a list of tar shards when every line names a `.tar` file. */
async function openListSource(listFile: string): Promise<ImageSource> {
  const entries = await listEntries(listFile);
  const tars = entries.filter((e) => TAR_NAME.test(e.entry));
  if (tars.length > 0 && tars.length < entries.length) {
    const other = entries.find((e) => !TAR_NAME.test(e.entry))!;
    throw new DiffevalError(
      "E_SOURCE",
      `${listFile}:${other.line}: '${other.entry}' is not a .tar file, but other lines name tar shards; a list names either images or .tar shards`,
    );
  }
  if (tars.length > 0) return openTarShards(entries.map((e) => ({ name: e.entry.split(path.sep).join("/"), file: e.file })));
  return { kind: "list", items: entries.map((e) => fileItem(e.entry.split(path.sep).join("/"), e.file)), close: async () => {} };
}

interface ListEntry {
  /** 1-based line number, for messages. */
  line: number;
  /** The path as written. */
  entry: string;
  /** The path resolved against the list's folder. */
  file: string;
}

async function listEntries(listFile: string): Promise<ListEntry[]> {
  const buf = await readFile(listFile);
  if (buf.subarray(0, 4096).includes(0)) {
    throw new DiffevalError(
      "E_SOURCE",
      `${listFile}: not a folder, a .zip or .tar archive or a text list of image paths (the file is binary)`,
    );
  }
  const base = path.dirname(listFile);
  const lines = buf.toString("utf8").replace(/^\uFEFF/, "").split(/\r?\n/);
  const items: ListEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const entry = lines[i].trim();
    if (entry === "" || entry.startsWith("#")) continue;
    const file = path.resolve(base, entry);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) {
      const what = st ? "is not a file" : "no such file";
      throw new DiffevalError(
        "E_SOURCE",
        `${listFile}:${i + 1}: ${what}: '${entry.length > 200 ? `${entry.slice(0, 200)}...` : entry}' (paths are relative to the list file's folder, ${base})`,
      );
    }
    items.push({ line: i + 1, entry, file });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Zip archive: the central directory is read once; each entry is read and inflated on demand,
// so a large archive is never held in memory (APPNOTE.TXT, PKWARE's .ZIP specification).

async function isZipFile(file: string): Promise<boolean> {
  if (/\.zip$/i.test(file)) return true;
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt32LE(0) === SIG_LOCAL;
  } finally {
    await fh.close();
  }
}

/** Local file header signature: a zip archive not named .zip still starts with it. */
const SIG_LOCAL = 0x04034b50;

async function openZipSource(file: string): Promise<ImageSource> {
  const zip = await openZip(file, "E_SOURCE");
  try {
    for (const entry of zip.entries) assertSafeEntryName(entry.name, file);
    const items: ImageItem[] = zip.entries
      .filter((e) => isArchiveImageName(e.name))
      .map((entry) => ({ name: entry.name, location: `${file}:${entry.name}`, read: () => zip.read(entry) }));
    return { kind: "zip", items: sortedByName(items), close: () => zip.close() };
  } catch (e) {
    await zip.close();
    throw e;
  }
}

/** An archive entry that a folder walk would keep: an image extension, not hidden, not a macOS fork, not a folder. */
function isArchiveImageName(name: string): boolean {
  if (name.endsWith("/")) return false;
  const parts = name.split("/");
  if (parts[0] === "__MACOSX" || parts.some((p) => p.startsWith("."))) return false;
  return hasImageExtension(name);
}

/** Absolute names, drive letters and ".." segments have no business in an image archive. */
function assertSafeEntryName(name: string, file: string): void {
  const parts = name.split(/[\\/]/);
  const unsafe =
    name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name) || name.includes("\0") || parts.includes("..");
  if (unsafe) {
    throw new DiffevalError(
      "E_ZIP_UNSAFE",
      `${file}: entry '${name}' has an absolute or parent-relative path; refusing the archive (re-create it with relative entry names)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Tar archives: the headers are scanned once (tar.ts) and each image is one positioned read,
// so nothing is extracted and no archive is held in memory. Links are skipped, never followed: a
// link's target is another entry (or a file outside the archive), not bytes of its own.

const TAR_NAME = /\.tar$/i;

/** The images of one tar, named by their path inside it, in code-point order. */
async function tarItems(file: string): Promise<ImageItem[]> {
  const byName = new Map<string, ImageItem>();
  for (const entry of await listTar(file)) {
    assertSafeEntryName(entry.name, file);
    const name = normalizedEntryName(entry.name);
    if (entry.kind !== "file" || !isArchiveImageName(name)) continue;
    // A name stored twice: the later entry is what extracting the archive would leave on disk.
    byName.set(name, { name, location: `${file}:${name}`, read: () => readTarEntry(file, entry) });
  }
  return sortedByName([...byName.values()]);
}

/** `./a//b.png` as a folder path: `a/b.png` (empty and `.` segments dropped). */
function normalizedEntryName(name: string): string {
  return name
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .join("/");
}

interface TarShard {
  /** The shard's name in image names: `<name>/<path inside>`. */
  name: string;
  file: string;
}

/**
 * Several tars as one source, shard by shard in the order given, each image named
 * `<shard>/<path inside>` so that names stay unique (always, even for one shard: names must not
 * change when a shard is added to the set).
 */
async function openTarShards(shards: TarShard[]): Promise<ImageSource> {
  const seen = new Set<string>();
  const items: ImageItem[] = [];
  for (const shard of shards) {
    const key = path.resolve(shard.file);
    if (seen.has(key)) throw new DiffevalError("E_SOURCE", `${shard.file}: the same tar shard is named twice; name each shard once`);
    seen.add(key);
    for (const item of await tarItems(shard.file)) items.push({ ...item, name: `${shard.name}/${item.name}` });
  }
  return { kind: "tar", items, close: async () => {} };
}

/** The files a shard pattern matches, each a tar archive, named by their file name. */
async function globShards(pattern: string): Promise<TarShard[]> {
  const shards: TarShard[] = [];
  for (const file of await globFiles(pattern)) {
    if (!(await isTarFile(file))) {
      throw new DiffevalError("E_SOURCE", `${pattern}: matches ${file}, which is not a tar archive; narrow the pattern (e.g. end it in .tar)`);
    }
    shards.push({ name: path.basename(file), file });
  }
  return shards;
}
