/**
 * The translators of this process (issue 7 item 5): one per partner, each run by one process at a
 * time under the lease `job.translate.<partner>`, partners spread over the live processes by
 * rendezvous hashing (actors/runtime/KeyedJobs.ts). Every `tick` the known partners — partner entities, and partners
 * with messages waiting on INGEST, so a new partner needs no restart — are looked at: this process
 * takes the free leases of the partners it should run and hands back those it should not any more.
 * A SIGKILLed holder's leases expire and the survivors take its partners, resuming their jobs from
 * their checkpoints. A partner's translator that fails starts again after a backoff, holding its
 * lease: other partners never notice.
 */
import { Effect, Metric } from "effect"
import type { Duration } from "effect"
import { IngestQueue } from "../../domain/ingest/IngestQueue.ts"
import { jobLeaseKey } from "../../domain/subjects.ts"
import { type EntityPage, EntityReadModel } from "../../projections/EntityReadModel.ts"
import { runKeyedJobs } from "../runtime/KeyedJobs.ts"
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
  runKeyedJobs({
    name: "translator",
    leaseKey: translatorLeaseKey,
    keys: knownPartners,
    run: (partner: string) => partnerTranslator(partner, options),
    running: translatorsRunning,
    ...(options.tick === undefined ? {} : { tick: options.tick })
  })
