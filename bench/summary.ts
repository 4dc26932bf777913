/** One line of bench/results/summary.md. */
export interface SummaryRow {
  readonly benchmark: string
  readonly figure: string
  readonly ceiling: string
  /** figure ÷ ceiling (for latencies: ceiling ÷ figure, so higher is better either way) */
  readonly ratio: number
  readonly target: string
  /** undefined when no target is set */
  readonly pass?: boolean
}

export const summaryTable = (rows: ReadonlyArray<SummaryRow>): string =>
  [
    "| benchmark | figure | ceiling (same run) | ratio | target | result |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) =>
      `| ${r.benchmark} | ${r.figure} | ${r.ceiling} | ${Number.isNaN(r.ratio) ? "—" : r.ratio} | ${r.target} | ${r.pass === undefined ? "—" : r.pass ? "pass" : "MISS"} |`)
  ].join("\n")
