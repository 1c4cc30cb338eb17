/** JSON text -> value, with errors that name the file and say what was expected of it. */
import { DiffevalError, type ErrorCode } from "../errors.js";

/**
 * Parses `text` (read from `file`). A byte-order mark is dropped (editors on Windows add one);
 * an empty file or invalid JSON is a DiffevalError with `code` naming the file, and `hint` says
 * what the file should have been.
 */
export function parseJsonText(text: string, file: string, code: ErrorCode, hint: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === "") throw new DiffevalError(code, `${file}: the file is empty; expected ${hint}`);
  try {
    return JSON.parse(body);
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, " ").slice(0, 200);
    throw new DiffevalError(code, `${file}: not valid JSON (${why}); expected ${hint}`);
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** How a JSON value is described in an error message: its type and a short excerpt. */
export function describeJson(v: unknown): string {
  if (v === undefined) return "missing";
  const text = JSON.stringify(v) ?? String(v);
  const kind = v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`;
  return `${kind} (${text.length > 40 ? `${text.slice(0, 37)}...` : text})`;
}
