/**
 * Reads of the rollups (RollupReadModel) on `rollups.db`, through a connection of their own (WAL: reads
 * do not wait for the consumers' writes). A query is one SELECT summing the minute rows of the app's
 * dimension sets that pass the filters, grouped by the bucket's start and the groupBy dimensions;
 * never a scan of raw events. Dimension names are spelled into SQL only from the declared list.
 */
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Schema } from "effect"
import { Alert } from "../../domain/events/Alert.ts"
import { minuteAt, sessionLengthBounds } from "../../projections/events/rollupBuckets.ts"
import { type AlertPage, type MetricsQuery, type MetricsRow, minutesOf, RollupReadModel } from "../../projections/events/rollups.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { openRollups } from "./rollups.ts"

const lengthSums = [...sessionLengthBounds, null].map((_, i) => `SUM(r.b${i}) AS b${i}`).join(", ")

/** What each measure sums, from which table, and the extra conditions it takes. */
const measureSql = (q: MetricsQuery): { readonly table: string; readonly value: string; readonly where: string; readonly params: ReadonlyArray<string> } => {
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
        ? { table: "rollup_custom", value: "SUM(r.events)", where: "AND r.name = ?", params: [q.name ?? ""] }
        : { table: "rollup_custom_sums", value: "SUM(r.total)", where: "AND r.name = ? AND r.prop = ?", params: [q.name ?? "", q.sum] }
  }
}

const decodeAlert = Schema.decodeUnknownSync(Alert)

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(RollupReadModel, Effect.gen(function*() {
    // Opens (and creates) the file itself: the consumers may run in another process.
    const db: DatabaseSync = yield* openRollups(options.path)
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })

    const query = (q: MetricsQuery): ReadonlyArray<MetricsRow> => {
      const width = minutesOf[q.granularity]
      const m = measureSql(q)
      const columns = q.groupBy.map((d) => `d."${d}"`)
      const filters = [...q.filters].map(([d, values]) => `AND d."${d}" IN (${values.map(() => "?").join(", ")})`)
      const sql = `SELECT (r.minute / ${width}) * ${width} AS bucket${columns.map((c) => `, ${c}`).join("")}, ${m.value} AS value
        FROM ${m.table} r JOIN dim_sets d ON d.id = r.dim_set
        WHERE d.app = ? ${filters.join(" ")} AND r.minute >= ? AND r.minute < ? ${m.where}
        GROUP BY bucket${columns.map((c) => `, ${c}`).join("")}
        ORDER BY bucket${columns.map((c) => `, ${c}`).join("")}
        ${q.maxRows === undefined ? "" : `LIMIT ${Math.floor(q.maxRows) + 1}`}`
      const params = [q.app, ...[...q.filters.values()].flat(), q.fromMinute, q.toMinute, ...m.params]
      const rows = db.prepare(sql).all(...params) as Array<Record<string, number | string | null>>
      return rows.map((row) => {
        const dims = Object.fromEntries(q.groupBy.map((d) => [d, row[d] as string | null]))
        const time = minuteAt(row.bucket as number)
        if (q.measure !== "sessionLength") return { time, ...dims, value: Number(row.value) }
        const distribution = [...sessionLengthBounds, null].map((bound, i) => ({ upToSeconds: bound, sessions: Number(row[`b${i}`]) }))
          .filter((b) => b.sessions > 0)
        return { time, ...dims, value: Number(row.mean), distribution }
      })
    }

    const firstAlerts = db.prepare("SELECT id, app, measure, at, expected, actual, direction FROM alerts WHERE id > ? ORDER BY id LIMIT ?")
    const appAlerts = db.prepare("SELECT id, app, measure, at, expected, actual, direction FROM alerts WHERE app = ? AND id > ? ORDER BY id LIMIT ?")

    return RollupReadModel.of({
      query: (q) => use("metrics", () => query(q)),
      alerts: ({ limit, after, app }): Effect.Effect<AlertPage, ReadModelError> =>
        use("alerts", () => {
          const rows = (app === undefined ? firstAlerts.all(after ?? 0, limit + 1) : appAlerts.all(app, after ?? 0, limit + 1)) as Array<unknown>
          return { items: rows.slice(0, limit).map((row) => decodeAlert(row)), more: rows.length > limit }
        })
    })
  }))
