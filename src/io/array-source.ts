/**
 * Image arrays as an image source: a `.npy`, or an array inside an `.npz`, holding N images, as
 * guided-diffusion / ADM saves samples (`np.savez(out_path, arr)`: `arr_0`, uint8, N x H x W x 3,
 * scripts/image_sample.py) and its reference batches (`VIRTUAL_imagenet256_labeled.npz`: `arr_0`
 * beside `mu`/`sigma`; pipeline/resolve-source.ts decides which of the two such a file is).
 *
 * The array is read as a stream of rows (one image each), never whole:
 * - `.npy` and stored `.npz` entries (np.savez): each row is one positioned read of its bytes.
 * - deflated entries (np.savez_compressed): one sequential inflater over the entry serves rows in
 *   order, keeping at most one input chunk's output (a fixed bound, see INFLATE_CHUNK_BYTES) plus
 *   the row; a request for an earlier row restarts it from the entry's first byte. The CRC-32 and
 *   the inflated size are checked when the stream has been read to its end.
 * - Fortran order (numpy writes `fortran_order: True` for an F-contiguous array, e.g. `np.save(f, x.T)`
 *   of a transposed one): image n is then strided across the whole array (element (n, a, b, c) at
 *   n + N * (a + d1 * (b + d2 * c)), numpy.lib.format), so it is read in blocks of consecutive images,
 *   one positioned read per (a, b, c) cell of a block, within FORTRAN_BLOCK_BYTES. A deflated entry
 *   cannot be read like that without inflating the entry once per block, so F-order in a deflated
 *   entry is refused (E_NPY_FORMAT) with the one-line fix (re-save C-contiguous).
 *
 * Layouts: rank 4, uint8, float32 or float64 (npy.ts reads no other dtype), N x H x W x C or
 * N x C x H x W with C = 1, 3 or 4. Which axis holds the channels: the last when it is 1, 3 or 4,
 * else the second when it is; a shape where both could be ([N, 3, 3, 3], [N, 4, 64, 1]) is read as
 * N x H x W x C, the layout ADM and every NumPy/PIL pipeline write (NCHW is torch's tensor order,
 * which has to be transposed by hand to be saved as an image array anyway).
 * Pixels become RGB as Pillow's `convert("RGB")` makes them (io/decode.ts): C = 1 is replicated to
 * the three channels (Convert.c `l2rgb`), C = 4 drops alpha (`rgba2rgb` copies the colour bytes).
 * Float arrays need an explicit range (`--array-range 0,1 | -1,1 | 0,255`): guessing it silently
 * changes FID. A float v becomes the byte (v - lo) * 255 / (hi - lo), clamped to [0, 255] and
 * rounded half to even (numpy's `np.rint`/`np.round`), so uint8 -> [-1, 1] float32 -> uint8 gives
 * back every byte: float32 keeps x / 127.5 - 1 within 2^-24, i.e. within 1e-5 of the integer.
 *
 * How a row reaches the decode/resize path: its `read()` returns an uncompressed 24-bit BMP of the
 * row (top-down, BGR, rows padded to 4 bytes: Microsoft's BITMAPINFOHEADER layout). The extractor
 * hashes those bytes for the feature cache and its workers decode them with io/bmp.ts, exactly
 * and in JS; the same pixels always give the same bytes, so the cache is keyed by pixels.
 *
 * Untrusted files: the npy header (npy.ts readNpyHeader) and the zip records (zip.ts) are checked
 * before anything is read; the shape's bytes against the file (or the entry's declared size, which
 * zip.ts bounds by its compressed bytes); a row against the decoder's pixel limit; the image count
 * against MAX_ARRAY_IMAGES. Every allocation is one row, one bounded block or one inflate chunk.
 */
import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { Inflate } from "fflate";
import { DiffevalError, isDiffevalError } from "../errors.js";
import { DEFAULT_MAX_PIXELS } from "./decode.js";
import { MAX_NPY_PREAMBLE_BYTES, readNpyHeader, type NpyHeader } from "./npy.js";
import { arrayKey, assertEntryFitsHeader } from "./npz.js";
import { openZip, zipFromBytes, type ZipEntryInfo } from "./zip.js";
import { readAt } from "./read-at.js";

/** The value range a float array's pixels span: [lo, hi] maps to [0, 255]. */
export type ArrayRange = readonly [lo: number, hi: number];

/** The ranges `--array-range` accepts: those the field's tools write (PIL/255, diffusion [-1, 1], raw 0..255). */
export const ARRAY_RANGES: Readonly<Record<string, ArrayRange>> = { "0,1": [0, 1], "-1,1": [-1, 1], "0,255": [0, 255] };

export interface ArrayImageOptions {
  /** Which array of an .npz holds the images (default `arr_0`, else the only image-shaped one). */
  arrayKey?: string;
  /** The range of a float array's values; required for float arrays, refused otherwise unless 0..255. */
  arrayRange?: ArrayRange;
}

/** One image of the array: `name` is `file.npz#arr_0[i]` (or `file.npy[i]`), stable across runs. */
export interface ArrayImageItem {
  name: string;
  location: string;
  read(): Promise<Uint8Array>;
}

export interface ArrayImages {
  items: ArrayImageItem[];
  /** The array's layout, as read from its header. */
  layout: ImageLayout;
  close(): Promise<void>;
}

export interface ImageLayout {
  n: number;
  height: number;
  width: number;
  /** 1, 3 or 4. */
  channels: number;
  /** N x C x H x W rather than N x H x W x C. */
  channelsFirst: boolean;
}

/**
 * More images than one array source holds (2^21, above ImageNet's 1.28M training images): each
 * image costs an item here and 12 KB of features in the extractor, so a small, highly
 * compressible file cannot ask for billions of them. Split a larger array.
 */
export const MAX_ARRAY_IMAGES = 2 ** 21;

/** Compressed bytes handed to the inflater at a time: its output per step is at most 1032 times this (deflate's ratio). */
export const INFLATE_CHUNK_BYTES = 16 * 1024;

/** The most bytes a block of Fortran-order images holds (at least one image, whatever its size). */
export const FORTRAN_BLOCK_BYTES = 32 * 2 ** 20;

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04]; // PK\3\4, a local file header (an .npz is a zip)

/** `--array-range` text -> its range; E_USAGE naming the accepted ones otherwise. */
export function parseArrayRange(text: string): ArrayRange {
  const range = ARRAY_RANGES[text.replace(/\s+/g, "")];
  if (!range) {
    throw new DiffevalError("E_USAGE", `--array-range must be one of ${Object.keys(ARRAY_RANGES).join(" | ")} (the range of the float array's values), got '${text}'`);
  }
  return range;
}

/** A file the array source reads: named .npy/.npz, or starting with numpy's .npy magic. */
export async function isArrayFile(file: string): Promise<boolean> {
  if (/\.(npy|npz)$/i.test(file)) return true;
  return startsWith(await fileHead(file, NPY_MAGIC.length), NPY_MAGIC);
}

/** The images of an .npy or .npz file on disk, read row by row on demand. */
export async function openArrayImages(file: string, opts: ArrayImageOptions = {}): Promise<ArrayImages> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (e) {
    throw new DiffevalError("E_SOURCE", `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const { size } = await fh.stat();
    const bytes = fileBytes(fh, size);
    const npz = /\.npz$/i.test(file) || startsWith(await bytes.read(0, ZIP_MAGIC.length), ZIP_MAGIC);
    const located = npz ? await locateNpzArray(file, await fileZip(file), opts) : await locateNpyArray(file, bytes);
    return arrayImages(located, bytes, opts);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * The images of an .npy or .npz held in memory (`name` stands for its path): the same reader over
 * a buffer, for tests and fuzzing. Every row can be read with `items[i].read()`.
 */
export async function arrayImagesFromBytes(buf: Uint8Array, name: string, opts: ArrayImageOptions = {}): Promise<ArrayImages> {
  const bytes = memoryBytes(buf);
  const located = startsWith(buf, ZIP_MAGIC)
    ? await locateNpzArray(name, memoryZip(buf, name), opts)
    : await locateNpyArray(name, bytes);
  return arrayImages(located, bytes, opts);
}

// ---------------------------------------------------------------------------------------------
// Bytes: positioned reads from a file or a buffer

interface ByteSource {
  size: number;
  /** `length` bytes at `position` (fewer only if the file shrank). */
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

function fileBytes(fh: FileHandle, size: number): ByteSource {
  return {
    size,
    read: (position, length) => readAt(fh, position, length),
    close: () => fh.close(),
  };
}

function memoryBytes(buf: Uint8Array): ByteSource {
  return { size: buf.length, read: async (position, length) => buf.subarray(position, position + length), close: async () => {} };
}

async function fileHead(file: string, length: number): Promise<Uint8Array> {
  const fh = await open(file, "r").catch(() => undefined);
  if (!fh) return new Uint8Array(0);
  try {
    return await fileBytes(fh, length).read(0, length);
  } finally {
    await fh.close();
  }
}

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** The parts of zip.ts's readers the npz path needs, over a file or a buffer. */
interface ZipDirectory {
  entries: ZipEntryInfo[];
  head(entry: ZipEntryInfo, length: number): Promise<Uint8Array>;
  dataStart(entry: ZipEntryInfo): Promise<number>;
  close(): Promise<void>;
}

async function fileZip(file: string): Promise<ZipDirectory> {
  return openZip(file, "E_NPZ_FORMAT");
}

function memoryZip(buf: Uint8Array, name: string): ZipDirectory {
  const zip = zipFromBytes(buf, name, "E_NPZ_FORMAT");
  return {
    entries: zip.entries,
    head: async (entry, length) => zip.head(entry, length),
    dataStart: async (entry) => zip.dataStart(entry),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------
// Finding the array

/** An array found in a file: its header and where its data bytes are. */
interface LocatedArray {
  /** The file (and key) in errors: `file.npz#arr_0`, or `file.npy`. */
  where: string;
  /** The same for image names: the file's base name. */
  label: string;
  header: NpyHeader;
  /** Where the array's first data byte is: in the file, or (deflated) in the entry's inflated stream. */
  data: { kind: "direct"; offset: number } | { kind: "inflated"; entry: ZipEntryInfo; entryStart: number; offset: number };
}

async function locateNpyArray(file: string, bytes: ByteSource): Promise<LocatedArray> {
  const header = readNpyHeader(await bytes.read(0, Math.min(bytes.size, MAX_NPY_PREAMBLE_BYTES)), file);
  imageLayout(header, file); // a wrong rank or a too-large image is named as such, before the size
  const available = bytes.size - header.dataStart;
  if (header.dataBytes > available) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${file}: truncated .npy file: shape (${header.shape.join(", ")}) of ${header.dtype} needs ${header.dataBytes} data bytes, the file holds ${Math.max(0, available)}`,
    );
  }
  return { where: file, label: path.basename(file), header, data: { kind: "direct", offset: header.dataStart } };
}

async function locateNpzArray(file: string, zip: ZipDirectory, opts: ArrayImageOptions): Promise<LocatedArray> {
  try {
    const { key, entry, header } = await chosenEntry(file, zip, opts);
    const entryStart = await zip.dataStart(entry);
    const where = `${file}#${key}`;
    const label = `${path.basename(file)}#${key}`;
    if (entry.method === 0) return { where, label, header, data: { kind: "direct", offset: entryStart + header.dataStart } };
    if (header.fortranOrder && header.shape.length > 1) {
      throw new DiffevalError(
        "E_NPY_FORMAT",
        `${where}: a Fortran-order array in a deflated .npz entry cannot be read image by image (each image is spread over the whole entry); re-save it C-contiguous (np.savez_compressed(f, arr_0=np.ascontiguousarray(x))) or uncompressed (np.savez)`,
      );
    }
    return { where, label, header, data: { kind: "inflated", entry, entryStart, offset: header.dataStart } };
  } finally {
    await zip.close();
  }
}

interface ChosenEntry {
  key: string;
  entry: ZipEntryInfo;
  header: NpyHeader;
}

/** `--array-key`, else `arr_0`, else the only image-shaped array; an error listing keys and shapes otherwise. */
async function chosenEntry(file: string, zip: ZipDirectory, opts: ArrayImageOptions): Promise<ChosenEntry> {
  const entries = zip.entries.filter((e) => !e.name.endsWith("/"));
  const byKey = new Map(entries.map((e) => [arrayKey(e.name), e]));
  const headerOf = async (key: string, entry: ZipEntryInfo): Promise<NpyHeader> => {
    const head = await zip.head(entry, MAX_NPY_PREAMBLE_BYTES);
    assertEntryFitsHeader(head, entry, `${file}#${key}`);
    return readNpyHeader(head, `${file}#${key}`);
  };
  const wanted = opts.arrayKey ?? (byKey.has("arr_0") ? "arr_0" : undefined);
  if (wanted !== undefined) {
    const entry = byKey.get(wanted);
    if (entry) return { key: wanted, entry, header: await headerOf(wanted, entry) };
    const listing = await keyListing(byKey, headerOf);
    throw new DiffevalError("E_USAGE", `${file}: --array-key '${wanted}' names no array in this .npz; it holds ${listing.text}`);
  }
  const listing = await keyListing(byKey, headerOf);
  if (listing.images.length === 1) return listing.images[0];
  if (listing.images.length === 0) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${file}: no image array (N x H x W x C or N x C x H x W, C = 1, 3 or 4) in this .npz; it holds ${listing.text}`,
    );
  }
  throw new DiffevalError("E_USAGE", `${file}: several arrays could be the images; choose one with --array-key: ${listing.text}`);
}

/** Every array's key, shape and dtype (or why its header is unreadable), and those that look like images. */
async function keyListing(
  byKey: Map<string, ZipEntryInfo>,
  headerOf: (key: string, entry: ZipEntryInfo) => Promise<NpyHeader>,
): Promise<{ text: string; images: ChosenEntry[] }> {
  const parts: string[] = [];
  const images: ChosenEntry[] = [];
  for (const [key, entry] of byKey) {
    try {
      const header = await headerOf(key, entry);
      parts.push(`'${key}' (${header.shape.join(" x ")}, ${header.dtype})`);
      if (channelAxis(header.shape) !== undefined) images.push({ key, entry, header });
    } catch (e) {
      if (!isDiffevalError(e)) throw e;
      parts.push(`'${key}' (unreadable: ${e.code})`);
    }
  }
  return { text: parts.join(", ") || "no arrays", images };
}

/** 3 for N x H x W x C, 1 for N x C x H x W, undefined when no axis can be the channels. NHWC wins a tie. */
function channelAxis(shape: readonly number[]): 1 | 3 | undefined {
  if (shape.length !== 4) return undefined;
  const isChannels = (d: number) => d === 1 || d === 3 || d === 4;
  if (isChannels(shape[3])) return 3;
  if (isChannels(shape[1])) return 1;
  return undefined;
}

/** The images' layout from the header; every refusal names the file. */
export function imageLayout(header: Pick<NpyHeader, "shape">, where: string): ImageLayout {
  const { shape } = header;
  const axis = channelAxis(shape);
  if (axis === undefined) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${where}: shape (${shape.join(", ")}) is not an image array: expected N x H x W x C or N x C x H x W with C = 1, 3 or 4 (for grayscale N x H x W, save x[..., None])`,
    );
  }
  const [n, height, width, channels] = axis === 3 ? shape : [shape[0], shape[2], shape[3], shape[1]];
  if (n === 0) throw new DiffevalError("E_EMPTY_SOURCE", `${where}: the array holds no images (shape (${shape.join(", ")}))`);
  if (height === 0 || width === 0) throw new DiffevalError("E_NPY_FORMAT", `${where}: images of ${height} x ${width} pixels (shape (${shape.join(", ")})) hold nothing`);
  if (height * width > DEFAULT_MAX_PIXELS) {
    throw new DiffevalError(
      "E_IMAGE_TOO_LARGE",
      `${where}: every image is ${width} x ${height} = ${height * width} pixels, more than the decoder's limit of ${DEFAULT_MAX_PIXELS} (Pillow's decompression-bomb threshold)`,
    );
  }
  if (n > MAX_ARRAY_IMAGES) {
    throw new DiffevalError("E_SOURCE", `${where}: ${n} images in one array, more than the ${MAX_ARRAY_IMAGES} one source reads; split the array`);
  }
  return { n, height, width, channels, channelsFirst: axis === 1 };
}

// ---------------------------------------------------------------------------------------------
// Rows

/** Reads image `i`'s raw bytes (C order over the image's own three axes). */
type RowReader = (i: number) => Promise<Uint8Array>;

function arrayImages(located: LocatedArray, bytes: ByteSource, opts: ArrayImageOptions): ArrayImages {
  const { header, where, label } = located;
  const layout = imageLayout(header, where);
  const toByte = byteConverter(header.dtype, opts.arrayRange, where);
  const itemSize = header.dataBytes / header.count;
  const rowBytes = (header.count / layout.n) * itemSize;
  const readRow = rowReader(located, bytes, rowBytes, itemSize);
  const items: ArrayImageItem[] = new Array(layout.n);
  for (let i = 0; i < layout.n; i++) {
    const location = `${where}[${i}]`;
    items[i] = { name: `${label}[${i}]`, location, read: async () => rowBmp(await readRow(i), layout, header.dtype, toByte, location) };
  }
  return { items, layout, close: () => bytes.close() };
}

function rowReader(located: LocatedArray, bytes: ByteSource, rowBytes: number, itemSize: number): RowReader {
  const { data, header, where } = located;
  if (data.kind === "inflated") {
    const stream = new InflatedEntry(bytes, data.entry, data.entryStart);
    return (i) => stream.range(data.offset + i * rowBytes, rowBytes, `${where}[${i}]`);
  }
  if (header.fortranOrder && header.shape.length > 1) return fortranRows(bytes, data.offset, header.shape, itemSize, where);
  return async (i) => {
    const row = await bytes.read(data.offset + i * rowBytes, rowBytes);
    if (row.length < rowBytes) throw new DiffevalError("E_NPY_FORMAT", `${where}[${i}]: the file ends inside this image (it changed while being read?)`);
    return row;
  };
}

/**
 * Fortran-order rows: blocks of consecutive images, each block one positioned read per cell of the
 * image (the cell's values for all the block's images lie side by side), turned into C order.
 */
function fortranRows(bytes: ByteSource, offset: number, shape: readonly number[], itemSize: number, where: string): RowReader {
  const [n, d1, d2, d3] = shape;
  const cells = d1 * d2 * d3;
  const rowBytes = cells * itemSize;
  const perBlock = Math.max(1, Math.floor(FORTRAN_BLOCK_BYTES / rowBytes));
  let block: { start: number; count: number; bytes: Uint8Array } | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const load = async (start: number) => {
    const count = Math.min(perBlock, n - start);
    const run = count * itemSize;
    const buf = new Uint8Array(cells * run);
    for (let q = 0; q < cells; q++) {
      const got = await bytes.read(offset + (q * n + start) * itemSize, run);
      if (got.length < run) throw new DiffevalError("E_NPY_FORMAT", `${where}[${start}]: the file ends inside this image (it changed while being read?)`);
      buf.set(got, q * run);
    }
    return { start, count, bytes: buf };
  };
  const row = async (i: number): Promise<Uint8Array> => {
    if (!block || i < block.start || i >= block.start + block.count) block = await load(i);
    const out = new Uint8Array(rowBytes);
    const j = i - block.start;
    const run = block.count * itemSize;
    // Fortran cell q = a + d1 * (b + d2 * c) holds element (a, b, c), C index (a * d2 + b) * d3 + c.
    let q = 0;
    for (let c = 0; c < d3; c++) {
      for (let b = 0; b < d2; b++) {
        for (let a = 0; a < d1; a++, q++) {
          const from = q * run + j * itemSize;
          out.set(block.bytes.subarray(from, from + itemSize), ((a * d2 + b) * d3 + c) * itemSize);
        }
      }
    }
    return out;
  };
  // Rows are asked for concurrently (the extractor reads ahead): one block load at a time.
  return (i) => {
    const p = queue.then(() => row(i));
    queue = p.catch(() => {});
    return p;
  };
}

/**
 * One deflated entry read front to back by a single streaming inflater: `range` hands out the
 * bytes of the stream in order, dropping what lies before the range asked for; asking for bytes
 * already dropped restarts the inflater from the entry's start. Requests run one at a time.
 */
class InflatedEntry {
  private inflater!: Inflate;
  /** Inflated bytes not yet handed out or dropped, starting at stream offset `pendingStart`. */
  private pending: Uint8Array[] = [];
  private pendingStart = 0;
  private pendingBytes = 0;
  /** Compressed bytes pushed so far; inflated bytes produced so far, and their CRC-32. */
  private fed = 0;
  private produced = 0;
  private crc = 0;
  private ended = false;
  private broken = false;
  /** The row being read, named in errors (a damaged stream is found while reading some row). */
  private row = "";
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly bytes: ByteSource,
    private readonly entry: ZipEntryInfo,
    private readonly entryStart: number,
  ) {
    this.restart();
  }

  range(offset: number, length: number, row: string): Promise<Uint8Array> {
    const p = this.queue.then(() => this.take(offset, length, row));
    this.queue = p.catch(() => {});
    return p;
  }

  private restart(): void {
    this.inflater = new Inflate((chunk, final) => this.collect(chunk, final));
    this.pending = [];
    this.pendingStart = 0;
    this.pendingBytes = 0;
    this.fed = 0;
    this.produced = 0;
    this.crc = 0;
    this.ended = false;
    this.broken = false;
  }

  private async take(offset: number, length: number, row: string): Promise<Uint8Array> {
    if (this.broken || offset < this.pendingStart) this.restart();
    this.row = row;
    try {
      this.drop(offset);
      while (this.pendingStart + this.pendingBytes < offset + length) {
        if (this.ended) {
          throw new DiffevalError(
            "E_NPZ_FORMAT",
            `${row}: the deflated entry ends after ${this.produced} bytes, inside this image (it declares ${this.entry.size}); the file is truncated or damaged`,
          );
        }
        await this.feed();
        this.drop(offset);
      }
      return this.copyOut(length);
    } catch (e) {
      this.broken = true;
      throw e;
    }
  }

  /** Pushes the next compressed chunk; the inflater's output arrives in `collect`. */
  private async feed(): Promise<void> {
    const row = this.row;
    const n = Math.min(INFLATE_CHUNK_BYTES, this.entry.compressedSize - this.fed);
    const chunk = await this.bytes.read(this.entryStart + this.fed, n);
    if (chunk.length < n) throw new DiffevalError("E_NPZ_FORMAT", `${row}: the file ends inside the compressed entry (it changed while being read?)`);
    this.fed += n;
    try {
      this.inflater.push(chunk, this.fed >= this.entry.compressedSize);
    } catch (e) {
      if (isDiffevalError(e)) throw e;
      throw new DiffevalError("E_NPZ_FORMAT", `${row}: the deflated entry does not inflate (${(e as Error).message}); the file is damaged`);
    }
  }

  private collect(chunk: Uint8Array, final: boolean): void {
    this.produced += chunk.length;
    if (this.produced > this.entry.size) {
      throw new DiffevalError("E_NPZ_FORMAT", `${this.row}: the deflated entry inflates to more than the ${this.entry.size} bytes it declares; the file is damaged`);
    }
    this.crc = crc32(chunk, this.crc);
    if (chunk.length > 0) this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (!final) return;
    this.ended = true;
    if (this.produced !== this.entry.size || this.crc !== this.entry.crc) {
      const what = this.produced !== this.entry.size ? `inflates to ${this.produced} bytes, not the ${this.entry.size} it declares` : "fails its CRC-32 check";
      throw new DiffevalError("E_NPZ_FORMAT", `${this.row}: the deflated entry ${what}; the file is damaged`);
    }
  }

  /** Forgets the pending bytes before stream offset `offset`. */
  private drop(offset: number): void {
    while (this.pending.length > 0 && this.pendingStart < offset) {
      const first = this.pending[0];
      const skip = Math.min(first.length, offset - this.pendingStart);
      if (skip === first.length) this.pending.shift();
      else this.pending[0] = first.subarray(skip);
      this.pendingStart += skip;
      this.pendingBytes -= skip;
    }
  }

  /** The first `length` pending bytes, copied out and consumed. */
  private copyOut(length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const first = this.pending[0];
      const n = Math.min(first.length, length - done);
      out.set(first.subarray(0, n), done);
      done += n;
      if (n === first.length) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    }
    this.pendingStart += length;
    this.pendingBytes -= length;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Pixels -> BMP

type ByteConverter = (v: number, location: string) => number;

/** How one array value becomes a byte: uint8 as is; a float through `range` (required). */
function byteConverter(dtype: NpyHeader["dtype"], range: ArrayRange | undefined, where: string): ByteConverter {
  const choices = Object.keys(ARRAY_RANGES).join(" | ");
  if (dtype === "|u1") {
    if (range && (range[0] !== 0 || range[1] !== 255)) {
      throw new DiffevalError("E_USAGE", `${where}: --array-range ${range.join(",")} is for float arrays; this array is uint8, whose values are 0..255 already`);
    }
    return (v) => v;
  }
  if (!range) {
    throw new DiffevalError(
      "E_USAGE",
      `${where}: a ${dtype === "<f4" ? "float32" : "float64"} image array needs --array-range ${choices} (the range its values span); diffeval does not guess it, as a wrong guess silently changes FID`,
    );
  }
  const [lo, hi] = range;
  const scale = 255 / (hi - lo);
  return (v, location) => {
    if (Number.isNaN(v)) throw new DiffevalError("E_NONFINITE", `${location}: the image holds a NaN pixel value; fix the array (or drop the image)`);
    return roundHalfEven(Math.min(255, Math.max(0, (v - lo) * scale)));
  };
}

/** Round half to even, numpy's np.rint (IEEE 754's default rounding). */
export function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const frac = v - floor;
  if (frac !== 0.5) return frac < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

const BMP_HEADER_BYTES = 54;

/** A row's pixels as a top-down 24-bit BMP: channel 0/1/2 as R/G/B, grey replicated, alpha dropped. */
function rowBmp(raw: Uint8Array, layout: ImageLayout, dtype: NpyHeader["dtype"], toByte: ByteConverter, location: string): Uint8Array {
  const values = dtype === "|u1" ? raw : dtype === "<f4" ? new Float32Array(new Uint8Array(raw).buffer) : new Float64Array(new Uint8Array(raw).buffer);
  const { width, height, channels, channelsFirst } = layout;
  const xStep = channelsFirst ? 1 : channels;
  const yStep = width * xStep;
  const cStep = channelsFirst ? width * height : 1;
  const green = channels === 1 ? 0 : cStep;
  const blue = channels === 1 ? 0 : 2 * cStep;
  const stride = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(BMP_HEADER_BYTES + stride * height);
  writeBmpHeader(out, width, height, stride);
  for (let y = 0; y < height; y++) {
    let o = BMP_HEADER_BYTES + y * stride;
    let p = y * yStep;
    for (let x = 0; x < width; x++, p += xStep, o += 3) {
      out[o] = toByte(values[p + blue], location);
      out[o + 1] = toByte(values[p + green], location);
      out[o + 2] = toByte(values[p], location);
    }
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** BITMAPFILEHEADER + BITMAPINFOHEADER, 24 bits, uncompressed, negative height = top-down rows. */
function writeBmpHeader(out: Buffer, width: number, height: number, stride: number): void {
  out.write("BM", 0, "latin1");
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(BMP_HEADER_BYTES, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(-height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * height, 34);
}
