/**
 * Feeds the rollups (infra/readmodel/rollups.ts) from EVENTS_CLEAN (`events.clean.*`, CleanBatch, or one
 * CleanEvent in messages written before batches) and
 * SESSIONS (`sessions.*`, SessionEnded): one durable pull consumer per stream (`rollups-events`,
 * `rollups-sessions`), in one process at a time (lease `job.rollups`). The checkpoint is the stream
 * sequence kept in the rollups file, in the same transaction as the rollups: the consumer is made anew
 * at start from just after it, and a message at or below it (a redelivery) changes nothing, so a crash
 * anywhere neither loses nor counts twice. Each pulled batch (every message waiting, up to `batchSize`:
 * infra/arrivedGroups.ts) is one transaction, acknowledged once committed (ack-all: one ack a batch);
 * its messages are summed and committed on the rollups' writer thread. Those the device pipeline marked
 * as written to their schema are taken as they are, the others decoded here first (domain/checked.ts);
 * an undecodable message is copied to DEADLETTERS and skipped. The same process runs the trend alerts
 * (infra/events/trendAlerts.ts), which read what these consumers wrote, and the compaction that rolls
 * rows past their horizon into hours and days (RollupStore.compact), once a minute.
 */
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Effect, Metric, Option, Schedule, Stream } from "effect"
import { checkedHeader } from "../../domain/checked.ts"
import { decodeJson } from "../../domain/decodeJson.ts"
import { cleanBatchMark, CleanMessage, SessionEnded, sessionEndedMark } from "../../domain/events/CleanEvent.ts"
import { arrivedGroups } from "../arrivedGroups.ts"
import { allCleanEvents, allSessions, StreamNames } from "../../domain/subjects.ts"
import { type RollupKind, type RollupMessage, RollupStore } from "../readmodel/rollups.ts"
import { makeDeadLetterWriter, undeliverable } from "../nats/deadLetters.ts"
import { freshConsumer } from "../nats/freshConsumer.ts"
import { messageAt } from "../nats/scanSubject.ts"
import { withLease } from "../nats/lease.ts"
import { runTrendAlerts, type TrendAlertOptions } from "./trendAlerts.ts"
import { Nats, NatsError, tryNats } from "../nats/Nats.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

/** EVENTS_CLEAN messages (CleanBatches) per transaction at most. */
const cleanMessagesPerBatch = 32

export interface RollupConsumerOptions {
  /** messages per transaction at most (EVENTS_CLEAN: 32 at most); default 2,000 */
  readonly batchSize?: number
  /** trend alerts, evaluated by the same process */
  readonly trends?: TrendAlertOptions
}

const applied = Metric.counter("tributary_rollup_messages_total", { description: "clean events and sessions applied to the rollups", incremental: true })
/**
 * Messages the stream no longer held when the rollups came to them: EVENTS_CLEAN and SESSIONS keep
 * FOLLOW_MAX_BYTES and 7 days, the oldest going first, so rollups stalled past that (a locked file, no
 * process holding their lease) miss what went. Before, found by an outside attack, they skipped it
 * silently (94,670 events of a 60-second stall under a small bound).
 */
export const rollupMessagesLost = Metric.counter("tributary_rollup_messages_lost_total", {
  description: "messages of EVENTS_CLEAN or SESSIONS gone from the stream before the rollups applied them (the aggregates miss them)",
  incremental: true
})
const checkpointGauge = Metric.gauge("tributary_rollup_checkpoint", { description: "last stream sequence applied to the rollups, per stream" })

interface Follow {
  readonly kind: RollupKind
  readonly stream: string
  readonly filter: string
  readonly durable: string
  /** what the device pipeline marks its messages (domain/checked.ts): those are not decoded here */
  readonly mark: string
  readonly decode: (text: string) => Option.Option<unknown>
}

/**
 * Of the sequences after `checkpoint` up to `last` that `seqs` lacks, those the stream no longer has:
 * everything below its first sequence, and each other one looked up (a hole inside the stream is rare:
 * another consumer's messages, or a message deleted). At most `maxLookups` are looked up; the rest count
 * as held, so the batch is refused and taken again.
 */
const goneOf = (spec: Follow, checkpoint: number, seqs: ReadonlySet<number>, last: number, maxLookups = 256) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const goneBelow = (yield* tryNats(`${spec.stream} info`, () => manager.streams.info(spec.stream))).state.first_seq
    const gone: Array<number> = []
    let lookups = 0
    for (let seq = Math.max(checkpoint + 1, goneBelow); seq <= last && lookups < maxLookups; seq++) {
      if (seqs.has(seq)) continue
      lookups++
      if ((yield* tryNats(`read ${spec.stream}`, () => messageAt(manager, spec.stream, seq))) === null) gone.push(seq)
    }
    return { goneBelow, gone }
  })

const follow = (spec: Follow, batchSize: number) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const store = yield* RollupStore
    const deadLetters = yield* makeDeadLetterWriter
    const after = yield* store.checkpoint(spec.stream)
    const consumer = yield* freshConsumer(nats, spec.stream, {
      durable_name: spec.durable,
      filter_subject: spec.filter,
      ...(after === undefined ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }),
      ack_policy: AckPolicy.All,
      ack_wait: nanos(60_000),
      max_ack_pending: batchSize * 4
    })
    const messages = yield* consumeScoped(`consume ${spec.stream}`, () => consumer.consume({ max_messages: batchSize * 2 }))
    const attributes = { stream: spec.stream }
    // The highest sequence seen: the consumer takes the whole stream, so sequences follow each other and
    // a jump is what the stream dropped (none counted before the first message of rollups made anew)
    let high = after
    const gapsBefore = (seqs: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        for (const seq of [...seqs].sort((a, b) => a - b)) {
          if (high !== undefined && seq > high + 1) {
            yield* Metric.update(Metric.withAttributes(rollupMessagesLost, attributes), seq - high - 1)
            yield* Effect.logError("rollups: messages were gone from the stream before they were applied (FOLLOW_MAX_BYTES, or older than 7 days): the aggregates miss them", {
              stream: spec.stream,
              firstLost: high + 1,
              lost: seq - high - 1
            })
          }
          if (high === undefined || seq > high) high = seq
        }
      })
    const batches = yield* arrivedGroups(Stream.fromAsyncIterable(messages, (cause) => new NatsError({ operation: `consume ${spec.stream}`, cause })), batchSize)
    yield* batches.pipe(
      Stream.runForEach((batch) =>
        Effect.gen(function*() {
          const pulled: Array<RollupMessage> = []
          for (const msg of batch) {
            const body = msg.string()
            // decoded only to be refused when it does not decode: the writer thread parses it again
            if (msg.headers?.get(checkedHeader) === spec.mark || Option.isSome(spec.decode(body))) {
              pulled.push({ seq: msg.seq, storedAtMillis: spec.kind === "events" ? Math.floor(msg.info.timestampNanos / 1_000_000) : 0, body })
            } else {
              yield* deadLetters.write(undeliverable(msg, spec.stream, "undecodable", `not a message of ${spec.stream}`)).pipe(Effect.catch((error) => Effect.logWarning("rollups: an undecodable message could not be dead-lettered; skipped", { seq: msg.seq, error })))
            }
          }
          // The highest sequence, not the last message: a redelivered one may come after newer ones, and
          // acknowledging it (ack-all) would leave those newer ones to come again.
          const last = batch.reduce((highest, msg) => (msg.seq > highest.seq ? msg : highest))
          // A hole after the last sequence seen: the stream let it go, or another consumer took it
          const seqs = new Set(batch.map((msg) => msg.seq))
          let hole = false
          for (let seq = (high ?? 0) + 1; seq < last.seq && !hole; seq++) hole = !seqs.has(seq)
          const checkpoint = hole ? (yield* store.checkpoint(spec.stream)) ?? 0 : 0
          const gone = hole ? yield* goneOf(spec, checkpoint, seqs, last.seq) : {}
          const fresh = yield* store.apply(spec.kind, spec.stream, pulled, { batchSeqs: [...seqs], lastSeq: last.seq, ...gone })
          // lost only what the stream no longer had past the checkpoint (another holder may have applied some)
          if (hole) high = checkpoint
          yield* gapsBefore(batch.map((msg) => msg.seq))
          last.ack()
          yield* Metric.update(Metric.withAttributes(applied, attributes), fresh)
          yield* Metric.update(Metric.withAttributes(checkpointGauge, attributes), last.seq)
        })
      )
    )
  }).pipe(Effect.scoped)

/** Both consumers and the trend alerts, restarted from the checkpoint after a failure; for ever. */
const run = (batchSize: number, trends: TrendAlertOptions) =>
  Effect.gen(function*() {
    const events: Follow = { kind: "events", stream: StreamNames.eventsClean, filter: allCleanEvents, durable: "rollups-events", mark: cleanBatchMark, decode: decodeJson(CleanMessage) }
    const sessions: Follow = { kind: "sessions", stream: StreamNames.sessions, filter: allSessions, durable: "rollups-sessions", mark: sessionEndedMark, decode: decodeJson(SessionEnded) }
    const restarting = (spec: Follow) =>
      // A clean message is a batch of up to 256 KiB of events: 32 of them a transaction bounds what one
      // holds (8 MiB, 16 MiB pulled ahead) while still taking thousands of events at once.
      follow(spec, spec.kind === "events" ? Math.min(batchSize, cleanMessagesPerBatch) : batchSize).pipe(
        Effect.tapCause((cause) => Effect.logError("rollups: a consumer failed; restarting from its checkpoint", { stream: spec.stream, cause })),
        Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("10 seconds")]))
      )
    const store = yield* RollupStore
    const compacting = store.compact().pipe(
      Effect.tap((done) => done.moved > 0 ? Effect.logInfo("rollups: rows past their horizon rolled into hours and days", done) : Effect.void),
      Effect.catch((error) => Effect.logError("rollups: compaction failed; tried again in a minute", { error })),
      Effect.repeat(Schedule.spaced("1 minute"))
    )
    return yield* Effect.all([restarting(events), restarting(sessions), runTrendAlerts(trends), compacting], { concurrency: "unbounded", discard: true }).pipe(Effect.andThen(Effect.never))
  })

/** Runs the rollup consumers while this process holds the lease `job.rollups`; fork it scoped. */
export const runRollupConsumers = (options: RollupConsumerOptions = {}) => withLease("rollups", run(options.batchSize ?? 2_000, options.trends ?? {}))
