/** JSON text -> value, with errors that name the file and say what was expected of it. */
import { DiffevalError, type ErrorCode } from "../errors.js";

/**
 * The deepest nesting of arrays and objects any JSON file diffeval reads may have. No legitimate
 * input nests beyond about 10 levels (a sweep's results.json: top, cells, cell, metrics, kid, ci95);
 * V8's JSON.parse itself copes with any depth, but everything that walks the value afterwards
 * (JSON.stringify, recursive checks) recurses once per level and overflows the stack near 10^4.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses `text` (read from `file`). A byte-order mark is dropped (editors on Windows add one);
 * an empty file, invalid JSON or JSON nested deeper than MAX_JSON_DEPTH is a DiffevalError with
 * `code` naming the file, and `hint` says what the file should have been.
 */
export function parseJsonText(text: string, file: string, code: ErrorCode, hint: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === "") throw new DiffevalError(code, `${file}: the file is empty; expected ${hint}`);
  const tooDeep = offsetBeyondDepth(body, MAX_JSON_DEPTH);
  if (tooDeep >= 0) {
    throw new DiffevalError(code, `${file}: arrays/objects nest deeper than ${MAX_JSON_DEPTH} levels (at character ${tooDeep}); expected ${hint}`);
  }
  try {
    return JSON.parse(body);
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, " ").slice(0, 200);
    throw new DiffevalError(code, `${file}: not valid JSON (${why}); expected ${hint}`);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * The offset of the first `[` or `{` that opens level `cap + 1`, or -1 when the text never nests
 * that deep. One linear pass: strings are skipped with indexOf (native, fast), so brackets inside
 * them do not count. Malformed text is left for JSON.parse to report.
 */
function offsetBeyondDepth(text: string, cap: number): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(text, i);
      if (i < 0) return -1;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > cap) return i;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return -1;
}

/** The offset of the `"` closing the string opened at `open` (-1: unterminated). A quote ends the
 * string when an even number of backslashes precedes it; each backslash run is counted once. */
function closingQuote(text: string, open: number): number {
  let j = text.indexOf('"', open + 1);
  while (j >= 0) {
    let slashes = 0;
    for (let k = j - 1; k > open && text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
  return -1;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const EXCERPT_CHARS = 40;

/**
 * How a JSON value is described in an error message: its type and a short excerpt. The excerpt is
 * built only as far as it is shown, so a 100 MB value costs 40 characters and a deeply nested one
 * cannot overflow the stack (each level writes a bracket, so the walk stops within 41 levels).
 */
export function describeJson(v: unknown): string {
  if (v === undefined) return "missing";
  const text = jsonExcerpt(v, EXCERPT_CHARS + 1);
  const kind = v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`;
  return `${kind} (${text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS - 3)}...` : text})`;
}

/** The first `limit` characters of the value written as JSON (numbers as JavaScript writes them,
 * so an overflowed 1e400 shows as Infinity rather than JSON.stringify's null). */
function jsonExcerpt(v: unknown, limit: number): string {
  let text = "";
  const full = (s: string): boolean => {
    text += s.slice(0, limit - text.length);
    return text.length >= limit;
  };
  const walk = (x: unknown): boolean => {
    if (Array.isArray(x)) {
      if (full("[")) return true;
      for (let i = 0; i < x.length; i++) if ((i > 0 && full(",")) || walk(x[i])) return true;
      return full("]");
    }
    if (isPlainObject(x)) {
      if (full("{")) return true;
      let first = true;
      for (const key in x) {
        if (!Object.hasOwn(x, key)) continue;
        if ((!first && full(",")) || full(`${JSON.stringify(key.slice(0, limit))}:`) || walk(x[key])) return true;
        first = false;
      }
      return full("}");
    }
    return full(typeof x === "string" ? JSON.stringify(x.slice(0, limit)) : String(x));
  };
  walk(v);
  return text;
}
