/**
 * Delivery packages (issue 9 item 2), wired: `delivery.db` opened in every process (DeliveryPackages
 * answers refresh requests from any of them), and in the one process holding `job.delivery-packages`
 * the `delivery-packages` projection (ProjectionRunner, from the event store's global order), the
 * outbox publisher to DELIVER and the scheduled refreshes. A SIGKILLed holder's lease expires; the
 * next holder resumes the projection from its checkpoint and the publisher from the outbox.
 */
import { Clock, Effect, Layer, Option, Schedule } from "effect"
import type { Duration } from "effect"
import { type DeliveryBacklog, waitingFor } from "../../domain/delivery/DeliveryBacklog.ts"
import { EntityNotFound } from "../../domain/entity.ts"
import type { EventStore } from "../../domain/EventStore.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { DeliveryPackages, destinationType } from "../../projections/delivery/packages.ts"
import * as ProjectionRunner from "../../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { withLease } from "../nats/lease.ts"
import type { Nats } from "../nats/Nats.ts"
import { layerJetStream as deliveryBacklog } from "./deliveryBacklog.ts"
import { publishOutbox, reportBacklog, sweepDeleted } from "./outboxPublisher.ts"
import { PackagesDb } from "./packagesDb.ts"

export interface PackagesOptions {
  /** the SQLite file (DATA_DIR/delivery.db) */
  readonly path: string
  /** records per chunk at most; default 1,000 */
  readonly chunkRecords: number
  /** how often scheduled refreshes are looked at; default 1 second */
  readonly scheduleTick?: Duration.Input
  /** records of a destination waiting (outbox and DELIVER) past which its scheduled refresh waits (DELIVERY_REFRESH_MAX_BACKLOG); default none */
  readonly maxBacklog?: number
  /** how often DELIVER is swept of deleted destinations' chunks; default 5 seconds */
  readonly sweepEvery?: Duration.Input
}

const refresh = (destination: string) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const packageId = `refresh-${yield* nextUuidv7}`
    const records = yield* db.refresh(destination, { packageId, at: yield* Clock.currentTimeMillis })
    if (Option.isNone(records)) return yield* new EntityNotFound({ entityType: destinationType, entityId: destination })
    return { packageId, records: records.value }
  })

/**
 * Refreshes the destinations whose `refreshEvery` has passed since their last refresh (or since first
 * seen); one whose backlog is over `maxBacklog` waits until it drains, as a refresh asked for is refused
 * (before stop 28 a destination whose partner never answered got a refresh package every `refreshEvery`
 * regardless: 60,000 more records a minute on disk).
 */
const scheduledRefreshes = (tick: Duration.Input, maxBacklog: number) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const firstSeen = new Map<string, number>()
    const round = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const { destination, everySeconds, lastAt } of yield* db.scheduled) {
        const since = lastAt ?? firstSeen.get(destination) ?? now
        firstSeen.set(destination, since)
        if (now - since < everySeconds * 1_000) continue
        if ((yield* waitingFor(destination, db.waiting)).records > maxBacklog) continue
        const done = yield* Effect.result(refresh(destination))
        yield* Effect.logInfo("scheduled refresh", { destination, ...(done._tag === "Success" ? done.success : { failed: done.failure._tag }) })
      }
    })
    return yield* round.pipe(
      Effect.tapError((error) => Effect.logWarning("scheduled refreshes failed", error)),
      Effect.ignore,
      Effect.andThen(Effect.sleep(tick)),
      Effect.forever
    )
  })

/** What the holder of `job.delivery-packages` runs: the projection, the publisher, the schedule. */
const packagesJob = (options: PackagesOptions): Effect.Effect<never, never, PackagesDb | EventStore | Nats | DeliveryBacklog> =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    // The runner of every projection, here on delivery.db's one projection, for as long as the lease is held.
    yield* Layer.build(Layer.fresh(ProjectionRunner.layer).pipe(Layer.provide(Layer.succeed(ProjectionStore, db.store))))
    yield* Effect.forkScoped(reportBacklog("1 second"))
    yield* Effect.forkScoped(sweepDeleted(options.sweepEvery ?? "5 seconds"))
    yield* Effect.forkScoped(scheduledRefreshes(options.scheduleTick ?? "1 second", options.maxBacklog ?? Number.POSITIVE_INFINITY))
    return yield* publishOutbox()
  }).pipe(Effect.scoped)

/** DeliveryPackages (and PackagesDb) in every process; the packaging job in the one holding its lease. */
export const layer = (options: PackagesOptions): Layer.Layer<DeliveryPackages | PackagesDb, never, EventStore | Nats> => {
  const dbLayer = PackagesDb.layer({ path: options.path, maxRecords: options.chunkRecords }).pipe(Layer.orDie)
  const service = Layer.effect(
    DeliveryPackages,
    Effect.gen(function*() {
      const db = yield* PackagesDb
      return DeliveryPackages.of({
        refresh: (destination) => Effect.provideService(refresh(destination), PackagesDb, db),
        enqueue: db.enqueue,
        waiting: db.waiting,
        packagedRevision: db.packagedRevision,
        drop: db.drop,
        nextRow: db.nextRow
      })
    })
  )
  const job = Layer.effectDiscard(Effect.forkScoped(withLease("delivery-packages", packagesJob(options)).pipe(
    Effect.tapError((error) => Effect.logError("delivery-packages lease failed", error)),
    Effect.retry(Schedule.spaced("1 second"))
  ))).pipe(Layer.provide(deliveryBacklog))
  return Layer.mergeAll(service, job).pipe(Layer.provideMerge(dbLayer))
}
