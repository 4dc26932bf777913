/**
 * Runs every benchmark in turn, writes each one's JSON to bench/results/<name>.json and the table of
 * figures beside their same-run ceilings to bench/results/summary.md, and prints that table.
 * `npm run bench`; one benchmark alone: `npx node bench/<name>.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import { benchAppEvents } from "./appEvents.ts"
import { benchAsOf } from "./asOf.ts"
import { benchCommands } from "./commands.ts"
import { benchEventStore } from "./eventStore.ts"
import { benchBatch } from "./batch.ts"
import { benchDelivery } from "./delivery.ts"
import { benchHistoryLatency } from "./historyLatency.ts"
import { benchIngest } from "./ingest.ts"
import { benchProcesses } from "./processes.ts"
import { round2 } from "./stats.ts"
import { summaryTable, type SummaryRow } from "./summary.ts"

const resultsDir = fileURLToPath(new URL("./results/", import.meta.url))

const save = (name: string, result: unknown) => {
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(`${resultsDir}${name}.json`, `${JSON.stringify(result, null, 2)}\n`)
}

/** (a) is another module's: its record is turned into a summary row here. */
const eventStoreRows = (r: Record<string, unknown>): Array<SummaryRow> => {
  const adapter = r.adapterEventsPerSecond as number
  const raw = r.rawEventsPerSecond as number
  const ratio = r.ratio as number
  const target = String(r.target ?? ">= 0.8")
  const threshold = Number(target.replace(/[^\d.]/g, ""))
  const multi = r.multiStreamAppend as { adapterEventsPerSecond: number; rawEventsPerSecond: number; ratio: number } | undefined
  return [{
    benchmark: "(a) SQLite adapter appends/s",
    figure: `${adapter}/s`,
    ceiling: `raw node:sqlite ${raw}/s`,
    ratio,
    target,
    ...(Number.isFinite(threshold) ? { pass: ratio >= threshold } : {})
  }, ...(multi === undefined ? [] : [{
    benchmark: "(a) one multi-stream append, 10,000 events for 10,000 streams: events/s",
    figure: `${multi.adapterEventsPerSecond}/s`,
    ceiling: `raw node:sqlite, same rows in one transaction ${multi.rawEventsPerSecond}/s`,
    ratio: multi.ratio,
    target: "none set (report)"
  }])]
}

let maxCommandRate: number | undefined

const benchmarks: ReadonlyArray<{ readonly name: string; readonly run: () => Promise<{ result: unknown; rows: Array<SummaryRow> }> }> = [
  {
    name: "eventStore",
    run: async () => {
      const result = await benchEventStore()
      return { result, rows: eventStoreRows(result) }
    }
  },
  {
    name: "commands",
    run: async () => {
      const run = await benchCommands()
      maxCommandRate = run.result.nats.perSecond
      return run
    }
  },
  // at half of the maximum command rate (b) measured over the bus
  { name: "historyLatency", run: () => benchHistoryLatency(maxCommandRate) },
  { name: "batch", run: benchBatch },
  { name: "processes", run: benchProcesses },
  { name: "asOf", run: benchAsOf },
  // partner file ingestion; BENCH_INGEST_LINES (default 1,000,000), BENCH_INGEST_BIG=1 for the 1 GB file
  { name: "ingest", run: benchIngest },
  // app events; BENCH_EVENTS (default 1,000,000)
  { name: "appEvents", run: benchAppEvents },
  // delivery to partners against the partner simulator; BENCH_DELIVERY_SECONDS (default 12) per phase
  { name: "delivery", run: benchDelivery }
]

const only = process.argv.slice(2)
const rows: Array<SummaryRow> = []
const started = performance.now()
for (const benchmark of benchmarks) {
  if (only.length > 0 && !only.includes(benchmark.name)) continue
  const t0 = performance.now()
  process.stdout.write(`${benchmark.name} … `)
  try {
    const { result, rows: own } = await benchmark.run()
    save(benchmark.name, result)
    rows.push(...own)
    console.log(`${round2((performance.now() - t0) / 1000)} s`)
  } catch (error) {
    console.log("failed")
    console.error(error)
    save(benchmark.name, { name: benchmark.name, error: String(error) })
    rows.push({ benchmark: benchmark.name, figure: "failed", ceiling: "—", ratio: Number.NaN, target: "—", pass: false })
  }
}

const summary = [
  "# Benchmark summary",
  "",
  `${new Date().toISOString()} · Node ${process.version} · ${cpus().length} cores · ${Math.round(totalmem() / 2 ** 30)} GiB · ${round2((performance.now() - started) / 1000)} s`,
  "",
  summaryTable(rows),
  "",
  "Ratios are figure ÷ ceiling for rates and ceiling ÷ figure for latencies (higher is better); the",
  "(d) speed-up is full-replay p50 ÷ with-snapshots p50. Details: bench/results/<name>.json.",
  ""
].join("\n")
mkdirSync(resultsDir, { recursive: true })
writeFileSync(`${resultsDir}summary.md`, summary)
console.log(`\n${summary}`)
// nats.js timers and SQLite handles are closed by the benchmarks; exit anyway so a stray handle cannot hang the run
process.exit(rows.some((r) => r.figure === "failed") ? 1 : 0)
