/**
 * Shard patterns: a path whose last segment holds wildcards (`data/shard-*.tar`), matched against
 * the files of its folder. Node 20 has no fs.glob, and a source needs only this much of one:
 * - `*` any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!abc]` (or `[^abc]`) one
 *   character of (or not of) a set, as in POSIX shell patterns (XCU 2.13.1); an unclosed `[` is
 *   itself. There is no escaping and no `**`.
 * - Only the last segment may hold wildcards: shards of one set live in one folder, and a
 *   recursive walk would make the order and the set harder to see.
 * - As in the shell, a leading '.' must be matched explicitly, so hidden files stay out.
 * Why a glob rather than webdataset's `{000000..000999}` brace ranges: the shell and `ls` use the
 * same syntax (what the pattern matches can be checked with `ls data/shard-*.tar`), and a set need
 * not be numbered; a set that must be exact (a missing shard an error) is a list file.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";

const MAGIC = /[*?[]/;

/** Whether `spec` reads as a pattern (a wildcard in its last segment). */
export function isGlobPattern(spec: string): boolean {
  return MAGIC.test(path.basename(spec));
}

/** The regular files (symbolic links followed) matching the pattern, in code-point order of their names. */
export async function globFiles(pattern: string): Promise<string[]> {
  const dir = path.dirname(pattern);
  if (MAGIC.test(dir)) {
    throw new DiffevalError("E_SOURCE", `${pattern}: only the last path segment may hold wildcards (*, ?, [...]); put the shards in one folder`);
  }
  const re = globSegmentRegExp(path.basename(pattern));
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SOURCE", `${pattern}: cannot read the folder ${dir} (${e.code ?? e.message})`);
  });
  const matched = names.filter((n) => re.test(n)).sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
  const files: string[] = [];
  for (const name of matched) {
    const full = path.join(dir, name);
    if ((await stat(full).catch(() => null))?.isFile()) files.push(full);
  }
  if (files.length === 0) throw new DiffevalError("E_SOURCE", `${pattern}: no file matches this pattern (check it with \`ls ${pattern}\`)`);
  return files;
}

/** A regular expression that matches a whole file name exactly when the shell pattern does. */
export function globSegmentRegExp(segment: string): RegExp {
  let re = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const cls = bracketClass(segment, i);
      if (cls) {
        re += cls.re;
        i = cls.end;
      } else re += "\\[";
    } else re += escapeRegExp(c);
  }
  // the shell's rule: a leading '.' is matched only by a '.' in the pattern
  const source = `^${segment.startsWith(".") ? "" : "(?!\\.)"}${re}$`;
  try {
    return new RegExp(source, "u");
  } catch {
    throw new DiffevalError("E_SOURCE", `${segment}: not a valid pattern (a range such as [z-a] is out of order?)`);
  }
}

/** `[...]` starting at `start`: its regular expression and the index of its `]`, or undefined if unclosed. */
function bracketClass(s: string, start: number): { re: string; end: number } | undefined {
  let i = start + 1;
  const negate = s[i] === "!" || s[i] === "^";
  if (negate) i++;
  const first = i;
  // a ']' right after '[' or '[!' is a member, not the end (POSIX)
  while (i < s.length && (s[i] !== "]" || i === first)) i++;
  if (i >= s.length) return undefined;
  const body = [...s.slice(first, i)]
    .map((ch, k, all) => (ch === "-" ? (k > 0 && k < all.length - 1 ? "-" : "\\-") : escapeRegExp(ch)))
    .join("");
  return { re: `[${negate ? "^/" : ""}${body}]`, end: i };
}

function escapeRegExp(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}
