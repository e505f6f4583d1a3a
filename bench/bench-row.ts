// One figure of `npm run bench`; every benchmark returns a list of these and the
// runner writes them all to bench/results.json.
export interface BenchRow {
  name: string;
  unit: string;
  value: number;
  /** The same figure for the reference measured in the same run (e.g. `git ls-remote`), if any. */
  baseline: number | null;
  /** value / baseline, when there is a baseline. */
  ratio: number | null;
  /** The goal in words, e.g. "< 1000 ms" or "<= 1.5x baseline". */
  target: string;
  met: boolean;
}

export function benchRow(row: Omit<BenchRow, 'ratio'> & { ratio?: number | null }): BenchRow {
  const ratio = row.ratio ?? (row.baseline ? Math.round((row.value / row.baseline) * 100) / 100 : null);
  // Fields in the documented order, so results.json reads the same row after row.
  return { name: row.name, unit: row.unit, value: row.value, baseline: row.baseline, ratio, target: row.target, met: row.met };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** A plain-text table of rows for the terminal. */
export function formatBenchTable(rows: readonly BenchRow[]): string {
  const round = (n: number | null) => (n === null ? '-' : Number.isInteger(n) ? String(n) : n.toFixed(2));
  const cells = [
    ['benchmark', 'value', 'unit', 'baseline', 'ratio', 'target', 'met'],
    ...rows.map((r) => [r.name, round(r.value), r.unit, round(r.baseline), round(r.ratio), r.target, r.met ? 'yes' : 'NO']),
  ];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
