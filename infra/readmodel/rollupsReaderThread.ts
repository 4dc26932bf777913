/**
 * The rollups' reader thread (infra/sqliteThread.ts): metrics queries on `rollups.db` run here, on a
 * connection of its own, not on the main thread. A query groups the minute rows of every dimension set
 * of the app, so its cost grows with the app's distinct dimension values, which its SDK (anyone who
 * unpacks the app) decides: an outside attack made one query hold the event loop 300 ms, and 80 at once
 * 20 s — long enough for every lease of the process to lapse. Here a query holds only this thread; the
 * main thread serves everything else meanwhile, and the routes' read admission (a queue with a timeout)
 * works as meant. Queries are answered one at a time, in order.
 *
 * A query is one SELECT summing the minute rows of the app's dimension sets that pass the filters,
 * grouped by the bucket's start and the groupBy dimensions; never a scan of raw events. Dimension names
 * are spelled into SQL only from the declared list.
 *
 * Loaded by Node itself (infra/sqliteThreadServe.ts): only erasable TypeScript and `.ts` imports, none of
 * `effect` (types only).
 */
import type { DatabaseSync } from "node:sqlite"
import { workerData } from "node:worker_threads"
import { bucketSql, floorsInForce, minuteAt, minutesOf, notKeptAt, sessionLengthBounds, type TierFloors } from "../../projections/events/rollupBuckets.ts"
import type { MetricsQuery, MetricsRow } from "../../projections/events/rollups.ts"
import { serveSqliteThread } from "../sqliteThreadServe.ts"
import { openRollupsFile, type TierMarks, tierMarks } from "./rollupsFile.ts"

/** A query and the horizons configured at the time it was asked (the marks in force are read with its rows). */
export type MetricsRequest = MetricsQuery & { readonly floors: TierFloors }

export type MetricsAnswer =
  | { readonly _tag: "Rows"; readonly rows: ReadonlyArray<MetricsRow> }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "NotKept"; readonly field: "granularity" | "from" | "to"; readonly message: string }
  | { readonly _tag: "Failed"; readonly cause: Error }

const lengthSums = [...sessionLengthBounds, null].map((_, i) => `SUM(r.b${i}) AS b${i}`).join(", ")

/** What each measure sums, from which table, and the extra conditions it takes (`customKey`: the id of the custom event's name, or of its prop). */
const measureSql = (q: MetricsQuery, customKey: number): { readonly table: string; readonly value: string; readonly where: string; readonly params: ReadonlyArray<number> } => {
  switch (q.measure) {
    case "events":
      return { table: "rollup_events", value: "SUM(r.events)", where: "", params: [] }
    case "devices":
      return { table: "rollup_devices", value: "COUNT(DISTINCT r.device)", where: "", params: [] }
    case "sessions":
      return { table: "rollup_sessions", value: "SUM(r.sessions)", where: "", params: [] }
    case "sessionLength":
      return { table: "rollup_sessions", value: `SUM(r.seconds) / SUM(r.sessions) AS mean, ${lengthSums}, SUM(r.sessions)`, where: "", params: [] }
    case "custom":
      return q.sum === undefined
        ? { table: "custom_events", value: "SUM(r.events)", where: "AND r.key = ?", params: [customKey] }
        : { table: "custom_totals", value: "SUM(r.total)", where: "AND r.key = ?", params: [customKey] }
  }
}

/** About what a row weighs once sent: its time, value and keys, and its dimension values. */
const rowChars = 64

const query = (db: DatabaseSync, q: MetricsQuery): MetricsAnswer => {
  const width = minutesOf[q.granularity]
  let customKey = 0
  if (q.measure === "custom") {
    const key = db.prepare("SELECT id FROM custom_keys WHERE app = ? AND name = ? AND prop = ?").get(q.app, q.name ?? "", q.sum ?? "") as { id: number } | undefined
    if (key === undefined) return { _tag: "Rows", rows: [] } // never counted (or past the app's limits: rollupBuckets.ts)
    customKey = key.id
  }
  const m = measureSql(q, customKey)
  const columns = q.groupBy.map((d) => `d."${d}"`)
  const filters = [...q.filters].map(([d, values]) => `AND d."${d}" IN (${values.map(() => "?").join(", ")})`)
  const sql = `SELECT ${bucketSql("r.minute", width)} AS bucket${columns.map((c) => `, ${c}`).join("")}, ${m.value} AS value
    FROM ${m.table} r JOIN dim_sets d ON d.id = r.dim_set
    WHERE d.app = ? ${filters.join(" ")} AND r.minute >= ? AND r.minute < ? ${m.where}
    GROUP BY bucket${columns.map((c) => `, ${c}`).join("")}
    ORDER BY bucket${columns.map((c) => `, ${c}`).join("")}
    ${q.maxRows === undefined ? "" : `LIMIT ${Math.floor(q.maxRows) + 1}`}`
  const params = [q.app, ...[...q.filters.values()].flat(), q.fromMinute, q.toMinute, ...m.params]
  const rows: Array<MetricsRow> = []
  let chars = 0
  for (const row of db.prepare(sql).iterate(...params) as Iterable<Record<string, number | string | null>>) {
    const dims: Record<string, string | null> = {}
    chars += rowChars
    for (const d of q.groupBy) {
      const value = row[d] as string | null
      dims[d] = value
      chars += d.length + (value?.length ?? 4)
    }
    if (q.maxChars !== undefined && chars > q.maxChars) return { _tag: "TooLarge" }
    const time = minuteAt(row.bucket as number)
    if (q.measure !== "sessionLength") {
      rows.push({ time, ...dims, value: Number(row.value) })
      continue
    }
    const distribution = [...sessionLengthBounds, null].map((bound, i) => ({ upToSeconds: bound, sessions: Number(row[`b${i}`]) }))
      .filter((b) => b.sessions > 0)
    rows.push({ time, ...dims, value: Number(row.mean), distribution })
  }
  return { _tag: "Rows", rows }
}

/**
 * The marks in force are read in the same read transaction as the rows: checked on the main thread before
 * the query waited its turn, a compaction begun meanwhile let a minute query through over rows rolled
 * into a day, answered as its first minute (the third attack of stop 27).
 */
const checkedQuery = (db: DatabaseSync, marks: TierMarks, q: MetricsRequest): MetricsAnswer => {
  db.exec("BEGIN")
  try {
    const refused = notKeptAt(q, floorsInForce(q.floors, marks.begun()))
    return refused === undefined ? query(db, q) : { _tag: "NotKept", ...refused }
  } finally {
    db.exec("COMMIT")
  }
}

serveSqliteThread<MetricsRequest, MetricsAnswer>(() => openRollupsFile((workerData as { readonly path: string }).path), (db) => {
  const marks = tierMarks(db)
  return (q) => {
    try {
      return checkedQuery(db, marks, q)
    } catch (cause) {
      return { _tag: "Failed", cause: cause instanceof Error ? new Error(cause.message) : new Error(String(cause)) }
    }
  }
})
