/**
 * Reads of the rollups (RollupReadModel) on `rollups.db`, through connections of their own (WAL: reads
 * do not wait for the consumers' writes): metrics queries on the reader thread (rollupsReaderThread.ts,
 * whose cost the app's dimension values decide), alerts (by id, bounded) here.
 */
import type { DatabaseSync } from "node:sqlite"
import { Clock, Effect, Layer, Schema } from "effect"
import { Alert } from "../../domain/events/Alert.ts"
import { defaultRollupTiers, type RollupTiers, tierFloors } from "../../projections/events/rollupBuckets.ts"
import { type AlertPage, MetricsBusy, MetricsNotKept, type MetricsQuery, type MetricsRow, MetricsTooLarge, RollupReadModel } from "../../projections/events/rollups.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { sqliteThreadOnDemand } from "../sqliteThread.ts"
import { makeFairTurns } from "./fairTurns.ts"
import { openRollups } from "./rollups.ts"
import type { MetricsAnswer, MetricsRequest } from "./rollupsReaderThread.ts"

const readerThread = new URL("./rollupsReaderThread.ts", import.meta.url)

/**
 * Metrics queries waiting for the reader at most, and of one caller; more are answered busy (503). Each
 * waiting one holds a read slot of the process (MAX_CONCURRENT_READS, 16 by default): with 16 waiting and
 * one in the reader, heavy queries of a few keys took every slot, and a partner's job list was refused
 * or waited ~2 s (the re-attack of stop 26). 8 leave other reads at least 7.
 */
export const maxWaiting = 8
export const maxWaitingPerCaller = 4

const decodeAlert = Schema.decodeUnknownSync(Alert)

export const layerSqlite = (options: { readonly path: string; readonly tiers?: RollupTiers | undefined }) =>
  Layer.effect(RollupReadModel, Effect.gen(function*() {
    // Opens (and creates) the file itself: the consumers may run in another process.
    const db: DatabaseSync = yield* openRollups(options.path)
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })
    // most processes are never asked a query
    const reader = yield* sqliteThreadOnDemand<MetricsRequest, MetricsAnswer>(readerThread, { path: options.path }, {
      name: "the rollups' reader thread",
      failed: (cause) => ({ _tag: "Failed", cause })
    })

    // One query at a time in the reader, the others waiting here, where a client that goes away takes its
    // query with it; one sent to the reader runs to its end (SQLite cannot be stopped there), holding the
    // turn. Queries sent straight to the reader queued in it: 40 heavy ones whose clients had gone made a
    // light query wait 56 s (stop 24's outside attack). Turns go round the callers (fairTurns.ts).
    const turns = makeFairTurns({ maxWaiting, maxPerCaller: maxWaitingPerCaller })
    const inTurn = (q: MetricsRequest, caller: string) =>
      turns.run(caller, Effect.uninterruptible(reader.request(q))).pipe(
        Effect.catchTag("TurnsFull", ({ waiting }) => Effect.fail(new MetricsBusy({ waiting })))
      )

    const tiers = options.tiers ?? defaultRollupTiers
    // The horizons configured now go with the query; the reader checks them against the compaction's marks
    // as it reads the rows (rollupsReaderThread.ts).
    const query = (q: MetricsQuery, caller: string): Effect.Effect<ReadonlyArray<MetricsRow>, ReadModelError | MetricsTooLarge | MetricsBusy | MetricsNotKept> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatMap(inTurn({ ...q, floors: tierFloors(tiers, now) }, caller), (answer): Effect.Effect<ReadonlyArray<MetricsRow>, ReadModelError | MetricsTooLarge | MetricsNotKept> =>
          answer._tag === "Rows"
            ? Effect.succeed(answer.rows)
            : answer._tag === "TooLarge"
            ? Effect.fail(new MetricsTooLarge({ maxChars: q.maxChars ?? 0 }))
            : answer._tag === "NotKept"
            ? Effect.fail(new MetricsNotKept({ field: answer.field, message: answer.message }))
            : Effect.fail(new ReadModelError({ operation: "metrics", cause: answer.cause }))))

    const firstAlerts = db.prepare("SELECT id, app, measure, at, expected, actual, direction FROM alerts WHERE id > ? ORDER BY id LIMIT ?")
    const appAlerts = db.prepare("SELECT id, app, measure, at, expected, actual, direction FROM alerts WHERE app = ? AND id > ? ORDER BY id LIMIT ?")

    return RollupReadModel.of({
      query,
      alerts: ({ limit, after, app }): Effect.Effect<AlertPage, ReadModelError> =>
        use("alerts", () => {
          const rows = (app === undefined ? firstAlerts.all(after ?? 0, limit + 1) : appAlerts.all(app, after ?? 0, limit + 1)) as Array<unknown>
          return { items: rows.slice(0, limit).map((row) => decodeAlert(row)), more: rows.length > limit }
        })
    })
  }))
