/**
 * CSV files (RFC 4180) and the image-prompt pairs file of `diffeval clipscore`: comma-separated,
 * a header row, fields optionally in double quotes, `""` for a quote inside a quoted field, quoted
 * fields may hold commas and line breaks. Errors name the file and the line or record.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";

/**
 * RFC 4180 records of `text`: fields split on commas, records on CRLF or LF (a lone CR too);
 * double-quoted fields may contain commas, line breaks and `""` (one quote). A leading BOM is
 * dropped, and so is a final empty line. Malformed quoting is refused with E_PAIRS_FORMAT.
 */
export function parseCsv(text: string, name = "CSV"): string[][] {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let i = 0;
  let line = 1;
  let atFieldStart = true;
  const endField = (): void => {
    record.push(field);
    field = "";
    atFieldStart = true;
  };
  const endRecord = (): void => {
    endField();
    records.push(record);
    record = [];
  };
  // Fields are cut out with slice (runs between delimiters found by index), not built a character
  // at a time: `field += c` makes a chain of one node per character, 30+ bytes each and seconds
  // to flatten for a field of megabytes.
  while (i < s.length) {
    const c = s[i];
    if (atFieldStart && c === '"') {
      // Quoted field: up to the closing quote not followed by another quote.
      const startLine = line;
      const pieces: string[] = [];
      let from = i + 1;
      for (;;) {
        const q = s.indexOf('"', from);
        if (q < 0) throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${startLine}: a quoted field is never closed`);
        line += countNewlines(s, from, q);
        if (s[q + 1] === '"') {
          pieces.push(s.slice(from, q + 1)); // the text and one quote of the pair
          from = q + 2;
          continue;
        }
        pieces.push(s.slice(from, q));
        i = q + 1;
        break;
      }
      field = pieces.join("");
      atFieldStart = false;
      const next = s[i];
      if (i < s.length && next !== "," && next !== "\n" && next !== "\r") {
        throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${line}: unexpected ${JSON.stringify(next)} after a closing quote (write "" for a quote inside a quoted field)`);
      }
      continue;
    }
    if (c === ",") {
      endField();
      i++;
    } else if (c === "\r" || c === "\n") {
      endRecord();
      i += c === "\r" && s[i + 1] === "\n" ? 2 : 1;
      line++;
    } else {
      const end = unquotedEnd(s, i);
      if (s[end] === '"') throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${line}: a quote inside an unquoted field (quote the whole field and write "" for the quote)`);
      field = s.slice(i, end);
      atFieldStart = false;
      i = end;
    }
  }
  if (!atFieldStart || record.length > 0) endRecord();
  return records;
}

/** Where an unquoted field that starts at `i` ends: the next comma, line break or (refused) quote. */
function unquotedEnd(s: string, i: number): number {
  let j = i;
  for (; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x2c || c === 0x0a || c === 0x0d || c === 0x22) break;
  }
  return j;
}

/** "\n" characters in s[from, to): the line count of a quoted field's text. */
function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let j = from; j < to; j++) if (s.charCodeAt(j) === 0x0a) n++;
  return n;
}

export interface ImagePromptPair {
  /** The image path as the CSV writes it. */
  image: string;
  /** Resolved against the CSV's folder. */
  imagePath: string;
  prompt: string;
}

/**
 * The records of a CSV file with a header naming (at least) `columns`, in any order; blank lines
 * skipped; every record as wide as the header; at least one record. Values by column name, with
 * the record's number (1 = header) for messages.
 */
export async function readCsvTable<C extends string>(
  file: string,
  columns: readonly C[],
): Promise<{ record: number; values: Record<C, string> }[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new DiffevalError("E_PAIRS_FORMAT", `${file}: cannot read the pairs file (${(e as Error).message})`);
  }
  const rows = parseCsv(text, file).filter((r) => !(r.length === 1 && r[0] === ""));
  if (rows.length === 0) throw new DiffevalError("E_PAIRS_FORMAT", `${file}: empty; expected a header row '${columns.join(",")}' and one row per pair`);
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const at = columns.map((c) => header.indexOf(c));
  if (at.some((i) => i < 0)) {
    throw new DiffevalError("E_PAIRS_FORMAT", `${file}: the header must name the columns ${columns.map((c) => `'${c}'`).join(" and ")}, got ${JSON.stringify(rows[0])}`);
  }
  const records = rows.slice(1).map((row, r) => {
    if (row.length !== rows[0].length) {
      throw new DiffevalError("E_PAIRS_FORMAT", `${file}: record ${r + 2} has ${row.length} fields, the header ${rows[0].length}`);
    }
    return { record: r + 2, values: Object.fromEntries(columns.map((c, j) => [c, row[at[j]]])) as Record<C, string> };
  });
  if (records.length === 0) throw new DiffevalError("E_PAIRS_FORMAT", `${file}: no pairs after the header`);
  return records;
}

/** The `image,prompt` pairs of a CSV file (header required; blank lines skipped). */
export async function readPairsCsv(file: string): Promise<ImagePromptPair[]> {
  const base = path.dirname(path.resolve(file));
  return (await readCsvTable(file, ["image", "prompt"])).map(({ record, values: { image, prompt } }) => {
    if (image.trim() === "") throw new DiffevalError("E_PAIRS_FORMAT", `${file}: record ${record} has an empty image path`);
    return { image, imagePath: path.resolve(base, image), prompt };
  });
}
