/**
 * Trend alerts (issue 8 item 7) over the series the rollups keep per app and server minute of receipt
 * (infra/readmodel/rollups.ts): events received, and the p50 of intake latency — the time from the
 * intake's receipt of the batch (`receivedAt`) to the clean event being stored on EVENTS_CLEAN, i.e.
 * through dedupe, sessions and enrichment (both server clocks; replays of a message give the same value).
 * Every `every`, each app's minutes that are complete — ended at least `settle` ago, so events still in
 * the pipeline have arrived — are fed in order to the rule (domain/events/trend.ts); a minute without
 * events counts 0 events and has no latency. The rule's state, the minute reached and the alerts raised
 * are one transaction; alerts are then published on ALERTS (`alerts.<app>`, Nats-Msg-Id `alert-<id>`)
 * and marked published, so a crash between the two publishes them at the next pass, once.
 */
import type { DatabaseSync } from "node:sqlite"
import { Clock, Duration, Effect, Schema } from "effect"
import type { TrendMeasure } from "../../domain/events/Alert.ts"
import { eventsRule, initialTrend, latencyRule, stepTrend, TrendState } from "../../domain/events/trend.ts"
import { alertsSubject } from "../../domain/subjects.ts"
import { minuteAt } from "../../projections/events/rollupBuckets.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { transaction } from "../sqliteTransaction.ts"
import { RollupStore } from "../readmodel/rollups.ts"
import { latencyOfBucket } from "../readmodel/rollupsFile.ts"
import { Nats, tryNats } from "../nats/Nats.ts"

export interface TrendAlertOptions {
  /** how often the series are looked at; default 10 seconds */
  readonly every?: Duration.Input
  /** how long after a minute ends it counts as complete; default 1 minute */
  readonly settle?: Duration.Input
}

/** Minutes looked back at most (after a pause of the process), and how long the minute series are kept. */
const catchUpMinutes = 180
const keepMinutes = 2 * 1_440
/** How long a published alert is listed (GET /v1/alerts); before stop 27 they were kept for good. */
export const keepAlertsMinutes = 92 * 1_440

const rules = { events: eventsRule, intakeLatencyP50: latencyRule } as const
const decodeState = Schema.decodeUnknownSync(Schema.fromJsonString(TrendState))

const statements = (db: DatabaseSync) => ({
  apps: db.prepare("SELECT DISTINCT app FROM intake_minutes WHERE minute >= ? UNION SELECT app FROM trend_states"),
  firstMinute: db.prepare("SELECT MIN(minute) AS minute FROM intake_minutes WHERE app = ? AND minute >= ?"),
  state: db.prepare("SELECT minute, state FROM trend_states WHERE app = ? AND measure = ?"),
  setState: db.prepare("INSERT OR REPLACE INTO trend_states VALUES (?, ?, ?, ?)"),
  events: db.prepare("SELECT minute, events FROM intake_minutes WHERE app = ? AND minute BETWEEN ? AND ?"),
  latency: db.prepare("SELECT minute, bucket, count FROM intake_latency WHERE app = ? AND minute BETWEEN ? AND ? ORDER BY minute, bucket"),
  raise: db.prepare("INSERT INTO alerts (app, measure, at, expected, actual, direction) VALUES (?, ?, ?, ?, ?, ?)"),
  forgetQuiet: db.prepare("DELETE FROM trend_states WHERE app NOT IN (SELECT DISTINCT app FROM intake_minutes WHERE minute >= ?)"),
  pruneEvents: db.prepare("DELETE FROM intake_minutes WHERE minute < ?"),
  pruneLatency: db.prepare("DELETE FROM intake_latency WHERE minute < ?"),
  // the oldest few by id (raised in time order), so a pass never scans the table
  pruneAlerts: db.prepare("DELETE FROM alerts WHERE id IN (SELECT id FROM alerts ORDER BY id LIMIT 1000) AND published = 1 AND at < ?"),
  unpublished: db.prepare("SELECT id, app, measure, at, expected, actual, direction FROM alerts WHERE published = 0 ORDER BY id LIMIT 1000"),
  published: db.prepare("UPDATE alerts SET published = 1 WHERE id = ?")
})

/** The p50 of each minute's latency histogram. */
const medians = (rows: ReadonlyArray<{ minute: number; bucket: number; count: number }>) => {
  const byMinute = new Map<number, Array<{ bucket: number; count: number }>>()
  for (const row of rows) byMinute.set(row.minute, [...(byMinute.get(row.minute) ?? []), row])
  const out = new Map<number, number>()
  for (const [minute, buckets] of byMinute) {
    const half = buckets.reduce((n, b) => n + b.count, 0) / 2
    let seen = 0
    for (const b of buckets) {
      seen += b.count
      if (seen >= half) {
        out.set(minute, Math.round(latencyOfBucket(b.bucket)))
        break
      }
    }
  }
  return out
}

/** One pass at `nowMillis`: every app's complete minutes through the rule; answers the alerts raised. */
export const evaluateTrends = (nowMillis: number, settle: Duration.Input = "1 minute") =>
  Effect.gen(function*() {
    const { db } = yield* RollupStore
    const s = statements(db)
    const lastComplete = Math.floor((nowMillis - Duration.toMillis(Duration.fromInputUnsafe(settle))) / 60_000) - 1
    return yield* Effect.try({
      try: () =>
        transaction(db, () => {
          let raised = 0
          const apps = (s.apps.all(lastComplete - catchUpMinutes) as Array<{ app: string }>).map((r) => r.app)
          for (const app of apps) {
            const events = new Map((s.events.all(app, lastComplete - catchUpMinutes, lastComplete) as Array<{ minute: number; events: number }>).map((r) => [r.minute, r.events]))
            const latency = medians(s.latency.all(app, lastComplete - catchUpMinutes, lastComplete) as Array<{ minute: number; bucket: number; count: number }>)
            for (const measure of ["events", "intakeLatencyP50"] as const satisfies ReadonlyArray<TrendMeasure>) {
              const row = s.state.get(app, measure) as { minute: number; state: string } | undefined
              const first = row === undefined ? (s.firstMinute.get(app, lastComplete - catchUpMinutes) as { minute: number | null }).minute : row.minute + 1
              if (first === null || first === undefined) continue
              let state = row === undefined ? initialTrend : decodeState(row.state)
              for (let minute = Math.max(first, lastComplete - catchUpMinutes); minute <= lastComplete; minute++) {
                const value = measure === "events" ? events.get(minute) ?? 0 : latency.get(minute)
                if (value === undefined) continue
                const step = stepTrend(rules[measure], state, value)
                state = step.state
                if (step.alert !== undefined) {
                  s.raise.run(app, measure, minuteAt(minute), step.alert.expected, step.alert.actual, step.alert.direction)
                  raised++
                }
              }
              if (first <= lastComplete) s.setState.run(app, measure, lastComplete, JSON.stringify(state))
            }
          }
          s.forgetQuiet.run(lastComplete - 1_440)
          s.pruneEvents.run(lastComplete - keepMinutes)
          s.pruneLatency.run(lastComplete - keepMinutes)
          s.pruneAlerts.run(minuteAt(lastComplete - keepAlertsMinutes))
          return raised
        }),
      catch: (cause) => new ReadModelError({ operation: "evaluate trends", cause })
    })
  })

/** Publishes the alerts not published yet, oldest first; a re-publish after a crash is dropped by its Nats-Msg-Id. */
export const publishAlerts = Effect.gen(function*() {
  const { db } = yield* RollupStore
  const { jetstream } = yield* Nats
  const s = statements(db)
  const pending = s.unpublished.all() as Array<{ id: number; app: string; measure: string; at: string; expected: number; actual: number; direction: string }>
  for (const alert of pending) {
    yield* tryNats("publish alert", () => jetstream.publish(alertsSubject(alert.app), JSON.stringify(alert), { msgID: `alert-${alert.id}` }))
    s.published.run(alert.id)
    yield* Effect.logWarning("trend alert", alert)
  }
})

/** Evaluates and publishes every `every`, for ever (run it in the one process holding the rollups' lease). */
export const runTrendAlerts = (options: TrendAlertOptions = {}) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    yield* evaluateTrends(now, options.settle)
    yield* publishAlerts
  }).pipe(
    Effect.catch((error) => Effect.logWarning("trend alerts: a pass failed; trying again at the next", { error })),
    Effect.andThen(Effect.sleep(options.every ?? "10 seconds")),
    Effect.forever
  )
