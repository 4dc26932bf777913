/**
 * The deliverers of this process (issue 9 item 3): one DeliveryActor per destination lane, each run by
 * one process at a time under the lease `job.deliver.<destination>.<lane>`, lanes spread over the live
 * processes by rendezvous hashing (actors/runtime/KeyedJobs.ts): a new destination is picked up
 * within a tick, a deleted one stops, a joining process takes its share, a SIGKILLed one's lanes are
 * taken over once their leases expire. A lane re-reads its destination every `configEvery`, and at
 * once when SNAPSHOTS shows it changed (destinationChanges.ts), and starts again with the new settings
 * when they changed (secrets included).
 */
import { Effect, Metric, Option, Redacted } from "effect"
import type { Duration } from "effect"
import { DeliveryBacklog } from "../../domain/delivery/DeliveryBacklog.ts"
import { laneRereadMs } from "../../domain/delivery/laneBarrier.ts"
import type { DestinationConfig } from "../../domain/delivery/DestinationConfig.ts"
import { jobLeaseKey } from "../../domain/subjects.ts"
import type { Life } from "../../projections/EntityQueries.ts"
import { lanesByDestination } from "../../projections/delivery/destinationLanes.ts"
import { runKeyedJobs } from "../runtime/KeyedJobs.ts"
import { type DeliveryActorOptions, deliverLane, type LaneSettings } from "./DeliveryActor.ts"
import { loadDestination, type LoadedDestination, requestHeaders } from "./destinationConfig.ts"
import { type DestinationChanged, followDestinationChanges } from "./destinationChanges.ts"

export interface DeliveriesOptions extends DeliveryActorOptions {
  /** how often destinations and ownership are looked at; default 1 second */
  readonly tick?: Duration.Input
  /** how often a running lane re-reads its destination; default `laneRereadMs` (5 s), which the package publisher's lane barrier counts on */
  readonly configEvery?: Duration.Input
}

const deliverersRunning = Metric.gauge("tributary_deliverers_running", { description: "Destination lanes delivered by this process" })

/** A lane's job key: `<destination>.<lane>` (destination ids are slugs without dots). */
const laneKey = (destination: string, lane: number) => `${destination}.${lane}`
const parseLaneKey = (key: string) => {
  const dot = key.lastIndexOf(".")
  return { destination: key.slice(0, dot), lane: Number(key.slice(dot + 1)) }
}

/** The lease of a destination lane's deliverer. */
export const deliveryLeaseKey = (destination: string, lane: number) => jobLeaseKey(`deliver.${laneKey(destination, lane)}`)

/**
 * Every lane of every live destination (paged), and every lane of one with chunks waiting: after
 * `lanes` was lowered, the lanes past the new count still deliver what they hold.
 */
const knownLanes = Effect.gen(function*() {
  const lanes = new Set<string>()
  const live = yield* lanesByDestination
  for (const [destination, count] of live) for (let lane = 0; lane < count; lane++) lanes.add(laneKey(destination, lane))
  // Of live destinations only: a deleted one's chunk left on DELIVER (published as it was deleted) kept a
  // deliverer for good, which could send it nothing (stop 29's re-attack: 128 deliverers for 5 lanes).
  const waiting = yield* DeliveryBacklog.use((backlog) => backlog.lanesWaiting())
  for (const [destination, held] of waiting) if (live.has(destination)) for (const lane of held) lanes.add(laneKey(destination, lane))
  return lanes
})

/**
 * What a lane delivers with: its shares of the limits, every header. The limits are shared by the lanes
 * that may send: the destination's `lanes`, and any other lane still holding chunks (`waiting`: lanes past
 * a lowered count drain their backlog). Each share is recomputed when that set changes. In flight: at
 * least 1 a lane, so only lanes draining past a lowered count can take the sum over `maxInFlight`.
 */
export const laneSettingsOf = (loaded: LoadedDestination, lane: number, waiting: ReadonlySet<number> = new Set()): LaneSettings => {
  const config: DestinationConfig = loaded.config
  const sending = new Set(waiting)
  for (let i = 0; i < config.lanes; i++) sending.add(i)
  const share = Math.max(1, sending.size)
  // integer shares summing to maxInFlight (lanes ≤ maxInFlight: each at least 1), the remainder to the first lanes
  const index = [...sending].sort((a, b) => a - b).indexOf(lane)
  const inFlightShare = Math.floor(config.maxInFlight / share) + (index >= 0 && index < config.maxInFlight % share ? 1 : 0)
  return {
    destination: config.id,
    lane,
    incarnation: loaded.incarnation,
    url: config.url,
    method: config.method,
    headers: requestHeaders(loaded),
    secrets: Object.values(loaded.secretHeaders).map((value) => Redacted.value(value)),
    format: config.format,
    batchSize: config.batchSize,
    ratePerSecond: config.ratePerSecond / share,
    maxInFlight: Math.max(1, inFlightShare),
    timeoutMs: config.timeoutMs,
    maxAttempts: config.maxAttempts
  }
}

/** Compares settings without ever printing them (secret headers are in). */
const sameSettings = (a: LaneSettings, b: LaneSettings) => JSON.stringify(a) === JSON.stringify(b)

/** A lane: delivers with its destination's settings, starting again when they change; idles while the destination is gone. */
const laneJob = (key: string, options: DeliveriesOptions, destinationChanged: DestinationChanged) =>
  Effect.gen(function*() {
    const { destination, lane } = parseLaneKey(key)
    /** the destination's life at the last read: the next one looks for a re-creation since then only */
    let known: Life | undefined
    const settingsNow = Effect.gen(function*() {
      const loaded = yield* loadDestination(destination, known)
      known = Option.isSome(loaded) ? loaded.value.life : undefined
      if (Option.isNone(loaded)) return Option.none<LaneSettings>()
      const waiting = yield* DeliveryBacklog.use((backlog) => backlog.lanesWaiting(destination))
      return Option.some(laneSettingsOf(loaded.value, lane, waiting.get(destination)))
    })
    for (;;) {
      const settings = yield* settingsNow
      if (Option.isNone(settings)) {
        yield* Effect.sleep(options.configEvery ?? laneRereadMs)
        continue
      }
      const nextRead = Effect.raceFirst(Effect.sleep(options.configEvery ?? laneRereadMs), destinationChanged(destination))
      const changed = Effect.andThen(nextRead, settingsNow).pipe(
        Effect.repeat({ until: (now) => Option.isNone(now) || !sameSettings(now.value, settings.value) }),
        Effect.andThen(Effect.logInfo("delivery: destination changed; the lane starts again", { destination, lane }))
      )
      yield* Effect.raceFirst(deliverLane(settings.value, options), changed)
    }
  })

/** Runs this process's share of the destination lanes' deliverers for the life of the Scope. */
export const runDeliveries = (options: DeliveriesOptions = {}) =>
  Effect.flatMap(followDestinationChanges, (destinationChanged) => runKeyedJobs({
    name: "deliverer",
    leaseKey: (key: string) => {
      const { destination, lane } = parseLaneKey(key)
      return deliveryLeaseKey(destination, lane)
    },
    keys: knownLanes,
    run: (key: string) => laneJob(key, options, destinationChanged),
    running: deliverersRunning,
    // a deleted destination's lanes (nothing of them left on DELIVER) end
    endWhenUnlisted: true,
    ...(options.tick === undefined ? {} : { tick: options.tick })
  }))
