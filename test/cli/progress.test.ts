import { describe, expect, it } from "vitest";
import { createProgress, formatAmount, formatDuration, formatProgressLine } from "../../src/cli/progress.js";

function fakeStream(isTTY: boolean) {
  const out: string[] = [];
  return { isTTY, out, write: (s: string) => out.push(s) };
}

describe("formatting", () => {
  it("formats bytes in binary units and images as counts", () => {
    expect(formatAmount(512, "B")).toBe("512 B");
    expect(formatAmount(95_628_359, "B")).toBe("91.2 MiB");
    expect(formatAmount(1536, "B")).toBe("1.5 KiB");
    expect(formatAmount(1234, "img")).toBe("1234 img");
    expect(formatAmount(12.34, "img")).toBe("12.3 img"); // a rate
  });

  it("formats durations as m:ss and h:mm:ss", () => {
    expect(formatDuration(5)).toBe("0:05");
    expect(formatDuration(125.4)).toBe("2:05");
    expect(formatDuration(3723)).toBe("1:02:03");
  });

  it("shows percent, rate and ETA while running, and a summary when done", () => {
    const running = { label: "ref", unit: "img" as const, done: 250, total: 1000, elapsedMs: 5000, final: false };
    expect(formatProgressLine(running)).toBe("ref 250 img / 1000 img (25%) 50 img/s ETA 0:15");
    expect(formatProgressLine({ ...running, total: undefined })).toBe("ref 250 img 50 img/s");
    expect(formatProgressLine({ ...running, done: 1000, elapsedMs: 20_000, final: true })).toBe(
      "ref 1000 img in 0:20 (50 img/s)",
    );
  });
});

describe("createProgress", () => {
  it("redraws one line on a TTY, throttled, and ends it at finish()", () => {
    const s = fakeStream(true);
    let t = 0;
    const p = createProgress({ label: "w", unit: "B", stream: s, now: () => t, minIntervalMs: 100 });
    t = 1000;
    p.update(1024, 4096);
    t = 1050;
    p.update(2048); // within 100 ms: skipped
    t = 2000;
    p.update(3072);
    p.finish();
    p.finish();
    expect(s.out).toHaveLength(3);
    expect(s.out[0]).toBe("\rw 1.0 KiB / 4.0 KiB (25%) 1.0 KiB/s ETA 0:03\x1b[K");
    expect(s.out[1]).toMatch(/^\rw 3\.0 KiB \/ 4\.0 KiB \(75%\)/);
    expect(s.out[2]).toBe("\rw 3.0 KiB in 0:02 (1.5 KiB/s)\x1b[K\n");
  });

  it("is silent when not a TTY unless a summary is asked for", () => {
    const quiet = fakeStream(false);
    const p = createProgress({ label: "x", unit: "img", total: 2, stream: quiet });
    p.update(1);
    p.update(2);
    p.finish();
    expect(quiet.out).toEqual([]);

    const summary = fakeStream(false);
    const q = createProgress({ label: "x", unit: "img", stream: summary, summaryWhenNotTty: true, now: () => 0 });
    q.update(2);
    q.finish();
    expect(summary.out).toEqual(["x 2 img in 0:00\n"]);
  });

  it("prints nothing when nothing happened (e.g. weights already cached)", () => {
    const s = fakeStream(true);
    createProgress({ label: "w", unit: "B", stream: s }).finish();
    expect(s.out).toEqual([]);
  });
});
