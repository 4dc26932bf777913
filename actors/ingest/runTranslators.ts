/**
 * The translators of this process (issue 7 item 5): one per partner, each run by one process at a
 * time under the lease `job.translate.<partner>`, partners spread over the live processes by
 * rendezvous hashing (like shards). Every `tick` the known partners — partner entities, and partners
 * with messages waiting on INGEST, so a new partner needs no restart — are looked at: this process
 * takes the free leases of the partners it should run and hands back those it should not any more.
 * A SIGKILLed holder's leases expire and the survivors take its partners, resuming their jobs from
 * their checkpoints. A partner's translator that fails starts again after a backoff, holding its
 * lease: other partners never notice.
 */
import { Effect, Fiber, Metric, Option, Schedule } from "effect"
import type { Duration } from "effect"
import { Cluster, holdWhile } from "../../domain/Cluster.ts"
import { IngestQueue } from "../../domain/ingest/IngestQueue.ts"
import { shardOf } from "../../domain/shards.ts"
import { jobLeaseKey } from "../../domain/subjects.ts"
import { type EntityPage, EntityReadModel } from "../../projections/EntityReadModel.ts"
import { ownerOf } from "../runtime/ShardAssignment.ts"
import { partnerType } from "./partnerSettings.ts"
import { partnerTranslator, type TranslatorOptions } from "./TranslatorActor.ts"

export interface TranslatorsOptions extends TranslatorOptions {
  /** how often partners and ownership are looked at; default 1 second */
  readonly tick?: Duration.Input
}

const translatorsRunning = Metric.gauge("tributary_translators_running", { description: "Partners whose translator runs in this process" })

/** The lease of a partner's translator. */
export const translatorLeaseKey = (partner: string) => jobLeaseKey(`translate.${partner}`)

/** Every partner entity (paged) and every partner with INGEST messages waiting. */
const knownPartners = Effect.gen(function*() {
  const model = yield* EntityReadModel
  const queue = yield* IngestQueue
  const partners = new Set<string>(yield* queue.partners)
  let after: string | undefined = undefined
  for (;;) {
    const page: EntityPage = yield* model.list(partnerType, { limit: 500, ...(after === undefined ? {} : { after }) })
    page.items.forEach((item) => partners.add(item.id))
    if (!page.more || page.items.length === 0) return partners
    after = page.items.at(-1)!.id
  }
})

/** Runs this process's share of the partners' translators for the life of the Scope. */
export const runTranslators = (options: TranslatorsOptions) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    const context = yield* Effect.context<Effect.Services<ReturnType<typeof partnerTranslator>> | EntityReadModel | IngestQueue>()
    const held = new Map<string, Fiber.Fiber<void>>()
    let members: ReadonlyArray<string> = [cluster.self]

    yield* Effect.addFinalizer(() => Fiber.interruptAll([...held.values()]))

    // Holding the lease, the partner's translator runs; after a failure it starts again (backoff).
    const run = (partner: string) =>
      partnerTranslator(partner, options).pipe(
        Effect.tapError((error) => Effect.logWarning("translator failed; starting it again", { partner, error })),
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
        Effect.andThen(Effect.never)
      )

    const start = (partner: string) =>
      Effect.gen(function*() {
        const lease = yield* cluster.tryLease(translatorLeaseKey(partner))
        if (Option.isNone(lease)) return
        yield* Effect.logInfo("translator started", { partner })
        const fiber = yield* holdWhile(lease.value, run(partner), cluster.renewEveryMillis).pipe(
          Effect.catchCause((cause) => Effect.logWarning("translator stopped", { partner, cause })),
          Effect.ensuring(Effect.sync(() => held.delete(partner))),
          Effect.provideContext(context),
          Effect.forkDetach
        )
        held.set(partner, fiber)
      })

    const tick = Effect.gen(function*() {
      members = yield* cluster.members.pipe(Effect.orElseSucceed(() => members))
      const partners = yield* knownPartners.pipe(
        Effect.tapError((error) => Effect.logWarning("cannot list partners", error)),
        Effect.orElseSucceed(() => new Set<string>(held.keys()))
      )
      const all = members.includes(cluster.self) ? members : [...members, cluster.self]
      const mine = (partner: string) => ownerOf(shardOf(partner, 0x7fffffff), all) === cluster.self
      for (const [partner, fiber] of held) {
        if (!mine(partner)) {
          held.delete(partner)
          yield* Effect.forkDetach(Fiber.interrupt(fiber))
          yield* Effect.logInfo("translator handed back", { partner })
        }
      }
      for (const partner of partners) {
        if (mine(partner) && !held.has(partner)) {
          yield* start(partner).pipe(Effect.catch((error) => Effect.logWarning("cannot take a translator lease", { partner, error })))
        }
      }
      yield* Metric.update(translatorsRunning, held.size)
    })

    yield* tick
    yield* tick.pipe(Effect.delay(options.tick ?? "1 second"), Effect.forever, Effect.forkScoped)
  })

