/** Progress of feature extraction, one bar per source side, on stderr (quiet when not a TTY). */
import { createProgress } from "./progress.js";

export interface ImageProgress {
  update: (side: string, done: number, total: number) => void;
  finish: () => void;
}

export function imageProgress(): ImageProgress {
  let current: { side: string; bar: ReturnType<typeof createProgress> } | undefined;
  return {
    update(side, done, total) {
      if (current?.side !== side) {
        current?.bar.finish();
        current = { side, bar: createProgress({ label: side, total, unit: "img" }) };
      }
      current.bar.update(done);
    },
    finish() {
      current?.bar.finish();
      current = undefined;
    },
  };
}
