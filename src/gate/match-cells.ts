/** Pairs the cells of a baseline and a current results file by their params. */
import { cellLabel, type CellParams, type GateResults, type ResultCell } from "./results.js";

export interface CellPair {
  key: string;
  params: CellParams;
  /** `cfg_scale=7.5, sampler=euler`; "" for a single-result file. */
  label: string;
  baseline?: ResultCell;
  current?: ResultCell;
}

/** Every cell of either side, in the baseline's order, then the cells new in current. */
export function pairCells(baseline: GateResults, current: GateResults): CellPair[] {
  const byKey = new Map<string, CellPair>();
  for (const [side, results] of [["baseline", baseline], ["current", current]] as const) {
    for (const cell of results.cells) {
      const pair = byKey.get(cell.key) ?? { key: cell.key, params: cell.params, label: cellLabel(cell.params) };
      pair[side] = cell;
      byKey.set(cell.key, pair);
    }
  }
  return [...byKey.values()];
}
