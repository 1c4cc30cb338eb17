/**
 * A one-line progress display for bytes (downloads) or images (feature extraction).
 * On a TTY the line updates in place (`\r` + erase-to-end-of-line, at most every
 * `minIntervalMs`) and finish() leaves a summary line. Elsewhere (CI logs, pipes) it is quiet,
 * or prints only the summary line with `summaryWhenNotTty`, so logs never fill with `\r`s.
 * Nothing is printed if update() was never called (e.g. the weights were already cached).
 */

export type ProgressUnit = "B" | "img" | "steps";

/** The part of a stream the display needs (process.stderr satisfies it). */
export interface ProgressStream {
  isTTY?: boolean;
  write(s: string): unknown;
}

export interface ProgressOptions {
  label: string;
  total?: number;
  unit: ProgressUnit;
  stream?: ProgressStream;
  /** Clock in ms (injectable for tests). */
  now?: () => number;
  minIntervalMs?: number;
  /** When the stream is not a TTY, print the summary line at finish() (default: silent). */
  summaryWhenNotTty?: boolean;
}

export interface Progress {
  /** `done` so far; `total` may arrive late (a download learns it from the headers). */
  update(done: number, total?: number): void;
  /** Prints the final line (rate, elapsed) if anything was shown. Idempotent. */
  finish(): void;
}

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const minInterval = opts.minIntervalMs ?? 100;
  const start = now();
  let total = opts.total;
  let done = 0;
  let lastDraw = -Infinity;
  let finished = false;
  let started = false;
  const tty = stream.isTTY === true;

  const draw = (final: boolean): void => {
    const line = formatProgressLine({ label: opts.label, unit: opts.unit, done, total, elapsedMs: now() - start, final });
    stream.write(tty ? `\r${line}\x1b[K${final ? "\n" : ""}` : `${line}\n`);
  };
  return {
    update(d: number, t?: number): void {
      done = d;
      started = true;
      if (t !== undefined) total = t;
      if (!tty || finished) return;
      const at = now();
      if (at - lastDraw < minInterval && done !== total) return;
      lastDraw = at;
      draw(false);
    },
    finish(): void {
      if (finished) return;
      finished = true;
      if (started && (tty || opts.summaryWhenNotTty)) draw(true);
    },
  };
}

/** Progress on stderr for byte counts; pass `p.update` as a download's onProgress. */
export function stderrProgress(label: string, total?: number): Progress {
  return createProgress({ label, total, unit: "B", stream: process.stderr });
}

export interface ProgressState {
  label: string;
  unit: ProgressUnit;
  done: number;
  total: number | undefined;
  elapsedMs: number;
  final: boolean;
}

/**
 * "label 12.0 MiB / 91.2 MiB (13%) 4.0 MiB/s ETA 0:20" while running;
 * "label 91.2 MiB in 0:23 (4.0 MiB/s)" when final.
 */
export function formatProgressLine(s: ProgressState): string {
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? s.done / secs : undefined;
  const rateText = rate !== undefined ? `${formatAmount(rate, s.unit)}/s` : "";
  if (s.final) {
    return `${s.label} ${formatAmount(s.done, s.unit)} in ${formatDuration(secs)}${rateText ? ` (${rateText})` : ""}`;
  }
  const parts = [s.label, formatAmount(s.done, s.unit)];
  if (s.total !== undefined && s.total > 0) {
    parts.push(`/ ${formatAmount(s.total, s.unit)}`, `(${Math.floor((100 * s.done) / s.total)}%)`);
  }
  if (rateText) parts.push(rateText);
  if (rate && s.total !== undefined && s.total >= s.done) {
    parts.push(`ETA ${formatDuration((s.total - s.done) / rate)}`);
  }
  return parts.join(" ");
}

/** Bytes in binary units (KiB, MiB, GiB); image and step counts as plain numbers with their unit. */
export function formatAmount(n: number, unit: ProgressUnit): string {
  if (unit !== "B") return `${n >= 100 || Number.isInteger(n) ? Math.round(n) : n.toFixed(1)} ${unit}`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** m:ss, or h:mm:ss from one hour on. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const ss = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
