/**
 * SQLite event store throughput: many concurrent appenders through the adapter (its commits on the
 * writer thread), beside the ceiling of raw `node:sqlite` inserts of the same rows in the same
 * transaction sizes the adapter produced (same file layout, schema, indexes and pragmas). Also the
 * cost of synchronous=FULL over NORMAL at those sizes, how soon a live subscriber in the same process
 * sees an acknowledged append, and one multi-stream append of a shard's batch (10,000 events for
 * 10,000 streams) beside raw inserts of the same rows in one transaction.
 *
 * Run alone: `npx node bench/eventStore.ts` prints JSON.
 */
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, Fiber, Stream } from "effect"
import { makeSqlite } from "../infra/eventstore/sqlite.ts"
import type { EventData } from "../domain/EventStore.ts"

const appenders = 64
const totalEvents = 50_000
const appendsPerAppender = Math.ceil(totalEvents / appenders)
const streamsPerAppender = 8

const rounds = 5
const multiStreams = 10_000
const multiRounds = 7
const round2 = (n: number) => Math.round(n * 100) / 100
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}
const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const makeEvent = (appender: number, i: number): EventData => ({
  eventId: randomUUID(),
  type: "SegmentJoined",
  data: { userId: `idfa:${appender}-${i}`, segment: "sports-fans", score: i % 100, at: "2025-01-01T00:00:00.000Z" },
  metadata: { correlationId: randomUUID(), partner: "acme" }
})

/** The adapter: `appenders` fibers, each appending 1-event batches round-robin over its own streams. */
const adapterRun = (path: string, events: ReadonlyArray<ReadonlyArray<EventData>>) =>
  Effect.scoped(Effect.gen(function*() {
    const batchSizes: Array<number> = []
    const store = yield* makeSqlite({ path, onCommit: (n) => batchSizes.push(n) })
    // the writer thread boots in the background: one append first, so the timing starts with it running
    yield* store.appendToStream("warm-up", [makeEvent(-1, 0)], "no_stream")
    batchSizes.length = 0
    const started = performance.now()
    const cpu = process.cpuUsage()
    yield* Effect.forEach(events, (own, appender) =>
      Effect.gen(function*() {
        const revisions = new Array<number>(streamsPerAppender).fill(-1)
        for (let i = 0; i < own.length; i++) {
          const s = i % streamsPerAppender
          const expected = revisions[s] === -1 ? "no_stream" as const : revisions[s]!
          revisions[s] = (yield* store.appendToStream(`bench-${appender}-${s}`, [own[i]!], expected)).nextRevision
        }
      }), { concurrency: "unbounded", discard: true })
    const seconds = (performance.now() - started) / 1000
    return { seconds, cpuSeconds: cpuSeconds(cpu), batchSizes }
  }))

/**
 * The ceiling: the same rows inserted in transactions of the given sizes, with no expected-revision
 * check, queue or fibers. Serialising data/metadata to JSON is kept in the timed loop: storing an
 * event object as a row needs it whatever the adapter.
 */
/** The schema and pragmas come from the adapter itself, so indexes are identical. */
const createLikeAdapter = (path: string) => Effect.runPromise(Effect.scoped(makeSqlite({ path })))

const rawRun = async (path: string, events: ReadonlyArray<ReadonlyArray<EventData>>, batchSizes: ReadonlyArray<number>, synchronous: string) => {
  await createLikeAdapter(path)
  const db = new DatabaseSync(path, { timeout: 5_000 })
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous};`)
  const recordedAt = new Date().toISOString()
  const rows: Array<[EventData, string, number]> = []
  const perAppender = events.map(() => 0)
  for (let i = 0; rows.length < events.length * appendsPerAppender; i++) {
    const appender = i % events.length
    const k = perAppender[appender]!++
    const event = events[appender]![k]
    if (event === undefined) continue
    rows.push([event, `bench-${appender}-${k % streamsPerAppender}`, Math.floor(k / streamsPerAppender)])
  }
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  const insert = db.prepare(
    "INSERT INTO events (event_id, stream, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
  )
  const started = performance.now()
  const cpu = process.cpuUsage()
  let next = 0
  for (const size of batchSizes) {
    begin.run()
    for (let i = 0; i < size; i++) {
      const [event, stream, revision] = rows[next++]!
      insert.run(event.eventId, stream, revision, event.type, JSON.stringify(event.data), JSON.stringify(event.metadata), recordedAt)
    }
    commit.run()
  }
  const seconds = (performance.now() - started) / 1000
  const cpuUsed = cpuSeconds(cpu)
  db.close()
  return { seconds, cpuSeconds: cpuUsed, events: next }
}

/** One multi-stream append of one event to each of `multiStreams` new streams (a shard's batch of commands). */
const multiAppendRun = (path: string, events: ReadonlyArray<EventData>) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* makeSqlite({ path })
    // A shard's writer is warm: one smaller batch first, so the timed one does not pay for the thread's JIT warm-up.
    yield* store.appendToStreams(Array.from({ length: 1_000 }, (_, i) => ({ stream: `warm-${i}`, events: [makeEvent(-1, i)], expectedRevision: "no_stream" as const })))
    const appends = events.map((event, i) => ({ stream: `profile-${i}`, events: [event], expectedRevision: "no_stream" as const }))
    const started = performance.now()
    const results = yield* store.appendToStreams(appends)
    const seconds = (performance.now() - started) / 1000
    if (results.length !== events.length) throw new Error(`expected ${events.length} results, got ${results.length}`)
    return { seconds }
  }))

/** The ceiling: the same rows inserted in one transaction, nothing checked. */
const rawMultiRun = async (path: string, events: ReadonlyArray<EventData>) => {
  await createLikeAdapter(path)
  const db = new DatabaseSync(path, { timeout: 5_000 })
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
  const insert = db.prepare(
    "INSERT INTO events (event_id, stream, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
  )
  const recordedAt = new Date().toISOString()
  // the same warm-up batch as the adapter's, so both tables hold the same rows before the timed one
  db.exec("BEGIN IMMEDIATE")
  for (let i = 0; i < 1_000; i++) {
    const event = makeEvent(-1, i)
    insert.run(event.eventId, `warm-${i}`, 0, event.type, JSON.stringify(event.data), JSON.stringify(event.metadata), recordedAt)
  }
  db.exec("COMMIT")
  const started = performance.now()
  db.exec("BEGIN IMMEDIATE")
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    insert.run(event.eventId, `profile-${i}`, 0, event.type, JSON.stringify(event.data), JSON.stringify(event.metadata), recordedAt)
  }
  db.exec("COMMIT")
  const seconds = (performance.now() - started) / 1000
  db.close()
  return { seconds }
}

/** Append → acknowledgement, and append → live subscriber in the same process, one append at a time. */
const subscriberLatency = (path: string, samples: number) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* makeSqlite({ path })
    const received = new Map<string, number>()
    const subscriber = yield* store.subscribeToAll().pipe(
      Stream.runForEach((e) => Effect.sync(() => void received.set(e.eventId, performance.now()))),
      Effect.forkChild
    )
    const toAck: Array<number> = []
    const toSubscriber: Array<number> = []
    for (let i = 0; i < samples; i++) {
      const event = makeEvent(0, i)
      const sent = performance.now()
      yield* store.appendToStream("latency-0", [event], i === 0 ? "no_stream" : i - 1)
      toAck.push(performance.now() - sent)
      while (!received.has(event.eventId)) yield* Effect.sleep("0 millis")
      toSubscriber.push(received.get(event.eventId)! - sent)
    }
    yield* Fiber.interrupt(subscriber)
    const percentiles = (values: Array<number>) => {
      values.sort((a, b) => a - b)
      return { p50: round2(values[Math.floor(samples / 2)]!), p99: round2(values[Math.floor(samples * 0.99)]!) }
    }
    return { appendToAcknowledgement: percentiles(toAck), appendToSubscriber: percentiles(toSubscriber) }
  }))

const freshPath = (dir: string, name: string) => join(mkdirSync(join(dir, name), { recursive: true })!, "events.db")
const clean = (dir: string) => {
  for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true })
}

export async function benchEventStore(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "tributary-bench-eventstore-"))
  try {
    const events = Array.from({ length: appenders }, (_, a) =>
      Array.from({ length: appendsPerAppender }, (_, i) => makeEvent(a, i)))
    const total = appenders * appendsPerAppender
    // Rounds alternate adapter and raw runs, and the medians are reported: fsync time on a shared
    // machine varies run to run by more than the difference being measured.
    const adapterRates: Array<number> = []
    const rawRates: Array<number> = []
    const rawNormalRates: Array<number> = []
    const transactions: Array<number> = []
    const adapterCpu: Array<number> = []
    const rawCpu: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      // Each run gets a fresh directory, removed right after: otherwise the next run's fsyncs also pay
      // for the writeback of the previous run's dirty pages (NORMAL leaves many), biasing the comparison.
      const adapter = await Effect.runPromise(adapterRun(freshPath(dir, "adapter"), events))
      clean(dir)
      const rawFull = await rawRun(freshPath(dir, "raw-full"), events, adapter.batchSizes, "FULL")
      clean(dir)
      const rawNormal = await rawRun(freshPath(dir, "raw-normal"), events, adapter.batchSizes, "NORMAL")
      clean(dir)
      adapterRates.push(total / adapter.seconds)
      rawRates.push(rawFull.events / rawFull.seconds)
      rawNormalRates.push(rawNormal.events / rawNormal.seconds)
      transactions.push(adapter.batchSizes.length)
      adapterCpu.push(adapter.cpuSeconds * 1e6 / total)
      rawCpu.push(rawFull.cpuSeconds * 1e6 / rawFull.events)
    }
    const latency = await Effect.runPromise(subscriberLatency(join(dir, "latency.db"), 300))
    clean(dir)
    const multiRates: Array<number> = []
    const rawMultiRates: Array<number> = []
    for (let round = 0; round < multiRounds; round++) {
      const batch = Array.from({ length: multiStreams }, (_, i) => makeEvent(round, i))
      const multi = await Effect.runPromise(multiAppendRun(freshPath(dir, "multi"), batch))
      clean(dir)
      const rawMulti = await rawMultiRun(freshPath(dir, "raw-multi"), batch)
      clean(dir)
      multiRates.push(multiStreams / multi.seconds)
      rawMultiRates.push(multiStreams / rawMulti.seconds)
    }
    const adapterRate = median(adapterRates)
    const rawRate = median(rawRates)
    return {
      name: "eventStore.sqlite.append",
      setup: { appenders, totalEvents: total, eventsPerAppend: 1, streams: appenders * streamsPerAppender, synchronous: "FULL", rounds },
      transactions: median(transactions),
      meanEventsPerTransaction: round2(total / median(transactions)),
      adapterEventsPerSecond: Math.round(adapterRate),
      rawEventsPerSecond: Math.round(rawRate),
      ratio: round2(adapterRate / rawRate),
      ratioPerRound: adapterRates.map((a, i) => round2(a / rawRates[i]!)),
      target: ">= 0.8",
      // CPU time per event (user + system) is steadier than wall time on a shared machine
      cpuMicrosPerEvent: { adapter: round2(median(adapterCpu)), raw: round2(median(rawCpu)) },
      cpuRatio: round2(median(rawCpu) / median(adapterCpu)),
      rawNormalEventsPerSecond: Math.round(median(rawNormalRates)),
      normalOverFullSpeedup: round2(median(rawNormalRates) / rawRate),
      // one append at a time: the subscriber is woken by the commit itself, not by its 25 ms poll
      latencyMs: latency,
      multiStreamAppend: {
        setup: { streams: multiStreams, eventsPerStream: 1, appendsPerCall: 1, synchronous: "FULL", rounds: multiRounds },
        adapterEventsPerSecond: Math.round(median(multiRates)),
        rawEventsPerSecond: Math.round(median(rawMultiRates)),
        ratio: round2(median(multiRates) / median(rawMultiRates)),
        ratioPerRound: multiRates.map((a, i) => round2(a / rawMultiRates[i]!))
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  console.log(JSON.stringify(await benchEventStore(), null, 2))
}
