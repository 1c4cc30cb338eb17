/**
 * Image sources: a folder (walked recursively), a text file listing image paths, or a .zip
 * archive. Each becomes a list of items whose bytes are read on demand, in a stable order, so
 * that feature rows, caches and random subsets are reproducible.
 *
 * Conventions, chosen to match the reference tools' file lists:
 * - Extensions: png, jpg, jpeg, webp, bmp, tif, tiff, case-insensitive (pytorch-fid's
 *   IMAGE_EXTENSIONS and clean-fid's EXTENSIONS, less the formats nobody generates: pgm, ppm).
 * - Order: by relative path ('/'-separated), compared by Unicode code point, which is what
 *   Python's `sorted()` over the paths does in clean-fid (`sorted(glob(f"{dir}/**\/*.{ext}",
 *   recursive=True))`).
 * - Hidden files and folders (names starting with ".") are skipped, as Python's glob skips them;
 *   in zips also `__MACOSX/` (macOS resource forks, which are not images).
 */
import { open, readFile, readdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { seededSubsetIndices } from "../random/mulberry32.js";
import { openZip, type ZipEntryInfo } from "./zip.js";

export interface ImageItem {
  /** Display path, relative to the source ('/'-separated). */
  name: string;
  /** Where the image is, for error messages: its file path, or `archive.zip:entry`. */
  location: string;
  read(): Promise<Uint8Array>;
}

export type ImageSourceKind = "folder" | "list" | "zip";

export interface ImageSource {
  kind: ImageSourceKind;
  items: ImageItem[];
  close(): Promise<void>;
}

export interface ImageSourceOptions {
  /** Keep a random subset of at most this many images (in source order). */
  limit?: number;
  /** Seed of the subset draw (default 0), so the same seed gives the same subset. */
  seed?: number;
}

export const IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"] as const;

export function hasImageExtension(name: string): boolean {
  const ext = path.extname(name).slice(1).toLowerCase();
  return (IMAGE_EXTENSIONS as readonly string[]).includes(ext);
}

export async function openImageSource(spec: string, opts: ImageSourceOptions = {}): Promise<ImageSource> {
  const st = await stat(spec).catch(() => null);
  if (!st) throw new DiffevalError("E_SOURCE", `${spec}: no such file or folder`);
  let source: ImageSource;
  if (st.isDirectory()) source = { kind: "folder", items: await folderItems(spec), close: async () => {} };
  else if (await isZipFile(spec)) source = await openZipSource(spec);
  else source = { kind: "list", items: await listItems(spec), close: async () => {} };
  if (source.items.length === 0) {
    await source.close();
    throw new DiffevalError("E_EMPTY_SOURCE", `${spec}: ${emptyReason(source.kind)}`);
  }
  return { ...source, items: subset(source.items, opts) };
}

function emptyReason(kind: ImageSourceKind): string {
  const exts = IMAGE_EXTENSIONS.map((e) => `.${e}`).join(", ");
  if (kind === "list") return "the list names no images (blank lines and # comments are skipped)";
  const where = kind === "folder" ? "folder (searched recursively" : "zip archive (searched";
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

function subset(items: ImageItem[], opts: ImageSourceOptions): ImageItem[] {
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

async function listItems(listFile: string): Promise<ImageItem[]> {
  const buf = await readFile(listFile);
  if (buf.subarray(0, 4096).includes(0)) {
    throw new DiffevalError(
      "E_SOURCE",
      `${listFile}: not a folder, a .zip archive or a text list of image paths (the file is binary)`,
    );
  }
  const base = path.dirname(listFile);
  const lines = buf.toString("utf8").replace(/^\uFEFF/, "").split(/\r?\n/);
  const items: ImageItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const entry = lines[i].trim();
    if (entry === "" || entry.startsWith("#")) continue;
    const file = path.resolve(base, entry);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) {
      const what = st ? "is not a file" : "no such file";
      throw new DiffevalError(
        "E_SOURCE",
        `${listFile}:${i + 1}: ${what}: '${entry}' (paths are relative to the list file's folder, ${base})`,
      );
    }
    items.push(fileItem(entry.split(path.sep).join("/"), file));
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
      .filter(isImageEntry)
      .map((entry) => ({ name: entry.name, location: `${file}:${entry.name}`, read: () => zip.read(entry) }));
    return { kind: "zip", items: sortedByName(items), close: () => zip.close() };
  } catch (e) {
    await zip.close();
    throw e;
  }
}

function isImageEntry(e: ZipEntryInfo): boolean {
  if (e.name.endsWith("/")) return false;
  const parts = e.name.split("/");
  if (parts[0] === "__MACOSX" || parts.some((p) => p.startsWith("."))) return false;
  return hasImageExtension(e.name);
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
