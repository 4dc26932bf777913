/**
 * One app's device pipeline (issue 8 items 2–5), run by the holder of the app's lease: EVENTS batches
 * → dedupe → sessions → enrichment → commit, each a stage with a bounded queue (stages.ts), then the
 * outbox publisher (outboxPublisher.ts) puts what was committed on EVENTS_CLEAN and SESSIONS.
 *
 * Exactly once: batches of EVENTS messages are one transaction of devices.db holding the devices' new
 * dedupe and session states, what they produced (outbox rows: a CleanBatch of a batch's clean events,
 * one ended session each) and the messages' EVENTS sequences (the commit stage takes every batch
 * waiting at once: one fsync for all); only then are the messages acknowledged. A crash before the commit
 * leaves nothing of the batch (its messages come again, and dedupe state has not moved); a crash
 * after it leaves the outbox to publish and the messages recorded as consumed (acked on redelivery,
 * never processed twice). A pipeline claims its app before it reads (DeviceStore.claim), and commits under
 * that claim: a predecessor's commit still in flight lands before it, one of a predecessor paused past
 * its lease after it is refused. Device states run ahead in memory (DeviceStates) while earlier batches are
 * still in later stages, so each batch carries its own copy of the states it produced to commit.
 *
 * The sessions timer: every `sessionCheck` (Clock, so TestClock drives it) a tick goes through the
 * same stages and ends the sessions idle for `inactivity` of server time (domain/events/sessions.ts).
 *
 * A watchdog (pipelineWatchdog.ts) fails a pipeline that has work and makes no progress for
 * `stallAfter`, from its claim on: its lease is renewed whatever it does, so a wait that never ends
 * would otherwise keep its app from everyone.
 */
import { Clock, Duration, Effect, Metric, Queue, Scope, Stream } from "effect"
import { type CleanEvent, cleanBatchBodies, type SessionEnded } from "../../domain/events/CleanEvent.ts"
import { CleanPublisher, type OutboxKind, type PublishedRow, settled } from "../../domain/events/CleanOutbox.ts"
import * as Dedupe from "../../domain/events/dedupe.ts"
import { type DeviceSessions, type DeviceState, DeviceStore, type DeviceStoreError } from "../../domain/events/DeviceStore.ts"
import { type EventsDelivery, EventsQueue, type EventsQueueError } from "../../domain/events/EventsQueue.ts"
import type { MetadataError } from "../../domain/events/Metadata.ts"
import type { SdkEvent } from "../../domain/events/SdkEvent.ts"
import * as Sessions from "../../domain/events/sessions.ts"
import { deviceKey } from "./deviceKey.ts"
import type { DeviceStates } from "./DeviceStates.ts"
import { advertisers, appDims, enrichDims, type MetadataLookups } from "./enrich.ts"
import { publishOutbox } from "./outboxPublisher.ts"
import { sessionTicks } from "./sessionTimer.ts"
import { makeProgress, type Progress, progressed, watchStalls } from "./pipelineWatchdog.ts"
import { runStages } from "./stages.ts"

export interface DevicePipelineOptions {
  /** a session with no close ends after this much device time without events (or server time: the timer) */
  readonly inactivity: Duration.Duration
  /** how often open sessions are checked against the inactivity time */
  readonly sessionCheck: Duration.Duration
  /** EVENTS messages per batch (one transaction) at most */
  readonly batchMessages: number
  /** batches waiting before each stage */
  readonly stageQueue: number
  readonly metadata: MetadataLookups
  readonly states: DeviceStates
  /** a pipeline with work and no progress for this long fails, and starts again (DEVICE_STALL_TIMEOUT) */
  readonly stallAfter: Duration.Duration
}

export const eventsDeduplicated = Metric.counter("tributary_device_events_total", { description: "App events kept after dedupe (new)", incremental: true })
export const eventsDuplicate = Metric.counter("tributary_device_duplicates_total", { description: "App events dropped as seen before", incremental: true })
export const seqsGivenUp = Metric.counter("tributary_device_seqs_given_up_total", {
  description: "Sequence numbers given up as never coming to keep a device's dedupe state bounded (a later arrival of one is dropped)",
  incremental: true
})
/**
 * The same, by gap: what to alert on. One gap may hold ~9×10^15 numbers (an event forged at a seq near
 * 2^53), past which adding to the seqs counter changes nothing (found by an outside attack).
 */
export const gapsGivenUp = Metric.counter("tributary_device_gaps_given_up_total", {
  description: "Events whose arrival gave up a device's oldest gap of sequence numbers (at most 8 gaps are kept per device)",
  incremental: true
})
export const sessionsEnded = Metric.counter("tributary_device_sessions_ended_total", { description: "Sessions ended", incremental: true })
export const lateUnattributed = Metric.counter("tributary_device_events_without_session_total", {
  description: "Late events whose device time falls in no remembered session (clean events with no sessionId)",
  incremental: true
})
export const deviceStatesBytes = Metric.gauge("tributary_device_states_bytes", { description: "Estimated bytes of device states kept in memory" })

interface Fresh {
  readonly key: string
  readonly event: SdkEvent
  readonly receivedAt: string
  session?: number | undefined
}

/** A batch as it goes through the stages. */
interface Work {
  readonly deliveries: ReadonlyArray<EventsDelivery>
  /** server time of a timer tick (no deliveries then) */
  readonly tick: number | undefined
  readonly fresh: Array<Fresh>
  readonly idle: Array<string>
  readonly dedupe: Map<string, Dedupe.DedupeState>
  readonly sessions: Map<string, DeviceSessions>
  readonly ended: Array<{ readonly deviceId: string; readonly ended: Sessions.Ended }>
  readonly outbox: Array<{ readonly kind: OutboxKind; readonly body: string }>
  readonly consumed: Array<number>
  readonly pinned: Set<string>
}

const work = (deliveries: ReadonlyArray<EventsDelivery>, tick: number | undefined): Work => ({
  deliveries,
  tick,
  fresh: [],
  idle: [],
  dedupe: new Map(),
  sessions: new Map(),
  ended: [],
  outbox: [],
  consumed: [],
  pinned: new Set()
})

const emptyState = (deviceId: string): DeviceState => ({ dedupe: Dedupe.empty, sessions: { deviceId, state: Sessions.emptySessions } })

/** Runs `app`'s pipeline until it fails (stalled included) or its scope ends (the lease is lost or handed back). */
export const devicePipeline = (app: string, options: DevicePipelineOptions) =>
  Effect.gen(function*() {
    const store = yield* DeviceStore
    const queue = yield* EventsQueue
    const progress = yield* makeProgress
    yield* Effect.all([
      pipeline(app, options, progress),
      watchStalls(app, progress, {
        stallAfter: options.stallAfter,
        eventsWaiting: queue.waiting(app),
        outboxWaiting: Effect.map(store.outbox(app, 0, 1, 1), (rows) => rows.length > 0)
      })
    ], { concurrency: "unbounded", discard: true })
  })

const pipeline = (app: string, options: DevicePipelineOptions, progress: Progress) =>
  Effect.gen(function*() {
    const store = yield* DeviceStore
    const queue = yield* EventsQueue
    const states = options.states
    const scope = yield* Scope.Scope
    const inactivityMs = Duration.toMillis(options.inactivity)
    const sessionOptions = { inactivityMs }
    // Claimed before anything is read: behind a predecessor's commit still in this process's writer, and
    // fencing off one elsewhere paused past its lease. Without it, a pipeline started again after its
    // lease lapsed read the states from before the commit still in flight, and counted its events twice
    // (stop 24's outside attack).
    const epoch = yield* store.claim(app)
    states.dropApp(app)
    const published = yield* Queue.sliding<void>(1)
    let acknowledged: Array<number> = []
    /** outbox rows published and not deleted yet: the next commit deletes them (outboxPublisher.ts) */
    const publishedRows: Array<PublishedRow> = []

    /** Loads the states of `keys` missing in memory (a device never seen starts empty) and pins them to `item`. */
    const ensure = (item: Work, keys: Map<string, string>) =>
      Effect.gen(function*() {
        const missing = [...keys.keys()].filter((key) => states.get(key) === undefined)
        const loaded = missing.length === 0 ? new Map<string, Partial<DeviceState>>() : yield* store.load(missing)
        for (const key of missing) {
          const found = loaded.get(key)
          const blank = emptyState(found?.sessions?.deviceId ?? keys.get(key)!)
          states.set(app, key, { dedupe: found?.dedupe ?? blank.dedupe, sessions: found?.sessions ?? blank.sessions })
        }
        for (const key of keys.keys()) {
          if (!item.pinned.has(key)) {
            item.pinned.add(key)
            states.pin(key)
          }
        }
      })

    const dedupe = (item: Work) =>
      Effect.gen(function*() {
        if (item.tick !== undefined) {
          const idle = yield* store.idle(app, item.tick - inactivityMs, 10_000)
          yield* ensure(item, new Map(idle.map((key) => [key, ""])))
          item.idle.push(...idle)
          return item
        }
        const done = yield* store.consumed(app, item.deliveries.map((d) => d.seq))
        // a device's key hashed once a batch, however many of its events the batch holds
        const keyOf = new Map<string, string>()
        const keys = new Map<string, string>()
        const todo = item.deliveries.filter((d) => !done.has(d.seq))
        for (const delivery of todo) {
          for (const { deviceId } of delivery.batch.events) {
            if (keyOf.has(deviceId)) continue
            const key = deviceKey(app, deviceId)
            keyOf.set(deviceId, key)
            keys.set(key, deviceId)
          }
        }
        yield* ensure(item, keys)
        let duplicates = 0
        let givenUp = 0
        let gaps = 0
        for (const delivery of todo) {
          item.consumed.push(delivery.seq)
          for (const event of delivery.batch.events) {
            const key = keyOf.get(event.deviceId)!
            const state = states.peek(key)!
            if (Dedupe.seen(state.dedupe, event.seq)) {
              duplicates++
              continue
            }
            const added = Dedupe.add(state.dedupe, event.seq)
            givenUp += added.givenUp
            if (added.givenUp > 0) gaps++
            states.set(app, key, { ...state, dedupe: added.state })
            item.dedupe.set(key, added.state)
            item.fresh.push({ key, event, receivedAt: delivery.batch.receivedAt })
          }
        }
        yield* Metric.update(eventsDuplicate, duplicates)
        yield* Metric.update(seqsGivenUp, givenUp)
        yield* Metric.update(gapsGivenUp, gaps)
        yield* Metric.update(eventsDeduplicated, item.fresh.length)
        return item
      })

    const sessions = (item: Work) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        let unattributed = 0
        for (const fresh of item.fresh) {
          const state = states.peek(fresh.key)!
          const stepped = Sessions.step(state.sessions.state, {
            type: fresh.event.type,
            time: Date.parse(fresh.event.time),
            dims: fresh.event.dims ?? {}
          }, now, sessionOptions)
          const next = { deviceId: state.sessions.deviceId, state: stepped.state }
          states.set(app, fresh.key, { ...state, sessions: next })
          item.sessions.set(fresh.key, next)
          fresh.session = stepped.session
          if (stepped.session === undefined) unattributed++
          for (const ended of stepped.ended) item.ended.push({ deviceId: next.deviceId, ended })
        }
        for (const key of item.idle) {
          const state = states.peek(key)!
          const expired = Sessions.expire(state.sessions.state, item.tick!, sessionOptions)
          if (expired.ended.length === 0) continue
          const next = { deviceId: state.sessions.deviceId, state: expired.state }
          states.set(app, key, { ...state, sessions: next })
          item.sessions.set(key, next)
          for (const ended of expired.ended) item.ended.push({ deviceId: next.deviceId, ended })
        }
        yield* Metric.update(lateUnattributed, unattributed)
        yield* Metric.update(sessionsEnded, item.ended.length)
        return item
      })

    const enrich = (item: Work) =>
      Effect.gen(function*() {
        if (item.fresh.length === 0 && item.ended.length === 0) return item
        const meta = yield* appDims(options.metadata, app)
        const campaigns = new Set(item.fresh.flatMap((f) => (f.event.campaignId === undefined ? [] : [f.event.campaignId])))
        const advertiserOf = campaigns.size === 0 ? new Map<string, string | undefined>() : yield* advertisers(options.metadata, campaigns)
        const cleanEvents: Array<string> = []
        for (const { event, receivedAt, session } of item.fresh) {
          const clean: CleanEvent = {
            ...event,
            app,
            dims: enrichDims(event.dims ?? {}, meta, event.campaignId === undefined ? undefined : advertiserOf.get(event.campaignId)),
            ...(meta === undefined ? {} : { appName: meta.name }),
            receivedAt,
            ...(session === undefined ? {} : { sessionId: Sessions.sessionId(event.deviceId, session) })
          }
          cleanEvents.push(JSON.stringify(clean))
        }
        for (const body of cleanBatchBodies(app, cleanEvents)) item.outbox.push({ kind: "clean", body })
        for (const { deviceId, ended } of item.ended) {
          const session: SessionEnded = {
            app,
            deviceId,
            sessionId: Sessions.sessionId(deviceId, ended.start),
            start: new Date(ended.start).toISOString(),
            durationSeconds: Math.max(0, ended.end - ended.start) / 1000,
            events: ended.counts,
            endedBy: ended.endedBy,
            dims: enrichDims(ended.dims, meta, undefined)
          }
          item.outbox.push({ kind: "session", body: JSON.stringify(session) })
        }
        return item
      })

    /** Commits every batch waiting at once: one transaction (one fsync) for all, then their acks. */
    const commit = (items: ReadonlyArray<Work>) =>
      Effect.gen(function*() {
        const dedupeStates = new Map<string, Dedupe.DedupeState>()
        const sessionStates = new Map<string, DeviceSessions>()
        // in order: a later batch's state of a device supersedes an earlier one's
        for (const item of items) {
          item.dedupe.forEach((state, key) => dedupeStates.set(key, state))
          item.sessions.forEach((state, key) => sessionStates.set(key, state))
        }
        const outbox = items.flatMap((item) => item.outbox)
        const consumed = items.flatMap((item) => item.consumed)
        if (dedupeStates.size > 0 || sessionStates.size > 0 || outbox.length > 0 || consumed.length > 0) {
          // Taken in the same step as the commit runs: rows the publisher adds meanwhile wait for the next one.
          yield* Effect.suspend(() => store.commit({ app, epoch, dedupe: dedupeStates, sessions: sessionStates, outbox, consumed, acknowledged, published: settled(publishedRows.splice(0)) }))
          acknowledged = []
        }
        for (const item of items) for (const key of item.pinned) states.unpin(key)
        states.evict()
        yield* Metric.update(deviceStatesBytes, states.bytes)
        if (outbox.length > 0) yield* Queue.offer(published, undefined)
        // Acknowledged beside the next batches, not holding them up: a lost ack only means the message
        // comes again, and is then found consumed. Confirmed ones are forgotten at the next commit.
        const deliveries = items.flatMap((item) => item.deliveries)
        if (deliveries.length > 0) yield* progressed(progress, "committed")
        yield* Effect.forEach(deliveries, (d) => Effect.andThen(d.ack, Effect.sync(() => acknowledged.push(d.seq))), {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.catch((error) => Effect.logWarning("device pipeline: an EVENTS acknowledgement failed; the message comes again", error)),
          Effect.forkIn(scope)
        )
      })

    const deliveries = yield* queue.take(app, options.batchMessages)
    const feed = (offer: (item: Work) => Effect.Effect<void>) =>
      Effect.all([
        deliveries.pipe(Stream.runForEach((batch) => offer(work(batch, undefined)))),
        sessionTicks(options.sessionCheck, (now) => offer(work([], now)))
      ], { concurrency: "unbounded", discard: true })

    const publisher = yield* CleanPublisher
    yield* Effect.all([
      runStages<Work, DeviceStoreError | EventsQueueError | MetadataError, never, EventsQueueError, never>([
        { name: "dedupe", run: dedupe },
        { name: "sessions", run: sessions },
        { name: "enrichment", run: enrich }
      ], { name: "commit", run: commit }, options.stageQueue, feed),
      publishOutbox(app, { store, publisher, wake: published, done: publishedRows, onPublished: progressed(progress, "published") })
    ], { concurrency: "unbounded", discard: true })
  })
